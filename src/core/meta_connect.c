/*
 * meta_connect.c — /meta/connect (PROTOCOL.md §3): answer at once with what
 * is queued, or park the request until a message, the poll timeout, a newer
 * connect, a disconnect or shutdown releases it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ackq.h"
#include "verbs.h"
#include "table.h"
#include "browser.h"
#include "stream.h"
#include "log.h"
#include "gate.h"

/* The client's advice.timeout, capped at the server's; -1 when absent. */
static int64_t client_timeout(const bx_in *in, int64_t server)
{
	json_object *t;
	if (!in->advice || !json_object_object_get_ex(in->advice, "timeout", &t) ||
	    !(json_object_is_type(t, json_type_int) || json_object_is_type(t, json_type_double)))
		return -1;
	int64_t v = json_object_get_int64(t);
	if (v < 0)
		return -1;
	return v < server ? v : server;
}

/* True when the connect says connectionType "eventsource" (Faye). */
static bool eventsource_connect(const bx_in *in)
{
	json_object *t;
	return json_object_object_get_ex(in->obj, "connectionType", &t) &&
	       json_object_is_type(t, json_type_string) &&
	       strcmp(json_object_get_string(t), "eventsource") == 0;
}

/* ext.ack of a connect in ack mode: the last batch the client received;
 * -1 when absent or not a non-negative integer (then nothing is dropped). */
static int64_t client_ack(const bx_in *in)
{
	json_object *a;
	if (!in->ext || !json_object_object_get_ex(in->ext, "ack", &a) ||
	    !json_object_is_type(a, json_type_int))
		return -1;
	int64_t v = json_object_get_int64(a);
	return v < 0 ? -1 : v;
}

/* Ack mode: writes every unacknowledged message (after a comma when
 * `comma`) and the ext member "ack":<batch> closing the batch into ext.
 * Returns how many messages were written. Caller holds s->lock. */
static size_t send_acked(bx_session *s, bx_buf *out, bool comma, char *ext, size_t cap)
{
	size_t count = 0, fresh = 0;
	uint64_t batch = bx_ackq_send(s->ack, out, comma, &count, &fresh, &s->srv->stats.m);
	atomic_fetch_add(&s->srv->stats.deliveries, fresh);
	snprintf(ext, cap, "\"ack\":%llu", (unsigned long long)batch);
	return count;
}

void bx_meta_connect(bx_batch *b, bx_in *in)
{
	bx_server *srv = b->srv;
	bx_session *s = bx_need_session(b, in);
	if (!s)
		return;
	int64_t timeout = client_timeout(in, srv->cfg.timeout_ms);
	if (timeout < 0)
		timeout = srv->cfg.timeout_ms;

	pthread_mutex_lock(&s->lock);
	/* Over an event stream a connect only keeps the session alive: it is
	 * answered at once and the stream delivers (Faye's eventsource: advice
	 * interval = the poll timeout, timeout 0). */
	bool es = eventsource_connect(in) || (s->sink && !s->sink->ops->connects);
	bool pushed = s->sink && s->sink->ops->connects; /* a WebSocket */
	bool advise = in->advice != NULL || !s->connected || es;
	/* Ack mode (PROTOCOL.md §8): the client's ext.ack drops what it
	 * received; a connect that finds anything unacknowledged is answered
	 * at once. */
	bool ack = bx_session_ack_mode(s);
	int64_t acked = ack ? client_ack(in) : -1;
	if (acked >= 0)
		bx_ackq_ack(s->ack, (uint64_t)acked);
	size_t pending = ack ? bx_ackq_len(s->ack) : s->qlen;
	/* Over a WebSocket (not in ack mode, where deliveries go with connect
	 * replies only) what is queued is pushed: hold all the same. */
	bool hold = !es && s->connected && !s->removed && b->count == 1 &&
	            (pending == 0 || (pushed && !ack)) &&
	            timeout > 0 && b->req->waker.suspend && !atomic_load(&srv->stopping);
	s->connected = true;
	/* A newer connect releases the older one (PROTOCOL.md §3). */
	bx_session_wake_locked(s, BX_WAKE_REPLACED);

	/* A browser holds at most max_sessions_per_browser connects; one more
	 * tab is answered now and polls at the multi-session interval (§4).
	 * A connect held over a WebSocket takes none of the browser's HTTP
	 * connections: not counted. */
	int counted = BX_BROWSER_UNCOUNTED;
	bool multi = false;
	if (hold && b->req->transport != BX_CT_WEBSOCKET) {
		counted = bx_browser_hold(srv, s->browser);
		if (counted == BX_BROWSER_FULL) {
			hold = false;
			multi = true;
		}
	}

	if (hold) {
		bx_hold *h = calloc(1, sizeof *h);
		if (!h && counted == BX_BROWSER_COUNTED)
			bx_browser_release(srv, s->browser);
		if (h) {
			bx_session_ref(s);
			h->session = s;
			h->waker = b->req->waker;
			/* After multiple-clients advice, advise again so the client
			 * drops the multi-session interval. */
			h->advise = advise || s->multi;
			h->browser_counted = counted == BX_BROWSER_COUNTED;
			s->multi = false;
			h->deadline = b->now + timeout;
			h->tr = bx_tr_of(b->req->transport);
			memcpy(h->id_json, in->id_json, sizeof h->id_json);
			h->timesync = in->timesync;
			h->waker.suspend(h->waker.arg);
			s->hold = h;
			atomic_fetch_add(&srv->stats.held_now, 1);
			bx_metrics_conn(&srv->stats.m, h->tr, true);
			bx_session_rearm_locked(s);
			pthread_mutex_unlock(&s->lock);
			b->res->hold = h;
			bx_session_unref(s);
			return;
		}
	}

	/* Answer now: queued messages first (unless a stream sends them; in ack
	 * mode always here), then the connect reply. */
	char ext[32] = "";
	if (ack) {
		if (send_acked(s, b->out, b->any, ext, sizeof ext) > 0)
			b->any = true;
	} else if (!s->sink && bx_session_drain_locked(s, b->out, b->any) > 0) {
		b->any = true;
	}
	if (b->any)
		bx_buf_putc(b->out, ',');
	b->any = true;
	bx_buf advice;
	bx_buf_init(&advice);
	/* A tab in multiple-clients mode stays in it until a connect of its
	 * is held again (then advised back to the normal interval). */
	if (multi)
		advise = true;
	if (es)
		bx_buf_printf(&advice, "{\"reconnect\":\"retry\",\"interval\":%lld,\"timeout\":0}",
		              (long long)srv->cfg.timeout_ms);
	else if (advise)
		bx_write_retry_advice(&advice, srv, multi || s->multi);
	bx_write_connect_reply_ext(b->out, srv, in->id_json, true, advise ? advice.data : NULL, ext,
	                           &in->timesync, in->timesync.present ? bx_wall_ms() : 0);
	bx_buf_free(&advice);
	if (multi) {
		s->multi = true;
		bx_debug("session %.6s…: browser holds %u connects already: multiple-clients",
		         s->id, srv->cfg.max_sessions_per_browser);
	}
	s->expiry = b->now +
	            (es        ? srv->cfg.timeout_ms
	             : s->multi ? srv->cfg.multi_session_interval_ms
	                        : srv->cfg.interval_ms) +
	            srv->cfg.max_interval_ms;
	bx_session_rearm_locked(s);
	pthread_mutex_unlock(&s->lock);
	bx_session_unref(s);
}

