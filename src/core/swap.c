/* swap.c — a pointer replaced under readers that never wait (swap.h). */
#include "swap.h"

#include <time.h>

void bx_swap_init(bx_swap *s, void *p)
{
	atomic_init(&s->ptr, p);
	atomic_init(&s->gen, 0);
	atomic_init(&s->readers[0], 0);
	atomic_init(&s->readers[1], 0);
	pthread_mutex_init(&s->wlock, NULL);
}

void *bx_swap_destroy(bx_swap *s)
{
	pthread_mutex_destroy(&s->wlock);
	return atomic_load(&s->ptr);
}

void *bx_swap_enter(bx_swap *s, unsigned *ticket)
{
	unsigned g = atomic_load(&s->gen) & 1;
	atomic_fetch_add(&s->readers[g], 1);
	*ticket = g;
	/* Loaded after counting ourselves in: a writer that replaced the value
	 * before our count is seen either waits for us or was done before,
	 * and then we load its new value. */
	return atomic_load(&s->ptr);
}

void bx_swap_leave(bx_swap *s, unsigned ticket)
{
	atomic_fetch_sub(&s->readers[ticket & 1], 1);
}

void *bx_swap_peek(bx_swap *s)
{
	return atomic_load(&s->ptr);
}

/* Flips the generation, then waits until the old generation's readers have
 * all left: new readers count in the other counter, so this one drains. */
static void grace_period(bx_swap *s)
{
	unsigned old = atomic_fetch_add(&s->gen, 1) & 1;
	struct timespec pause = {0, 20000}; /* 20 µs */
	while (atomic_load(&s->readers[old]) != 0)
		nanosleep(&pause, NULL);
}

void *bx_swap_replace(bx_swap *s, void *p)
{
	pthread_mutex_lock(&s->wlock);
	void *old = atomic_exchange(&s->ptr, p);
	/* Two flips: a reader that saw the generation before the first flip
	 * may count itself in either counter; after both have drained, no
	 * reader that loaded the old value is left. */
	grace_period(s);
	grace_period(s);
	pthread_mutex_unlock(&s->wlock);
	return old;
}
