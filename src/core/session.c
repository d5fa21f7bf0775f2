/*
 * session.c — one session: its queue, its held connect, its sink, and its
 * single timer (session.h). Finding, creating and removing sessions is the
 * table's (table.c).
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ackq.h"
#include "browser.h"
#include "log.h"
#include "server.h"
#include "session.h"

/*---- Ids -------------------------------------------------------------------*/

void bx_random_id(char *out)
{
	static const char alphabet[] =
	        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	for (size_t i = 0; i < BX_ID_LEN; i++)
		out[i] = alphabet[randombytes_uniform(62)];
	out[BX_ID_LEN] = '\0';
}

/*---- Life -----------------------------------------------------------------*/

bx_session *bx_session_new(struct bx_server *srv, const char *browser)
{
	bx_session *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	atomic_init(&s->refs, 1);
	s->srv = srv;
	pthread_mutex_init(&s->lock, NULL);
	bx_timer_ent_init(&s->timer);
	if (browser && strlen(browser) == BX_ID_LEN)
		memcpy(s->browser, browser, BX_ID_LEN + 1);
	return s;
}

/* Drops the ring of messages kept for Last-Event-ID (stream.c fills it). */
static void free_history(bx_session *s)
{
	for (size_t i = 0; i < s->hlen; i++)
		bx_msg_unref(s->hist[(s->hhead + i) % s->hcap]);
	free(s->hist);
	s->hist = NULL;
	s->hhead = s->hlen = s->hcap = 0;
}

void bx_session_clear_locked(bx_session *s)
{
	for (size_t i = 0; i < s->qlen; i++)
		bx_msg_unref(s->q[(s->qhead + i) % s->qcap]);
	s->qlen = s->qhead = 0;
	free_history(s);
	if (s->ack)
		bx_ackq_free(s->ack);
}

