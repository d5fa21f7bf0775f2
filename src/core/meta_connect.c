/*
 * meta_connect.c — /meta/connect (PROTOCOL.md §3): answer at once with what
 * is queued, or park the request until a message, the poll timeout, a newer
 * connect, a disconnect or shutdown releases it.
 */
#include <stdlib.h>
#include <string.h>

#include "verbs.h"
#include "table.h"
#include "browser.h"
#include "stream.h"
#include "log.h"

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
	bool es = eventsource_connect(in) || s->sink;
	bool advise = in->advice != NULL || !s->connected || es;
	bool hold = !es && s->connected && !s->removed && b->count == 1 && s->qlen == 0 &&
	            timeout > 0 && b->req->waker.suspend && !atomic_load(&srv->stopping);
	s->connected = true;
	/* A newer connect releases the older one (PROTOCOL.md §3). */
	bx_session_wake_locked(s, BX_WAKE_REPLACED);

	/* A browser holds at most max_sessions_per_browser connects; one more
	 * tab is answered now and polls at the multi-session interval (§4). */
	int counted = BX_BROWSER_UNCOUNTED;
	bool multi = false;
	if (hold) {
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

	/* Answer now: queued messages first (unless a stream sends them), then
	 * the connect reply. */
	if (!s->sink && bx_session_drain_locked(s, b->out, b->any) > 0)
		b->any = true;
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
	bx_write_connect_reply(b->out, srv, in->id_json, true, advise ? advice.data : NULL);
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
		/* An open stream sends the queue (it opened: BX_WAKE_STREAM). */
		bool comma = !s->sink && bx_session_drain_locked(s, o, false) > 0;
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
		bx_write_connect_reply(o, srv, h->id_json, true, adv);
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
