/*
 * publish.c — publishing on a broadcast channel (PROTOCOL.md §5): serialize
 * the delivered form once, queue it for every matching subscriber, and ack
 * the publisher with a reply that carries no `data`.
 */
#include <string.h>

#include "hooks.h"
#include "channel.h"
#include "durable.h"
#include "history.h"
#include "verbs.h"
#include "table.h"
#include "browser.h"
#include "stream.h"
#include "log.h"
#include "bus.h"
#include "json.h"

size_t bx_broadcast(bx_server *srv, const char *channel, size_t len, bx_msg *m)
{
	size_t n = bx_router_deliver(&srv->router, channel, len, m);
	/* The origin delivers locally itself; the other nodes get it once. */
	if (srv->bus)
		srv->bus->ops->publish(srv->bus->self, channel, len, m);
	atomic_fetch_add(&srv->stats.publishes, 1);
	return n;
}

size_t bx_bus_deliver(bx_server *srv, const char *channel, size_t chlen, const char *json,
                      size_t len, uint64_t replay_id)
{
	/* What another node sent is checked like a client's publish: a
	 * broadcast channel, and a JSON object (never break a reply array). */
	unsigned flags;
	int shown = (int)(chlen > 64 ? 64 : chlen);
	if (!bx_channel_check(channel, chlen, &flags) ||
	    (flags & (BX_CH_META | BX_CH_SERVICE | BX_CH_WILD))) {
		bx_debug("bus: dropped a message for %.*s", shown, channel);
		return 0;
	}
	size_t end = 0;
	enum json_tokener_error jerr;
	json_object *o = bx_json_parse(json, len, &end, &jerr);
	bool ok = o && json_object_is_type(o, json_type_object) && end == len;
	json_object_put(o);
	if (!ok) {
		bx_debug("bus: dropped a message for %.*s that is not a JSON object", shown, channel);
		return 0;
	}
	/* A retained channel's message from the shared store (store.h), with
	 * the id every node gives it. */
	if (replay_id && bx_history_rule(srv->history, channel, chlen))
		return bx_history_bus_deliver(srv, channel, chlen, json, len, replay_id);
	/* (Retained on the publishing node but not here: --retain differs
	 * between nodes. Delivered as a plain message.) */
	bx_msg *m = bx_msg_new(json, len);
	if (!m)
		return 0;
	size_t n = bx_router_deliver(&srv->router, channel, chlen, m);
	bx_msg_unref(m);
	return n;
}



/* PROTOCOL.md §5: a publish with no clientId is a backend's, accepted only
 * when the transport authorized it (bx_request.backend). */
static void deny_sessionless(bx_batch *b, bx_in *in)
{
	const char *hint =
	        bx_swap_peek(&b->srv->publish_token)
	                ? "a publish with no clientId needs the publish token: send "
	                  "'Authorization: Bearer <token>', or handshake first"
	                : "publishing with no clientId is off on this server: handshake first, "
	                  "or configure a publish token (bayeuxd --publish-token-file FILE, or "
	                  "--allow-local-publish for loopback)";
	bx_reply_open(b, in, NULL, false);
	bx_buf_puts(b->out, ",\"error\":\"403::publish_denied\",\"hint\":");
	bx_buf_json_str(b->out, hint, strlen(hint));
	bx_buf_putc(b->out, '}');
}

void bx_publish_message(bx_batch *b, bx_in *in)
{
	if (in->chflags & BX_CH_WILD) {
		bx_reply_error(b, in, "405::channel_invalid", NULL);
		return;
	}
	bx_session *s = NULL; /* stays NULL for a backend */
	if (in->client_id) {
		s = bx_need_session(b, in);
		if (!s)
			return;
	} else if (!b->req->backend) {
		deny_sessionless(b, in);
		return;
	}
	if (!in->data) {
		bx_session_unref(s);
		bx_reply_error(b, in, "400::data_missing", NULL);
		return;
	}
	if (b->srv->api) {
		const char *err = NULL;
		if (!bx_api_allow(b->srv, BX_POLICY_PUBLISH, s, in->channel, in))
			err = "403:denied_by_security_policy:publish_denied";
		else if (!bx_api_listeners(b->srv, s, in))
			err = "404::message_deleted";
		if (err) {
			bx_session_unref(s);
			bx_reply_error(b, in, err, NULL);
			return;
		}
	}
	/* /service/** is never broadcast (PROTOCOL.md §5). */
	if (!(in->chflags & BX_CH_SERVICE)) {
		char err[BX_API_ERR_MAX];
		bx_msg *m = bx_api_delivery(b->srv, s, in->channel, in->chlen, in->data,
		                            in->id_json, err);
		if (!m) {
			bx_session_unref(s);
			bx_reply_error(b, in, err[0] ? err : "500::out_of_memory", NULL);
			return;
		}
		const bx_retain_rule *rule =
		        bx_history_rule(b->srv->history, in->channel, in->chlen);
		if (rule) {
			/* Delivered once durable; the reply carries the replay id. */
			bx_publish_retained(b, in, rule, m);
			bx_msg_unref(m);
			bx_session_unref(s);
			return;
		}
		bx_broadcast(b->srv, in->channel, in->chlen, m);
		bx_msg_unref(m);
	}
	bx_session_unref(s);
	bx_reply_open(b, in, NULL, true);
	bx_buf_putc(b->out, '}');
}