void bx_session_ref(bx_session *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void bx_session_unref(bx_session *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < s->qlen; i++)
		bx_msg_unref(s->q[(s->qhead + i) % s->qcap]);
	free(s->q);
	free_history(s);
	if (s->ack) {
		bx_ackq_free(s->ack);
		free(s->ack);
	}
	for (size_t i = 0; i < s->nsubs; i++)
		free(s->subs[i]);
	free(s->subs);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/*---- Queues and holds ------------------------------------------------------*/

void bx_session_wake_locked(bx_session *s, int reason)
{
	bx_hold *h = s->hold;
	if (!h)
		return;
	s->hold = NULL;
	h->reason = reason;
	atomic_fetch_sub(&s->srv->stats.held_now, 1);
	bx_metrics_conn(&s->srv->stats.m, h->tr, false);
	if (h->browser_counted) {
		h->browser_counted = false;
		bx_browser_release(s->srv, s->browser);
	}
	h->waker.resume(h->waker.arg);
}

bool bx_session_ack_enable(bx_session *s)
{
	bx_ackq *q = malloc(sizeof *q);
	if (!q)
		return false;
	bx_ackq_init(q);
	pthread_mutex_lock(&s->lock);
	if (s->ack) {
		free(q);
	} else {
		s->ack = q;
	}
	pthread_mutex_unlock(&s->lock);
	return true;
}

void bx_session_deliver(bx_session *s, bx_msg *m)
{
	pthread_mutex_lock(&s->lock);
	if (s->removed) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	if (s->ack) {
		/* Ack mode: kept until acknowledged, sent with connect replies
		 * only (a sink is not kicked). */
		uint64_t dropped = s->ack->dropped;
		bx_ackq_push(s->ack, m, s->srv->cfg.max_queue);
		if (s->ack->dropped != dropped) {
			s->dropped += s->ack->dropped - dropped;
			atomic_fetch_add(&s->srv->stats.dropped, s->ack->dropped - dropped);
		}
		bx_session_wake_locked(s, BX_WAKE_MESSAGE);
		pthread_mutex_unlock(&s->lock);
		return;
	}
	if (s->qlen == s->qcap) {
		size_t max = s->srv->cfg.max_queue;
		if (s->qcap >= max) {
			/* Full: drop the oldest (documented in README, "Limits"). */
			bx_msg_unref(s->q[s->qhead]);
			s->qhead = (s->qhead + 1) % s->qcap;
			s->qlen--;
			s->dropped++;
			atomic_fetch_add(&s->srv->stats.dropped, 1);
		} else {
			size_t cap = s->qcap ? s->qcap * 2 : 8;
			if (cap > max)
				cap = max;
			bx_msg **q = malloc(cap * sizeof *q);
			if (!q) {
				pthread_mutex_unlock(&s->lock);
				return;
			}
			for (size_t i = 0; i < s->qlen; i++)
				q[i] = s->q[(s->qhead + i) % s->qcap];
			free(s->q);
			s->q = q;
			s->qcap = cap;
			s->qhead = 0;
		}
	}
	bx_msg_ref(m);
	s->q[(s->qhead + s->qlen) % s->qcap] = m;
	s->qlen++;
	/* An attached sink sends it (an event stream, a socket); else a held
	 * connect. */
	if (s->sink)
		s->sink->ops->kick(s->sink);
	else
		bx_session_wake_locked(s, BX_WAKE_MESSAGE);
	pthread_mutex_unlock(&s->lock);
}

size_t bx_session_drain_some_locked(bx_session *s, bx_buf *out, bool comma, size_t max)
{
	size_t n = 0, start = out->len;
	int64_t now_us = s->qlen ? bx_clock_us() : 0;
	while (n < s->qlen && (n == 0 || out->len - start < max)) {
		bx_msg *m = s->q[(s->qhead + n) % s->qcap];
		if (comma || n > 0)
			bx_buf_putc(out, ',');
		bx_buf_append(out, m->data, m->len);
		bx_metrics_written(&s->srv->stats.m, m->born_us, now_us);
		bx_msg_unref(m);
		n++;
	}
	s->qhead = (s->qhead + n) % (s->qcap ? s->qcap : 1);
	s->qlen -= n;
	if (s->qlen == 0)
		s->qhead = 0;
	atomic_fetch_add(&s->srv->stats.deliveries, n);
	return n;
}

size_t bx_session_drain_locked(bx_session *s, bx_buf *out, bool comma)
{
	return bx_session_drain_some_locked(s, out, comma, SIZE_MAX);
}

void bx_session_rearm_locked(bx_session *s)
{
	if (s->removed)
		return;
	/* An attached sink keeps the session alive; its timer is its own
	 * (a stream's heartbeats and maximum age). */
	int64_t d = s->sink && !s->sink->ops->connects ? s->sink->ops->deadline(s->sink)
	            : s->hold ? s->hold->deadline
	                      : s->expiry;
	/* The heap holds a reference while the session is in it. */
	if (bx_timer_set(&s->srv->timer, &s->timer, d) == 1)
		bx_session_ref(s);
}

void bx_session_end_sink_locked(bx_session *s, int reason)
{
	if (s->sink)
		s->sink->ops->end(s->sink, reason);
}

bool bx_session_timer_fire(bx_session *s, int64_t now)
{
	bool expire = false;
	pthread_mutex_lock(&s->lock);
	if (!s->removed) {
		if (s->sink && !s->sink->ops->connects) {
			s->sink->ops->timer(s->sink, now);
		} else if (s->hold) {
			if (s->hold->deadline <= now)
				bx_session_wake_locked(s, BX_WAKE_TIMEOUT);
			else
				bx_session_rearm_locked(s);
		} else if (s->expiry <= now) {
			expire = true;
		} else {
			bx_session_rearm_locked(s);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return expire;
}

const char *bx_session_id(const bx_session *s)
{
	return s->id;
}
