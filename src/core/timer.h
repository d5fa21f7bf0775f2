/*
 * timer.h — one binary min-heap of deadlines and the thread that sleeps until
 * the earliest. It knows nothing of what the entries are: an owner embeds a
 * bx_timer_ent and gets it back in the fire callback (sessions, table.c).
 */
#ifndef BX_TIMER_H
#define BX_TIMER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bx_timer_ent {
	size_t idx; /* position in the heap, or SIZE_MAX when not in it */
	int64_t deadline;
} bx_timer_ent;

/* Called by bx_timer_run() for an entry whose deadline came, after taking it
 * out of the heap, with no timer lock held. */
typedef void (*bx_timer_fire_fn)(void *arg, bx_timer_ent *e, int64_t now);

typedef struct bx_timer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bx_timer_ent **heap;
	size_t n, cap;
	bool stop;
	bx_timer_fire_fn fire;
	void *fire_arg;
	int64_t (*now)(void *arg); /* the thread's clock */
	void *now_arg;
	pthread_t thread;
	bool started;
} bx_timer;

/* Milliseconds on CLOCK_MONOTONIC: the default clock. */
int64_t bx_clock_monotonic(void *arg);

void bx_timer_ent_init(bx_timer_ent *e);
void bx_timer_init(bx_timer *t, bx_timer_fire_fn fire, void *fire_arg);
/* Frees the heap; entries still in it are handed to drop (may be NULL). */
void bx_timer_destroy(bx_timer *t, void (*drop)(bx_timer_ent *e));
/* Puts e in the heap at deadline, or moves it there. Returns 1 when e was
 * not in the heap (its owner now counts the heap's hold on it), 0 when it
 * moved, -1 on OOM (not armed). */
int bx_timer_set(bx_timer *t, bx_timer_ent *e, int64_t deadline);
/* Takes e out of the heap; true when it was in it. */
bool bx_timer_cancel(bx_timer *t, bx_timer_ent *e);
/* Fires every entry due at or before now; returns the next deadline, or
 * INT64_MAX when none. The thread calls this; unit tests call it with a fake
 * clock. */
int64_t bx_timer_run(bx_timer *t, int64_t now);
/* Starts the thread, reading time from now(now_arg). */
int bx_timer_start(bx_timer *t, int64_t (*now)(void *arg), void *now_arg);
void bx_timer_join(bx_timer *t);

#endif
