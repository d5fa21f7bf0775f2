/*
 * table.c — the session registry (table.h): a hash table of sessions by
 * client id behind a rwlock, session creation and removal, and expiry when
 * a session's timer says so.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ackq.h"
#include "hooks.h"
#include "limits.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "table.h"

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
	bx_session *s = bx_session_new(srv, browser);
	if (!s)
		return NULL;
	bx_session_ref(s); /* the table's, beside the caller's */

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
	bx_metric_gauge(&srv->stats.m.sessions, 1);

	pthread_mutex_lock(&s->lock);
	s->expiry = bx_now(srv) + srv->cfg.max_interval_ms;
	bx_session_rearm_locked(s);
	pthread_mutex_unlock(&s->lock);
	return s;
fail:
	atomic_store(&s->refs, 1);
	bx_session_unref(s);
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
	bx_metric_gauge(&srv->stats.m.sessions, -1);
	bx_peer_release(srv, s->peer);

	bx_router_unsubscribe_all(&srv->router, s);
	pthread_mutex_lock(&s->lock);
	s->removed = true;
	bx_session_wake_locked(s, reason);
	bx_session_end_sink_locked(s, reason);
	/* never sent, or (ack mode) never acknowledged */
	bx_metric_add(&srv->stats.m.msg_expired, s->qlen + (s->ack ? bx_ackq_len(s->ack) : 0));
	bx_session_clear_locked(s);
	pthread_mutex_unlock(&s->lock);
	if (bx_timer_cancel(&srv->timer, &s->timer))
		bx_session_unref(s); /* the heap's reference */
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

/*---- Expiry -------------------------------------------------------------------*/

void bx_table_timer_fire(void *arg, bx_timer_ent *e, int64_t now)
{
	struct bx_server *srv = arg;
	bx_session *s = (bx_session *)((char *)e - offsetof(bx_session, timer));
	if (bx_session_timer_fire(s, now)) {
		bx_debug("session %.6s… expired", s->id);
		atomic_fetch_add(&srv->stats.expired, 1);
		bx_session_remove(srv, s, BX_WAKE_DISCONNECT);
	}
	bx_session_unref(s); /* the heap's reference */
}

void bx_table_timer_drop(bx_timer_ent *e)
{
	bx_session_unref((bx_session *)((char *)e - offsetof(bx_session, timer)));
}
