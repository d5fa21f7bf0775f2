/*
 * transport_sse.c — Server-Sent Events on the wire (seed §3, §4.3): the
 * eventsource connection type of Faye's browser client, and plain streams
 * for consumers with no Bayeux client.
 *
 * Faye (src/transport/event_source.js): after the handshake the client
 * opens GET <path>/<clientId> with Accept: text/event-stream and keeps
 * POSTing its messages, connects included (connectionType "eventsource",
 * answered at once: meta_connect.c). Every message for the session comes as
 * an event whose data is a JSON array.
 *
 * Plain: GET <path>/sse?subscribe=CHANNEL[&subscribe=...] makes a session
 * through the same handshake and subscribe as a Bayeux client's (so the same
 * extensions and policy decide) and streams one event per message, data the
 * message object {"channel":…,"data":…}. A reconnecting EventSource sends
 * Last-Event-ID "<clientId>-<n>" and gets its session back, with what it
 * missed, while the session lives (--max-interval after the stream ends).
 *
 * The response is a content-reader callback: when stream.c has nothing to
 * send, it suspends the connection (never returns 0 bytes to be called
 * again: that would spin) and a message, a heartbeat, the stream's end or
 * shutdown resumes it. No thread waits for a stream. HTTP/1.1 clients get it
 * chunked, HTTP/1.0 clients EOF-delimited (libmicrohttpd decides from the
 * request's version for a response of unknown size); either way the events
 * are framed by SSE's own blank lines, not by chunks.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/dispatch.h"
#include "core/stream.h"
#include "core/table.h"
#include "core/log.h"
#include "http.h"
#include "sse.h"

/* Most subscribe= parameters on one plain request. */
#define BX_SSE_MAX_SUBSCRIPTIONS 64
/* libmicrohttpd's buffer for each read of the stream. */
#define BX_SSE_BLOCK 4096

/*---- Answers -------------------------------------------------------------------*/

/* Never a 405 here, so no Allow header. */
static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	return bx_http_answer(conn, status, "text/plain; charset=utf-8", (void *)text, strlen(text),
	                      MHD_RESPMEM_MUST_COPY, true);
}

/*---- The stream's response ------------------------------------------------------*/

static void park(void *arg)
{
	MHD_suspend_connection(arg);
}

static void unpark(void *arg)
{
	MHD_resume_connection(arg);
}

/* libmicrohttpd asks for the next bytes of the stream. */
static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	bx_stream *st = cls;
	if (st->off >= st->out.len) {
		switch (bx_stream_fill(st->session->srv, st)) {
		case BX_STREAM_WAIT:
			return 0; /* suspended: resumed when there is something */
		case BX_STREAM_END:
			return MHD_CONTENT_READER_END_OF_STREAM;
		default:
			break;
		}
	}
	size_t n = st->out.len - st->off;
	if (n > max)
		n = max;
	memcpy(buf, st->out.data + st->off, n);
	st->off += n;
	bx_metric_add(&st->session->srv->stats.m.bytes_out, n);
	return (ssize_t)n;
}

/* The response is gone: the request completed, or the client went away. */
static void free_stream(void *cls)
{
	bx_stream *st = cls;
	bx_stream_close(st->session->srv, st);
}

/* Opens a stream for s and queues the streaming response. */
static enum MHD_Result start_stream(bx_server *srv, struct MHD_Connection *conn, bx_session *s,
                                    bool plain, bool has_last, uint64_t last, const char *origin)
{
	bx_stream *st = NULL;
	bx_waker w = {.suspend = park, .resume = unpark, .arg = conn};
	switch (bx_stream_open(srv, s, plain, has_last, last, w, &st)) {
	case BX_STREAM_OPENED:
		break;
	case BX_STREAM_GONE:
		return send_text(conn, MHD_HTTP_NOT_FOUND, "the session ended: handshake again\n");
	case BX_STREAM_BUSY:
		return send_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
		                 "this browser holds --max-sessions-per-browser streams and "
		                 "connects already: use long polling\n");
	default:
		return send_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
	}
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, BX_SSE_BLOCK,
	                                                           read_stream, st, free_stream);
	if (!r) {
		bx_stream_close(srv, st);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        "text/event-stream; charset=utf-8");
	/* Neither cache nor buffer a stream (seed §3.2, §5.3): nginx reads
	 * X-Accel-Buffering. */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (srv->cors) {
		MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Origin");
		if (origin) {
			MHD_add_response_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN,
			                        origin);
			MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
		}
	}
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r); /* on failure this frees the stream too */
	bx_debug("session %.6s…: %s stream opened%s", s->id, plain ? "plain" : "eventsource",
	         has_last ? " (resuming)" : "");
	return ret;
}

