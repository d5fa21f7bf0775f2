/*
 * timer.c — deadlines in one binary min-heap, and one thread that sleeps
 * until the earliest (or until an earlier one is set). Nothing ever scans
 * all entries. The heap knows nothing of what its entries belong to: the
 * owner embeds a bx_timer_ent and gets it back in the fire callback (each
 * session is in it at most once, keyed by the only deadline that matters to
 * it now: see bx_session_rearm_locked()).
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "timer.h"

int64_t bx_clock_monotonic(void *arg)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bx_timer_ent_init(bx_timer_ent *e)
{
	e->idx = SIZE_MAX;
	e->deadline = 0;
}

void bx_timer_init(bx_timer *t, bx_timer_fire_fn fire, void *fire_arg)
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
	t->fire = fire;
	t->fire_arg = fire_arg;
	t->now = bx_clock_monotonic;
	t->now_arg = NULL;
	t->started = false;
}

void bx_timer_destroy(bx_timer *t, void (*drop)(bx_timer_ent *e))
{
	for (size_t i = 0; i < t->n; i++) {
		t->heap[i]->idx = SIZE_MAX;
		if (drop)
			drop(t->heap[i]);
	}
	free(t->heap);
	t->heap = NULL;
	t->n = t->cap = 0;
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
}

/*---- Heap primitives (caller holds the lock) -------------------------------*/

static void place(bx_timer *t, size_t i, bx_timer_ent *e)
{
	t->heap[i] = e;
	e->idx = i;
}

static void sift_up(bx_timer *t, size_t i)
{
	bx_timer_ent *e = t->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (t->heap[p]->deadline <= e->deadline)
			break;
		place(t, i, t->heap[p]);
		i = p;
	}
	place(t, i, e);
}

static void sift_down(bx_timer *t, size_t i)
{
	bx_timer_ent *e = t->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= t->n)
			break;
		if (c + 1 < t->n && t->heap[c + 1]->deadline < t->heap[c]->deadline)
			c++;
		if (e->deadline <= t->heap[c]->deadline)
			break;
		place(t, i, t->heap[c]);
		i = c;
	}
	place(t, i, e);
}

/* Takes entry i out of the heap and returns it. */
static bx_timer_ent *heap_remove(bx_timer *t, size_t i)
{
	bx_timer_ent *e = t->heap[i];
	e->idx = SIZE_MAX;
	t->n--;
	if (i < t->n) {
		place(t, i, t->heap[t->n]);
		sift_down(t, i);
		sift_up(t, t->heap[i]->idx);
	}
	return e;
}

/*---- API -------------------------------------------------------------------*/

int bx_timer_set(bx_timer *t, bx_timer_ent *e, int64_t deadline)
{
	int added = 0;
	pthread_mutex_lock(&t->lock);
	if (e->idx != SIZE_MAX) {
		int64_t old = e->deadline;
		e->deadline = deadline;
		if (deadline < old)
			sift_up(t, e->idx);
		else if (deadline > old)
			sift_down(t, e->idx);
	} else {
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 1024;
			bx_timer_ent **h = realloc(t->heap, cap * sizeof *h);
			if (!h) {
				pthread_mutex_unlock(&t->lock);
				bx_error("out of memory arming a timer");
				return -1;
			}
			t->heap = h;
			t->cap = cap;
		}
		e->deadline = deadline;
		place(t, t->n++, e);
		sift_up(t, e->idx);
		added = 1;
	}
	/* Wake the thread only when the earliest deadline moved earlier. */
	if (t->heap[0] == e)
		pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return added;
}

bool bx_timer_cancel(bx_timer *t, bx_timer_ent *e)
{
	bool was = false;
	pthread_mutex_lock(&t->lock);
	if (e->idx != SIZE_MAX) {
		heap_remove(t, e->idx);
		was = true;
	}
	pthread_mutex_unlock(&t->lock);
	return was;
}

int64_t bx_timer_run(bx_timer *t, int64_t now)
{
	for (;;) {
		pthread_mutex_lock(&t->lock);
		if (t->n == 0 || t->heap[0]->deadline > now) {
			int64_t next = t->n ? t->heap[0]->deadline : INT64_MAX;
			pthread_mutex_unlock(&t->lock);
			return next;
		}
		bx_timer_ent *e = heap_remove(t, 0);
		pthread_mutex_unlock(&t->lock);
		t->fire(t->fire_arg, e, now);
	}
}

static void *timer_main(void *arg)
{
	bx_timer *t = arg;
	for (;;) {
		int64_t next = bx_timer_run(t, t->now(t->now_arg));
		pthread_mutex_lock(&t->lock);
		if (t->stop) {
			pthread_mutex_unlock(&t->lock);
			break;
		}
		/* Re-read under the lock: a deadline may have been set meanwhile. */
		next = t->n ? t->heap[0]->deadline : INT64_MAX;
		if (next > t->now(t->now_arg)) {
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

int bx_timer_start(bx_timer *t, int64_t (*now)(void *arg), void *now_arg)
{
	t->now = now;
	t->now_arg = now_arg;
	t->stop = false;
	if (pthread_create(&t->thread, NULL, timer_main, t) != 0)
		return -1;
	t->started = true;
	return 0;
}

void bx_timer_join(bx_timer *t)
{
	if (!t->started)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	t->started = false;
}
