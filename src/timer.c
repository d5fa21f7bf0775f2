/*
 * timer.c — poll timeouts and session expiry in one binary min-heap.
 *
 * Each session is in the heap at most once, keyed by the only deadline that
 * matters to it now: its event stream's next heartbeat or maximum age while
 * one is open (stream.c), its held connect's timeout while one is held, its
 * expiry otherwise. Nothing ever scans all sessions; one thread sleeps until
 * the earliest deadline (or until an earlier one is set).
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "core.h"
#include "log.h"

int64_t bx_clock_monotonic(void *arg)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bx_timer_init(bx_timer *t)
{
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	t->heap = NULL;
	t->n = t->cap = 0;
	t->stop = false;
}

void bx_timer_destroy(bx_timer *t)
{
	for (size_t i = 0; i < t->n; i++) {
		t->heap[i]->heap_idx = SIZE_MAX;
		bx_session_unref(t->heap[i]);
	}
	free(t->heap);
	t->heap = NULL;
	t->n = t->cap = 0;
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
}

/*---- Heap primitives (caller holds the lock) -------------------------------*/

static void place(bx_timer *t, size_t i, bx_session *s)
{
	t->heap[i] = s;
	s->heap_idx = i;
}

static void sift_up(bx_timer *t, size_t i)
{
	bx_session *s = t->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (t->heap[p]->deadline <= s->deadline)
			break;
		place(t, i, t->heap[p]);
		i = p;
	}
	place(t, i, s);
}

static void sift_down(bx_timer *t, size_t i)
{
	bx_session *s = t->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= t->n)
			break;
		if (c + 1 < t->n && t->heap[c + 1]->deadline < t->heap[c]->deadline)
			c++;
		if (s->deadline <= t->heap[c]->deadline)
			break;
		place(t, i, t->heap[c]);
		i = c;
	}
	place(t, i, s);
}

/* Takes entry i out of the heap; returns it (its heap reference with it). */
static bx_session *heap_remove(bx_timer *t, size_t i)
{
	bx_session *s = t->heap[i];
	s->heap_idx = SIZE_MAX;
	t->n--;
	if (i < t->n) {
		place(t, i, t->heap[t->n]);
		sift_down(t, i);
		sift_up(t, t->heap[i]->heap_idx);
	}
	return s;
}

/*---- API -------------------------------------------------------------------*/

void bx_timer_set(struct bx_server *srv, bx_session *s, int64_t deadline)
{
	bx_timer *t = &srv->timer;
	pthread_mutex_lock(&t->lock);
	if (s->heap_idx != SIZE_MAX) {
		int64_t old = s->deadline;
		s->deadline = deadline;
		if (deadline < old)
			sift_up(t, s->heap_idx);
		else if (deadline > old)
			sift_down(t, s->heap_idx);
	} else {
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 1024;
			bx_session **h = realloc(t->heap, cap * sizeof *h);
			if (!h) {
				pthread_mutex_unlock(&t->lock);
				bx_error("out of memory arming a session timer");
				return;
			}
			t->heap = h;
			t->cap = cap;
		}
		bx_session_ref(s);
		s->deadline = deadline;
		place(t, t->n++, s);
		sift_up(t, s->heap_idx);
	}
	/* Wake the timer thread only when the earliest deadline moved earlier. */
	if (t->heap[0] == s)
		pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

void bx_timer_cancel(struct bx_server *srv, bx_session *s)
{
	bx_timer *t = &srv->timer;
	bx_session *out = NULL;
	pthread_mutex_lock(&t->lock);
	if (s->heap_idx != SIZE_MAX)
		out = heap_remove(t, s->heap_idx);
	pthread_mutex_unlock(&t->lock);
	bx_session_unref(out);
}

/* Acts on one session whose deadline came: releases its held connect at the
 * poll timeout, or expires it. */
static void fire(struct bx_server *srv, bx_session *s, int64_t now)
{
	bool expire = false;
	pthread_mutex_lock(&s->lock);
	if (!s->removed) {
		if (s->stream) {
			bx_stream_timer_locked(s, now);
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
	if (expire) {
		bx_debug("session %.6s… expired", s->id);
		atomic_fetch_add(&srv->stats.expired, 1);
		bx_session_remove(srv, s, BX_WAKE_DISCONNECT);
	}
}

int64_t bx_timer_run(struct bx_server *srv, int64_t now)
{
	bx_timer *t = &srv->timer;
	for (;;) {
		pthread_mutex_lock(&t->lock);
		if (t->n == 0 || t->heap[0]->deadline > now) {
			int64_t next = t->n ? t->heap[0]->deadline : INT64_MAX;
			pthread_mutex_unlock(&t->lock);
			return next;
		}
		bx_session *s = heap_remove(t, 0);
		pthread_mutex_unlock(&t->lock);
		fire(srv, s, now);
		bx_session_unref(s);
	}
}

static void *timer_main(void *arg)
{
	struct bx_server *srv = arg;
	bx_timer *t = &srv->timer;
	for (;;) {
		int64_t next = bx_timer_run(srv, bx_now(srv));
		pthread_mutex_lock(&t->lock);
		if (t->stop) {
			pthread_mutex_unlock(&t->lock);
			break;
		}
		/* Re-read under the lock: a deadline may have been set meanwhile. */
		if (t->n)
			next = t->heap[0]->deadline;
		else
			next = INT64_MAX;
		if (next > bx_now(srv)) {
			if (next == INT64_MAX) {
				pthread_cond_wait(&t->cond, &t->lock);
			} else {
				struct timespec ts = {.tv_sec = next / 1000,
				                      .tv_nsec = (next % 1000) * 1000000};
				pthread_cond_timedwait(&t->cond, &t->lock, &ts);
			}
		}
		pthread_mutex_unlock(&t->lock);
	}
	return NULL;
}

int bx_timer_start(struct bx_server *srv)
{
	if (pthread_create(&srv->timer_thread, NULL, timer_main, srv) != 0)
		return -BX_ENOMEM;
	srv->timer_started = true;
	return 0;
}

void bx_timer_join(struct bx_server *srv)
{
	if (!srv->timer_started)
		return;
	pthread_mutex_lock(&srv->timer.lock);
	srv->timer.stop = true;
	pthread_cond_signal(&srv->timer.cond);
	pthread_mutex_unlock(&srv->timer.lock);
	pthread_join(srv->timer_thread, NULL);
	srv->timer_started = false;
}