void bx_hold_finish(bx_server *srv, bx_hold *h, bx_response *res)
{
	if (h->gate) {
		bx_gate_finish(h, res);
		return;
	}
	bx_session *s = h->session;
	int64_t now = bx_now(srv);
	pthread_mutex_lock(&s->lock);
	if (h->reason == BX_WAKE_REPLACED) {
		/* The queue stays for the newer connect. HTTP 500, not 408: browsers
		 * retry a 408 by themselves (PROTOCOL.md §3). */
		res->status = 500;
		bx_buf_puts(&res->body, "this /meta/connect was replaced by a newer one\n");
	} else {
		bx_buf *o = &res->body;
		bx_buf_putc(o, '[');
		/* An open stream sends the queue (it opened: BX_WAKE_STREAM); in
		 * ack mode the connect reply always does. */
		char ext[32] = "";
		bool comma = bx_session_ack_mode(s)
		                     ? send_acked(s, o, false, ext, sizeof ext) > 0
		                     : !s->sink && bx_session_drain_locked(s, o, false) > 0;
		if (comma)
			bx_buf_putc(o, ',');
		bx_buf advice;
		bx_buf_init(&advice);
		const char *adv = NULL;
		if (h->reason == BX_WAKE_DISCONNECT) {
			adv = BX_ADVICE_NONE;
		} else if (h->advise || h->reason == BX_WAKE_SHUTDOWN) {
			bx_write_retry_advice(&advice, srv, false);
			adv = advice.data;
		}
		bx_write_connect_reply_ext(o, srv, h->id_json, true, adv, ext, &h->timesync,
		                           h->timesync.present ? bx_wall_ms() : 0);
		bx_buf_free(&advice);
		bx_buf_putc(o, ']');
		if (!s->removed) {
			s->expiry = now + srv->cfg.interval_ms + srv->cfg.max_interval_ms;
			bx_session_rearm_locked(s);
		}
	}
	pthread_mutex_unlock(&s->lock);
	bx_session_unref(s);
	free(h);
}

void bx_hold_abandon(bx_server *srv, bx_hold *h)
{
	if (h->gate) {
		bx_gate_abandon(h);
		return;
	}
	bx_session *s = h->session;
	pthread_mutex_lock(&s->lock);
	if (s->hold == h) { /* never released: detach without waking */
		s->hold = NULL;
		atomic_fetch_sub(&srv->stats.held_now, 1);
		bx_metrics_conn(&srv->stats.m, h->tr, false);
		if (h->browser_counted)
			bx_browser_release(srv, s->browser);
		s->expiry = bx_now(srv) + srv->cfg.max_interval_ms;
		bx_session_rearm_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
	bx_session_unref(s);
	free(h);
}
