/*
 * dispatch.c — one request's batch of messages in, one JSON array of replies
 * out (PROTOCOL.md §1). Each message goes to the handler of its verb; a
 * lone /meta/connect with nothing to deliver may be parked instead.
 */
#include <math.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "channel.h"
#include "durable.h"
#include "verbs.h"
#include "table.h"
#include "json.h"
#include "json_scan.h"
#include "log.h"
#include "gate.h"

void bx_response_init(bx_response *res)
{
	res->status = 200;
	bx_buf_init(&res->body);
	res->hold = NULL;
	res->pending = NULL;
	res->set_browser[0] = '\0';
}

void bx_response_free(bx_response *res)
{
	bx_buf_free(&res->body);
}

/*---- Reply writers -----------------------------------------------------------*/





/*---- Sessions ---------------------------------------------------------------*/


/*---- Parsing ----------------------------------------------------------------*/




/* Fills in->id_json from the message's id: a short string or an integer. */
static void read_id(bx_in *in)
{
	json_object *id;
	in->id_json[0] = '\0';
	if (!json_object_object_get_ex(in->obj, "id", &id))
		return;
	if (json_object_is_type(id, json_type_string)) {
		size_t n = (size_t)json_object_get_string_len(id);
		if (n > BX_MSGID_MAX)
			return;
		bx_buf tmp;
		bx_buf_init(&tmp);
		bx_buf_json_str(&tmp, json_object_get_string(id), n);
		if (!tmp.failed && tmp.len < sizeof in->id_json)
			memcpy(in->id_json, tmp.data, tmp.len + 1);
		bx_buf_free(&tmp);
	} else if (json_object_is_type(id, json_type_int)) {
		snprintf(in->id_json, sizeof in->id_json, "%lld",
		         (long long)json_object_get_int64(id));
	}
}

static void read_message(json_object *obj, bx_in *in)
{
	memset(in, 0, sizeof *in);
	in->obj = obj;
	json_object *v;
	if (json_object_object_get_ex(obj, "channel", &v) &&
	    json_object_is_type(v, json_type_string)) {
		in->channel = json_object_get_string(v);
		in->chlen = (size_t)json_object_get_string_len(v);
		in->channel_ok = bx_channel_check(in->channel, in->chlen, &in->chflags);
	}
	read_id(in);
	if (json_object_object_get_ex(obj, "clientId", &v) &&
	    json_object_is_type(v, json_type_string)) {
		in->client_id = json_object_get_string(v);
		in->client_id_len = (size_t)json_object_get_string_len(v);
	}
	if (json_object_object_get_ex(obj, "advice", &v) &&
	    json_object_is_type(v, json_type_object))
		in->advice = v;
	if (json_object_object_get_ex(obj, "data", &v))
		in->data = v;
	if (json_object_object_get_ex(obj, "ext", &v) && json_object_is_type(v, json_type_object))
		in->ext = v;
}

static bool is_meta(const bx_in *in, const char *name)
{
	size_t n = strlen(name);
	return in->chlen == n && memcmp(in->channel, name, n) == 0;
}

/* Routes one message to its verb. */
static void handle(bx_batch *b, bx_in *in)
{
	if (!in->channel) {
		bx_reply_error(b, in, "400::channel_missing", NULL);
		return;
	}
	if (!in->channel_ok) {
		bx_reply_error(b, in, "405::channel_invalid", NULL);
		return;
	}
	if (b->srv->api && b->srv->api->nincoming) {
		char err[BX_API_ERR_MAX];
		bx_session *s = in->client_id
		                        ? bx_session_find(b->srv, in->client_id, in->client_id_len)
		                        : NULL;
		const char *rejected = bx_api_incoming(b->srv, s, in, err);
		bx_session_unref(s);
		if (rejected) {
			bx_reply_error(b, in, err, NULL);
			return;
		}
	}
	if (in->chflags & BX_CH_META) {
		/* Meta channels are matched exactly: no pattern reaches a verb. */
		if (is_meta(in, "/meta/handshake"))
			bx_meta_handshake(b, in);
		else if (is_meta(in, "/meta/connect"))
			bx_meta_connect(b, in);
		else if (is_meta(in, "/meta/subscribe"))
			bx_meta_subscribe(b, in, true);
		else if (is_meta(in, "/meta/unsubscribe"))
			bx_meta_subscribe(b, in, false);
		else if (is_meta(in, "/meta/disconnect"))
			bx_meta_disconnect(b, in);
		else
			bx_reply_error(b, in, "403:denied_by_security_policy:channel_create_denied",
			               NULL);
		return;
	}
	bx_publish_message(b, in);
}

/* PROTOCOL.md §2: a handshake must be the only message in its request. */
static bool batch_has_handshake(json_object *arr, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		json_object *ch;
		if (json_object_object_get_ex(json_object_array_get_idx(arr, i), "channel", &ch) &&
		    json_object_is_type(ch, json_type_string) &&
		    strcmp(json_object_get_string(ch), "/meta/handshake") == 0)
			return true;
	}
	return false;
}

static void fail(bx_response *res, int status, const char *text)
{
	res->status = status;
	bx_buf_free(&res->body);
	bx_buf_puts(&res->body, text);
	bx_buf_putc(&res->body, '\n');
}

/* A tree estimated at this many bytes or more is given back to the system
 * when it is freed (see put_tree). */
#define BX_TRIM_AT (1024 * 1024)