/*---- Routing ---------------------------------------------------------------------*/

/* The part of url after the mount ("/sse", "/<clientId>"). */
static const char *after_mount(const bx_server *srv, const char *url)
{
	size_t n = strlen(srv->cfg.path);
	return n == 1 ? url : url + n;
}

bool bx_sse_wanted(bx_server *srv, struct MHD_Connection *conn, const char *url)
{
	if (!(srv->conn_types & BX_CT_EVENTSOURCE))
		return false;
	if (strcmp(after_mount(srv, url), BX_SSE_PLAIN) == 0)
		return true;
	const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept");
	return accept && strstr(accept, "text/event-stream");
}

/* Reads "<digits>" into *n; false if it is not one (or overflows). */
static bool parse_seq(const char *p, uint64_t *n)
{
	if (!*p)
		return false;
	uint64_t v = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*n = v;
	return true;
}

/* Faye: GET <path>/<clientId>, Accept: text/event-stream. */
static enum MHD_Result serve_faye(bx_server *srv, struct MHD_Connection *conn, const char *id,
                                  const char *origin)
{
	bx_session *s = bx_session_find(srv, id, strlen(id));
	if (s && s->plain) {
		bx_session_unref(s);
		s = NULL;
	}
	if (!s)
		return send_text(conn, MHD_HTTP_NOT_FOUND,
		                 "no session with this clientId: handshake first (the event "
		                 "stream is GET <path>/<clientId>)\n");
	const char *lei = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
	uint64_t last = 0;
	bool has_last = lei && parse_seq(lei, &last);
	enum MHD_Result ret = start_stream(srv, conn, s, false, has_last, last, origin);
	bx_session_unref(s);
	return ret;
}

typedef struct subs_ctx {
	const char *v[BX_SSE_MAX_SUBSCRIPTIONS];
	size_t n;
	bool too_many;
} subs_ctx;

static enum MHD_Result collect_sub(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
	(void)kind;
	subs_ctx *c = cls;
	if (strcmp(key, "subscribe") != 0 || !value)
		return MHD_YES;
	if (c->n == BX_SSE_MAX_SUBSCRIPTIONS) {
		c->too_many = true;
		return MHD_NO;
	}
	c->v[c->n++] = value;
	return MHD_YES;
}

/* Runs one message through the core as a client's request would go, and
 * returns its reply object (a new reference; put `arr`), or NULL. */
static json_object *run(bx_server *srv, struct MHD_Connection *conn, bx_buf *msg, json_object **arr)
{
	*arr = NULL;
	if (msg->failed)
		return NULL;
	bx_request req = {
	        .body = msg->data,
	        .len = msg->len,
	        .browser = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, "BAYEUX_BROWSER"),
	        .transport = BX_CT_EVENTSOURCE,
	};
	bx_response res;
	bx_response_init(&res);
	bx_dispatch(srv, &req, &res);
	if (res.status == 200 && res.body.data)
		*arr = json_tokener_parse(res.body.data);
	bx_response_free(&res);
	return *arr ? json_object_array_get_idx(*arr, 0) : NULL;
}

/* The reply's error text, or a stand-in. */
static const char *reply_error(json_object *reply)
{
	json_object *e;
	if (reply && json_object_object_get_ex(reply, "error", &e) &&
	    json_object_is_type(e, json_type_string))
		return json_object_get_string(e);
	return "no reply";
}

static bool reply_ok(json_object *reply)
{
	json_object *v;
	return reply && json_object_object_get_ex(reply, "successful", &v) &&
	       json_object_get_boolean(v);
}

/* Creates a plain session subscribed to subs, through /meta/handshake and
 * /meta/subscribe (the same extensions and policy as any client). Returns it
 * with a reference, or NULL after answering the request. */
