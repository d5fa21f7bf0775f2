/*
 * session.c — sessions, their message queues, and the session table.
 *
 * A session is reference-counted: the table holds one reference while it is
 * registered, the timer heap one while it is in the heap, a held connect one,
 * and every request or publish that is working with it one.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "core.h"
#include "log.h"
#include "peers.h"

/*---- Shared messages ------------------------------------------------------*/

bx_msg *bx_msg_new(const char *data, size_t len)
{
	bx_msg *m = malloc(sizeof *m + len + 1);
	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->len = len;
	memcpy(m->data, data, len);
	m->data[len] = '\0';
	return m;
}

void bx_msg_ref(bx_msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void bx_msg_unref(bx_msg *m)
{
	if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}

/*---- Ids -------------------------------------------------------------------*/

void bx_random_id(char *out)
{
	static const char alphabet[] =
	        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	for (size_t i = 0; i < BX_ID_LEN; i++)
		out[i] = alphabet[randombytes_uniform(62)];
	out[BX_ID_LEN] = '\0';
}

/*---- Reference counting ----------------------------------------------------*/

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
	bx_stream_history_free(s);
	for (size_t i = 0; i < s->nsubs; i++)
		free(s->subs[i]);
	free(s->subs);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/*---- The table -------------------------------------------------------------*/

void bx_table_init(bx_table *t)
{
	pthread_rwlock_init(&t->lock, NULL);
	t->buckets = NULL;
	t->nbuckets = t->count = 0;
}

/* Doubles the bucket array; caller holds the write lock. */
static bool table_grow(bx_table *t)
{
	size_t n = t->nbuckets ? t->nbuckets * 2 : 1024;
	bx_session **b = calloc(n, sizeof *b);
	if (!b)
		return false;
	for (size_t i = 0; i < t->nbuckets; i++) {
		bx_session *s = t->buckets[i];
		while (s) {
			bx_session *next = s->next;
			size_t k = bx_hash(s->id, BX_ID_LEN) & (n - 1);
			s->next = b[k];
			b[k] = s;
			s = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
	return true;
}

bx_session *bx_session_create(struct bx_server *srv, const char *browser, bool *full)
{
	*full = false;
	bx_session *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	atomic_init(&s->refs, 2); /* the table's and the caller's */
	s->srv = srv;
	pthread_mutex_init(&s->lock, NULL);
	s->heap_idx = SIZE_MAX;
	if (browser && strlen(browser) == BX_ID_LEN)
		memcpy(s->browser, browser, BX_ID_LEN + 1);

	bx_table *t = &srv->sessions;
	pthread_rwlock_wrlock(&t->lock);
	if (t->count >= srv->cfg.max_sessions) {
		pthread_rwlock_unlock(&t->lock);
		*full = true;
		goto fail;
	}
	if (t->count >= t->nbuckets && !table_grow(t)) {
		pthread_rwlock_unlock(&t->lock);
		goto fail;
	}
	/* 131 random bits make a collision absurdly unlikely; check anyway. */
	for (;;) {
		bx_random_id(s->id);
		size_t k = bx_hash(s->id, BX_ID_LEN) & (t->nbuckets - 1);
		bx_session *o = t->buckets[k];
		while (o && memcmp(o->id, s->id, BX_ID_LEN) != 0)
			o = o->next;
		if (!o) {
			s->next = t->buckets[k];
			t->buckets[k] = s;
			break;
		}
	}
	t->count++;
	pthread_rwlock_unlock(&t->lock);

	pthread_mutex_lock(&s->lock);
	s->expiry = bx_now(srv) + srv->cfg.max_interval_ms;
	bx_session_rearm_locked(s);
	pthread_mutex_unlock(&s->lock);
	return s;
fail:
	pthread_mutex_destroy(&s->lock);
	free(s);
	return NULL;
}

bx_session *bx_session_find(struct bx_server *srv, const char *id, size_t len)
{
	if (len != BX_ID_LEN)
		return NULL;
	bx_table *t = &srv->sessions;
	pthread_rwlock_rdlock(&t->lock);
	bx_session *s = NULL;
	if (t->nbuckets) {
		s = t->buckets[bx_hash(id, len) & (t->nbuckets - 1)];
		/* A client id is a bearer secret: compare in constant time. */
		while (s && sodium_memcmp(s->id, id, BX_ID_LEN) != 0)
			s = s->next;
		if (s)
			bx_session_ref(s);
	}
	pthread_rwlock_unlock(&t->lock);
	return s;
}

size_t bx_session_count(struct bx_server *srv)
{
	pthread_rwlock_rdlock(&srv->sessions.lock);
	size_t n = srv->sessions.count;
	pthread_rwlock_unlock(&srv->sessions.lock);
	return n;
}

void bx_session_remove(struct bx_server *srv, bx_session *s, int reason)
{
	bx_table *t = &srv->sessions;
	bool found = false;
	pthread_rwlock_wrlock(&t->lock);
	if (t->nbuckets) {
		bx_session **pp = &t->buckets[bx_hash(s->id, BX_ID_LEN) & (t->nbuckets - 1)];
		while (*pp && *pp != s)
			pp = &(*pp)->next;
		if (*pp) {
			*pp = s->next;
			s->next = NULL;
			t->count--;
			found = true;
		}
	}
	pthread_rwlock_unlock(&t->lock);
	if (!found)
		return;
	bx_peer_release(srv, s->peer);

	bx_router_unsubscribe_all(&srv->router, s);
	pthread_mutex_lock(&s->lock);
	s->removed = true;
	bx_session_wake_locked(s, reason);
	bx_stream_end_locked(s, reason);
	for (size_t i = 0; i < s->qlen; i++)
		bx_msg_unref(s->q[(s->qhead + i) % s->qcap]);
	s->qlen = s->qhead = 0;
	bx_stream_history_free(s);
	pthread_mutex_unlock(&s->lock);
	bx_timer_cancel(srv, s);
	bx_debug("session %.6s… removed", s->id);
	if (srv->api)
		bx_api_session_event(srv, s, false);
	bx_session_unref(s); /* the table's reference */
}

void bx_session_foreach(struct bx_server *srv, void (*fn)(bx_session *, void *), void *arg)
{
	bx_table *t = &srv->sessions;
	bx_sessvec all = {0};
	pthread_rwlock_rdlock(&t->lock);
	all.v = malloc((t->count + 1) * sizeof *all.v);
	if (all.v) {
		for (size_t i = 0; i < t->nbuckets; i++)
			for (bx_session *s = t->buckets[i]; s; s = s->next) {
				bx_session_ref(s);
				all.v[all.n++] = s;
			}
	}
	pthread_rwlock_unlock(&t->lock);
	for (size_t i = 0; i < all.n; i++)
		fn(all.v[i], arg);
	bx_sessvec_release(&all);
}

static void remove_one(bx_session *s, void *arg)
{
	bx_session_remove(arg, s, BX_WAKE_SHUTDOWN);
}

void bx_table_destroy(struct bx_server *srv)
{
	bx_session_foreach(srv, remove_one, srv);
	free(srv->sessions.buckets);
	srv->sessions.buckets = NULL;
	srv->sessions.nbuckets = 0;
	pthread_rwlock_destroy(&srv->sessions.lock);
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
	if (h->browser_counted) {
		h->browser_counted = false;
		bx_browser_release(s->srv, s->browser);
	}
	h->waker.resume(h->waker.arg);
}

void bx_session_deliver(bx_session *s, bx_msg *m)
{
	pthread_mutex_lock(&s->lock);
	if (s->removed) {
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
	/* An open event stream sends it (stream.c); else a held connect. */
	if (s->stream)
		bx_stream_kick_locked(s);
	else
		bx_session_wake_locked(s, BX_WAKE_MESSAGE);
	pthread_mutex_unlock(&s->lock);
}

size_t bx_session_drain_locked(bx_session *s, bx_buf *out, bool comma)
{
	size_t n = s->qlen;
	for (size_t i = 0; i < n; i++) {
		bx_msg *m = s->q[(s->qhead + i) % s->qcap];
		if (comma || i > 0)
			bx_buf_putc(out, ',');
		bx_buf_append(out, m->data, m->len);
		bx_msg_unref(m);
	}
	s->qhead = s->qlen = 0;
	atomic_fetch_add(&s->srv->stats.deliveries, n);
	return n;
}

void bx_session_rearm_locked(bx_session *s)
{
	if (s->removed)
		return;
	/* An open stream keeps the session alive; its timer is for heartbeats
	 * and its maximum age. */
	int64_t d = s->stream ? bx_stream_deadline(s->stream)
	            : s->hold ? s->hold->deadline
	                      : s->expiry;
	bx_timer_set(s->srv, s, d);
}