/* Frees a request's tree. glibc gives memory back to the system only when a
 * free of 64 KiB or more merges with the top of a heap; a json-c tree is
 * thousands of small chunks (they go to tcache and fastbins), and every
 * libmicrohttpd thread allocates in an arena of its own, so without help
 * the RSS of one big parse stays for good (docs/SECURITY.md, "Parse
 * memory"). After a big tree, malloc_trim(0) returns the free pages of
 * every arena; it costs a walk of the free lists, only for big bodies. */
static void put_tree(json_object *root, size_t cost)
{
	json_object_put(root);
#ifdef __GLIBC__
	if (cost >= BX_TRIM_AT)
		malloc_trim(0);
#else
	(void)cost;
#endif
}

/* Refuses, before json-c builds a tree, a batch over --max-batch and a body
 * whose tree would cost more than bx_parse_budget() (json_scan.h,
 * docs/SECURITY.md "Parse memory"). Returns false with res filled in. */
static bool census_ok(bx_server *srv, const bx_request *req, bx_response *res, size_t *cost)
{
	bx_json_census c;
	bx_json_scan(req->body, req->len, BX_JSON_MAX_DEPTH, &c);
	/* Too deep: json-c stops at the same place with its own error, and
	 * the count so far means nothing. */
	if (!c.too_deep && c.top > srv->cfg.max_batch) {
		res->status = 400;
		bx_buf_printf(&res->body, "too many messages in one request: %zu (limit %zu)\n", c.top,
		              srv->cfg.max_batch);
		return false;
	}
	*cost = c.cost;
	size_t budget = bx_parse_budget(req->len);
	if (c.cost > budget) {
		res->status = 413;
		bx_buf_printf(&res->body,
		              "request would take too much memory to parse: about %zu bytes for "
		              "%zu objects and %zu arrays in %zu bytes of JSON (limit %zu: %d times "
		              "the body, at least %d)\n",
		              c.cost, c.objects, c.arrays, req->len, budget, BX_PARSE_MULT,
		              BX_PARSE_FLOOR);
		return false;
	}
	return true;
}

void bx_dispatch(bx_server *srv, const bx_request *req, bx_response *res)
{
	size_t cost = 0;
	if (req->len && !census_ok(srv, req, res, &cost))
		return;
	size_t end = 0;
	enum json_tokener_error jerr = json_tokener_success;
	json_object *root = bx_json_parse(req->body, req->len, &end, &jerr);
	if (jerr == json_tokener_success && !root) {
		/* JSON null: parsed, but not a batch. */
		fail(res, 400, "a Bayeux request body is a JSON array of message objects");
		return;
	}
	if (jerr != json_tokener_success || !root) {
		put_tree(root, cost);
		res->status = 400;
		bx_buf_printf(&res->body, "invalid JSON in request body: %s\n",
		              req->len ? json_tokener_error_desc(jerr) : "empty body");
		return;
	}
	for (; end < req->len; end++) {
		char c = req->body[end];
		if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			put_tree(root, cost);
			fail(res, 400, "invalid JSON in request body: trailing characters");
			return;
		}
	}

	/* A single object is accepted as a one-element batch (PROTOCOL.md §1). */
	size_t count;
	if (json_object_is_type(root, json_type_array))
		count = json_object_array_length(root);
	else if (json_object_is_type(root, json_type_object))
		count = 1;
	else {
		put_tree(root, cost);
		fail(res, 400, "a Bayeux request body is a JSON array of message objects");
		return;
	}
	if (count == 0) {
		put_tree(root, cost);
		fail(res, 400, "a Bayeux request body needs at least one message");
		return;
	}
	if (count > srv->cfg.max_batch) {
		put_tree(root, cost);
		res->status = 400;
		bx_buf_printf(&res->body, "too many messages in one request: %zu (limit %zu)\n",
		              count, srv->cfg.max_batch);
		return;
	}

	if (count > 1 && batch_has_handshake(root, count)) {
		put_tree(root, cost);
		fail(res, 400, "a /meta/handshake must be the only message in its request");
		return;
	}

	bx_batch b = {.srv = srv,
	              .req = req,
	              .res = res,
	              .out = &res->body,
	              .any = false,
	              .count = count,
	              .now = bx_now(srv),
	              .wall = bx_wall_ms()};
	bx_buf_putc(b.out, '[');
	for (size_t i = 0; i < count; i++) {
		json_object *m = json_object_is_type(root, json_type_array)
		                         ? json_object_array_get_idx(root, i)
		                         : root;
		bx_in in;
		if (!json_object_is_type(m, json_type_object)) {
			memset(&in, 0, sizeof in);
			bx_reply_error(&b, &in, "400::message_invalid", NULL);
			continue;
		}
		read_message(m, &in);
		if (in.chflags & BX_CH_META)
			bx_timesync_read(&in.timesync, in.ext, b.wall);
		handle(&b, &in);
		if (res->hold)
			break; /* a held connect is the only message of its request */
	}
	put_tree(root, cost);
	if (res->hold) {
		bx_buf_free(&res->body);
		return;
	}
	bx_buf_putc(b.out, ']');
	if (b.pending)
		bx_gate_settle_laters(&b); /* (before the body moves to the publishes) */
	bx_pending_settle(&b); /* retained publishes: park until durable */
	if (!res->pending && res->body.failed)
		fail(res, 503, "out of memory");
	bx_gate_park(&b); /* subscriptions the bus has not confirmed yet */
}