static bx_session *plain_session(bx_server *srv, struct MHD_Connection *conn, const subs_ctx *subs,
                                 enum MHD_Result *ret)
{
	bx_buf m;
	bx_buf_init(&m);
	bx_buf_puts(&m, "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
	                "\"supportedConnectionTypes\":[\"eventsource\"]");
	/* An authentication token (docs/SECURITY.md) goes where a Bayeux client
	 * puts it, ext.auth.token: from ?token= (a browser's EventSource cannot
	 * set headers) or Authorization: Bearer. */
	const char *token = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
	const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	if (!token && authz && strncasecmp(authz, "Bearer ", 7) == 0)
		token = authz + 7;
	if (token && token[0]) {
		bx_buf_puts(&m, ",\"ext\":{\"auth\":{\"token\":");
		bx_buf_json_str(&m, token, strlen(token));
		bx_buf_puts(&m, "}}");
	}
	bx_buf_puts(&m, "}]");
	json_object *arr, *reply = run(srv, conn, &m, &arr);
	bx_buf_free(&m);
	json_object *idv;
	if (!reply_ok(reply) || !json_object_object_get_ex(reply, "clientId", &idv)) {
		char text[320];
		snprintf(text, sizeof text, "handshake refused: %s\n", reply_error(reply));
		json_object_put(arr);
		*ret = send_text(conn, MHD_HTTP_FORBIDDEN, text);
		return NULL;
	}
	char id[BX_ID_LEN + 1];
	snprintf(id, sizeof id, "%s", json_object_get_string(idv));
	json_object_put(arr);
	bx_session *s = bx_session_find(srv, id, strlen(id));
	if (!s) {
		*ret = send_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "the session ended at once\n");
		return NULL;
	}
	pthread_mutex_lock(&s->lock);
	s->plain = true;
	pthread_mutex_unlock(&s->lock);

	bx_buf_init(&m);
	bx_buf_printf(
	        &m, "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":[", id);
	for (size_t i = 0; i < subs->n; i++) {
		if (i)
			bx_buf_putc(&m, ',');
		bx_buf_json_str(&m, subs->v[i], strlen(subs->v[i]));
	}
	bx_buf_puts(&m, "]}]");
	reply = run(srv, conn, &m, &arr);
	bx_buf_free(&m);
	if (!reply_ok(reply)) {
		char text[320];
		snprintf(text, sizeof text, "subscribe refused: %s\n", reply_error(reply));
		json_object_put(arr);
		bx_session_remove(srv, s, BX_WAKE_DISCONNECT);
		bx_session_unref(s);
		*ret = send_text(conn, MHD_HTTP_FORBIDDEN, text);
		return NULL;
	}
	json_object_put(arr);
	return s;
}

/* Plain: GET <path>/sse?subscribe=CHANNEL[&subscribe=...]. */
static enum MHD_Result serve_plain(bx_server *srv, struct MHD_Connection *conn, const char *origin)
{
	subs_ctx subs = {.n = 0};
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_sub, &subs);
	if (subs.too_many) {
		char text[96];
		snprintf(text, sizeof text, "at most %d subscribe parameters\n",
		         BX_SSE_MAX_SUBSCRIPTIONS);
		return send_text(conn, MHD_HTTP_BAD_REQUEST, text);
	}
	if (subs.n == 0)
		return send_text(
		        conn, MHD_HTTP_BAD_REQUEST,
		        "a plain SSE stream needs at least one subscribe=CHANNEL parameter, "
		        "e.g. " BX_SSE_PLAIN "?subscribe=/chat/**\n");

	/* A reconnecting EventSource: Last-Event-ID "<clientId>-<n>" of a plain
	 * session that still lives gets it back, and what it missed. */
	bx_session *s = NULL;
	uint64_t last = 0;
	bool has_last = false;
	const char *lei = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
	if (lei && strlen(lei) > BX_ID_LEN + 1 && lei[BX_ID_LEN] == '-' &&
	    parse_seq(lei + BX_ID_LEN + 1, &last)) {
		s = bx_session_find(srv, lei, BX_ID_LEN);
		if (s && !s->plain) {
			bx_session_unref(s);
			s = NULL;
		}
		has_last = s != NULL;
	}
	enum MHD_Result ret = MHD_NO;
	if (!s && !(s = plain_session(srv, conn, &subs, &ret)))
		return ret;
	ret = start_stream(srv, conn, s, true, has_last, last, origin);
	bx_session_unref(s);
	return ret;
}

enum MHD_Result bx_sse_serve(bx_server *srv, struct MHD_Connection *conn, const char *url,
                             const char *origin)
{
	const char *rest = after_mount(srv, url);
	if (strcmp(rest, BX_SSE_PLAIN) == 0)
		return serve_plain(srv, conn, origin);
	if (rest[0] == '/' && strlen(rest + 1) == BX_ID_LEN)
		return serve_faye(srv, conn, rest + 1, origin);
	return send_text(conn, MHD_HTTP_NOT_FOUND,
	                 "event streams are GET <path>/<clientId> (Bayeux eventsource) or "
	                 "<path>" BX_SSE_PLAIN "?subscribe=CHANNEL\n");
}
