/*
 * dispatch.c — one request's batch of messages in, one JSON array of replies
 * out (PROTOCOL.md §1). Each message goes to the handler of its verb; a
 * lone /meta/connect with nothing to deliver may be parked instead.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "channel.h"
#include "dispatch.h"
#include "log.h"

void bx_response_init(bx_response *res)
{
	res->status = 200;
	bx_buf_init(&res->body);
	res->hold = NULL;
	res->set_browser[0] = '\0';
}

void bx_response_free(bx_response *res)
{
	bx_buf_free(&res->body);
}

/*---- Reply writers -----------------------------------------------------------*/

void bx_reply_open(bx_batch *b, const bx_in *in, const char *channel, bool ok)
{
	bx_buf *o = b->out;
	if (b->any)
		bx_buf_putc(o, ',');
	b->any = true;
	bx_buf_putc(o, '{');
	if (channel) {
		bx_buf_puts(o, "\"channel\":");
		bx_buf_json_str(o, channel, strlen(channel));
	} else if (in->channel && in->channel_ok) {
		bx_buf_puts(o, "\"channel\":");
		bx_buf_json_str(o, in->channel, in->chlen);
	} else {
		bx_buf_puts(o, "\"channel\":null");
	}
	bx_buf_puts(o, ok ? ",\"successful\":true" : ",\"successful\":false");
	if (in->id_json[0]) {
		bx_buf_puts(o, ",\"id\":");
		bx_buf_puts(o, in->id_json);
	}
}

void bx_reply_error(bx_batch *b, const bx_in *in, const char *error, const char *advice)
{
	bx_reply_open(b, in, NULL, false);
	bx_buf_puts(b->out, ",\"error\":");
	bx_buf_json_str(b->out, error, strlen(error));
	if (advice) {
		bx_buf_puts(b->out, ",\"advice\":");
		bx_buf_puts(b->out, advice);
	}
	bx_buf_putc(b->out, '}');
}

void bx_write_retry_advice(bx_buf *out, const bx_server *srv, bool multiple_clients)
{
	if (multiple_clients)
		bx_buf_printf(out,
		              "{\"reconnect\":\"retry\",\"interval\":%lld,\"timeout\":%lld,"
		              "\"multiple-clients\":true}",
		              (long long)srv->cfg.multi_session_interval_ms,
		              (long long)srv->cfg.timeout_ms);
	else
		bx_buf_printf(out, "{\"reconnect\":\"retry\",\"interval\":%lld,\"timeout\":%lld}",
		              (long long)srv->cfg.interval_ms, (long long)srv->cfg.timeout_ms);
}

void bx_write_connect_reply(bx_buf *out, const bx_server *srv, const char *id_json, bool ok,
                            const char *advice)
{
	bx_buf_puts(out, "{\"channel\":\"/meta/connect\",\"successful\":");
	bx_buf_puts(out, ok ? "true" : "false");
	if (id_json && id_json[0]) {
		bx_buf_puts(out, ",\"id\":");
		bx_buf_puts(out, id_json);
	}
	if (advice) {
		bx_buf_puts(out, ",\"advice\":");
		bx_buf_puts(out, advice);
	}
	bx_buf_putc(out, '}');
}

/*---- Sessions ---------------------------------------------------------------*/

bx_session *bx_need_session(bx_batch *b, const bx_in *in)
{
	bx_session *s = NULL;
	if (in->client_id)
		s = bx_session_find(b->srv, in->client_id, in->client_id_len);
	if (!s) {
		bx_reply_error(b, in, "402::session_unknown", BX_ADVICE_HANDSHAKE);
		return NULL;
	}
	/* Any message keeps the session alive for at least max-interval
	 * (PROTOCOL.md §3); a held connect keeps it alive by itself. */
	pthread_mutex_lock(&s->lock);
	int64_t e = b->now + b->srv->cfg.max_interval_ms;
	if (!s->hold && e > s->expiry) {
		s->expiry = e;
		bx_session_rearm_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
	return s;
}

/*---- Parsing ----------------------------------------------------------------*/

/* True when every number in v is finite. json-c accepts NaN, Infinity and
 * overflowing numbers (1e400) even in strict mode and writes the first two
 * back as bare words, which no client's JSON.parse accepts: one publisher
 * would break every subscriber's connect reply. Depth is bounded by the
 * tokener's. */
static bool all_finite(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_double:
		return isfinite(json_object_get_double(v));
	case json_type_array: {
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++)
			if (!all_finite(json_object_array_get_idx(v, i)))
				return false;
		return true;
	}
	case json_type_object: {
		json_object_object_foreach(v, key, val)
		{
			(void)key;
			if (!all_finite(val))
				return false;
		}
		return true;
	}
	default:
		return true;
	}
}

