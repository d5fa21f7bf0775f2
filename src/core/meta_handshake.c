/*
 * meta_handshake.c — /meta/handshake (PROTOCOL.md §2): negotiate the
 * connection type, create a session with an unguessable client id.
 */
#include <stdio.h>
#include <string.h>

#include "hooks.h"
#include "verbs.h"
#include "table.h"
#include "browser.h"
#include "stream.h"
#include "log.h"
#include "limits.h"

static const struct {
	unsigned bit;
	const char *name;
} conn_types[] = {
        {BX_CT_LONG_POLLING, "long-polling"},
        {BX_CT_CALLBACK_POLLING, "callback-polling"},
        {BX_CT_EVENTSOURCE, "eventsource"},
        {BX_CT_WEBSOCKET, "websocket"},
};
#define N_CONN_TYPES (sizeof conn_types / sizeof conn_types[0])

/* The server's enabled connection types as a JSON array. */
static void write_types(bx_buf *out, unsigned enabled)
{
	bool first = true;
	bx_buf_putc(out, '[');
	for (size_t i = 0; i < N_CONN_TYPES; i++) {
		if (!(enabled & conn_types[i].bit))
			continue;
		if (!first)
			bx_buf_putc(out, ',');
		first = false;
		bx_buf_json_str(out, conn_types[i].name, strlen(conn_types[i].name));
	}
	bx_buf_putc(out, ']');
}

/* The bits of the client's supportedConnectionTypes that we know. */
static unsigned client_types(json_object *msg)
{
	json_object *arr;
	unsigned bits = 0;
	if (!json_object_object_get_ex(msg, "supportedConnectionTypes", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return 0;
	size_t n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		json_object *t = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(t, json_type_string))
			continue;
		for (size_t k = 0; k < N_CONN_TYPES; k++)
			if (strcmp(json_object_get_string(t), conn_types[k].name) == 0)
				bits |= conn_types[k].bit;
	}
	return bits;
}

/* A browser id is ours only if it looks like one we issued. */
static bool valid_browser(const char *v)
{
	if (!v || strlen(v) != BX_ID_LEN)
		return false;
	for (size_t i = 0; i < BX_ID_LEN; i++) {
		char c = v[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return false;
	}
	return true;
}

/* Counts a refused handshake by the reason of its error text (/metrics). */
static void refused(bx_server *srv, const char *error)
{
	bx_metric_add(&srv->stats.m.hs_denied[bx_hs_deny_of(error)], 1);
}

/* True when the handshake's ext.ack is true (CometD's AckExtension.js). */
static bool wants_ack(const bx_in *in)
{
	json_object *a;
	return in->ext && json_object_object_get_ex(in->ext, "ack", &a) &&
	       json_object_is_type(a, json_type_boolean) && json_object_get_boolean(a);
}

void bx_meta_handshake(bx_batch *b, bx_in *in)
{
	bx_server *srv = b->srv;
	unsigned common = client_types(in->obj) & srv->conn_types;
	if (!common) {
		bx_reply_open(b, in, "/meta/handshake", false);
		bx_buf_puts(b->out, ",\"error\":\"301::connection_types_unsupported\","
		                    "\"supportedConnectionTypes\":");
		write_types(b->out, srv->conn_types);
		bx_buf_puts(b->out, ",\"advice\":" BX_ADVICE_NONE);
		bx_reply_close(b, in, NULL);
		refused(srv, "301::connection_types_unsupported");
		return;
	}

	if (srv->api && !bx_api_allow(srv, BX_POLICY_HANDSHAKE, NULL, "/meta/handshake", in)) {
		bx_reply_error(b, in, "403::handshake_denied", BX_ADVICE_NONE);
		refused(srv, "403::handshake_denied");
		return;
	}

	const char *browser = b->req->browser;
	if (!valid_browser(browser)) {
		bx_random_id(b->res->set_browser);
		browser = b->res->set_browser;
	}
	/* Limits per client address (limits.c, docs/SECURITY.md). */
	const char *lim = bx_peer_admit(srv, b->req->peer, b->now);
	if (lim) {
		bx_reply_error(b, in, lim, "{\"reconnect\":\"handshake\",\"interval\":5000}");
		refused(srv, lim);
		return;
	}
	bool full = false;
	bx_session *s = bx_session_create(srv, browser, &full);
	if (!s) {
		bx_peer_release(srv, b->req->peer);
		const char *why = full ? "503::too_many_sessions" : "503::out_of_memory";
		bx_reply_error(b, in, why, "{\"reconnect\":\"handshake\",\"interval\":5000}");
		refused(srv, why);
		return;
	}
	if (b->req->peer)
		snprintf(s->peer, sizeof s->peer, "%s", b->req->peer);
	atomic_fetch_add(&srv->stats.handshakes, 1);
	if (srv->api)
		bx_api_session_event(srv, s, true);
	/* The ack extension, asked for by the client (PROTOCOL.md §8). */
	bool ack = wants_ack(in) && bx_session_ack_enable(s);
	bx_reply_open(b, in, "/meta/handshake", true);
	bx_buf *o = b->out;
	bx_buf_puts(o, ",\"clientId\":\"");
	bx_buf_puts(o, s->id);
	bx_buf_puts(o, "\",\"version\":\"1.0\",\"minimumVersion\":\"1.0\","
	               "\"supportedConnectionTypes\":");
	write_types(o, srv->conn_types);
	bx_buf_puts(o, ",\"advice\":");
	bx_write_retry_advice(o, srv, false);
	/* Extensions offered: ack (ack.c), replay (history.h). */
	const char *ext = ack ? (srv->history ? "\"ack\":true,\"replay\":true" : "\"ack\":true")
	                      : (srv->history ? "\"replay\":true" : NULL);
	bx_reply_close(b, in, ext);
	bx_debug("session %.6s… created%s", s->id, ack ? " (ack extension on)" : "");
	bx_session_unref(s);
}