/* True when p is well-formed UTF-8 (RFC 3629): json-c's own check lets
 * overlong forms, encoded surrogates and code points past U+10FFFF through,
 * which clients' decoders refuse or replace. */
static bool utf8_valid(const unsigned char *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
		if (c >= 0xC2 && c <= 0xDF)
			n = 1;
		else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			if (c == 0xE0)
				lo = 0xA0; /* overlong */
			else if (c == 0xED)
				hi = 0x9F; /* U+D800..U+DFFF */
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			if (c == 0xF0)
				lo = 0x90; /* overlong */
			else if (c == 0xF4)
				hi = 0x8F; /* past U+10FFFF */
		} else
			return false;
		if (len - i <= n || p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
		i += n + 1;
	}
	return true;
}

json_object *bx_json_parse(const char *p, size_t len, size_t *end, enum json_tokener_error *err)
{
	*end = 0;
	if (len == 0 || len >= (size_t)INT32_MAX) {
		*err = json_tokener_error_parse_eof;
		return NULL;
	}
	if (!utf8_valid((const unsigned char *)p, len)) {
		*err = json_tokener_error_parse_utf8_string;
		return NULL;
	}
	json_tokener *tok = json_tokener_new_ex(BX_JSON_MAX_DEPTH);
	if (!tok) {
		*err = json_tokener_error_depth; /* json-c has no out-of-memory code */
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *v = json_tokener_parse_ex(tok, p, (int)len);
	*err = json_tokener_get_error(tok);
	*end = json_tokener_get_parse_end(tok);
	if (*err == json_tokener_continue) {
		/* A bare number at the very end needs to see the end of input. */
		v = json_tokener_parse_ex(tok, "", 1);
		*err = json_tokener_get_error(tok);
		*end = len;
	}
	json_tokener_free(tok);
	if (*err == json_tokener_success && !all_finite(v))
		*err = json_tokener_error_parse_number;
	if (*err != json_tokener_success) {
		json_object_put(v);
		return NULL;
	}
	return v;
}

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
	if (b->srv->api) {
		char err[BX_API_ERR_MAX];
		if (bx_api_incoming(b->srv, in, err)) {
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

void bx_dispatch(bx_server *srv, const bx_request *req, bx_response *res)
{
	size_t end = 0;
	enum json_tokener_error jerr = json_tokener_success;
	json_object *root = bx_json_parse(req->body, req->len, &end, &jerr);
	if (jerr == json_tokener_success && !root) {
		/* JSON null: parsed, but not a batch. */
		fail(res, 400, "a Bayeux request body is a JSON array of message objects");
		return;
	}
	if (jerr != json_tokener_success || !root) {
		json_object_put(root);
		res->status = 400;
		bx_buf_printf(&res->body, "invalid JSON in request body: %s\n",
		              req->len ? json_tokener_error_desc(jerr) : "empty body");
		return;
	}
	for (; end < req->len; end++) {
		char c = req->body[end];
		if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			json_object_put(root);
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
		json_object_put(root);
		fail(res, 400, "a Bayeux request body is a JSON array of message objects");
		return;
	}
	if (count == 0) {
		json_object_put(root);
		fail(res, 400, "a Bayeux request body needs at least one message");
		return;
	}
	if (count > srv->cfg.max_batch) {
		json_object_put(root);
		res->status = 400;
		bx_buf_printf(&res->body, "too many messages in one request: %zu (limit %zu)\n",
		              count, srv->cfg.max_batch);
		return;
	}

	if (count > 1 && batch_has_handshake(root, count)) {
		json_object_put(root);
		fail(res, 400, "a /meta/handshake must be the only message in its request");
		return;
	}

	bx_batch b = {.srv = srv,
	              .req = req,
	              .res = res,
	              .out = &res->body,
	              .any = false,
	              .count = count,
	              .now = bx_now(srv)};
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
		handle(&b, &in);
		if (res->hold)
			break; /* a held connect is the only message of its request */
	}
	json_object_put(root);
	if (res->hold) {
		bx_buf_free(&res->body);
		return;
	}
	bx_buf_putc(b.out, ']');
	if (b.out->failed)
		fail(res, 503, "out of memory");
}
