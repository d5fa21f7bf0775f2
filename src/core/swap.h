/*
 * swap.h — a pointer that readers use without ever waiting while a writer
 * replaces it (a small read-copy-update): the daemon's reloadable settings
 * (the ACL, the auth key, the publish token) are read on every publish and
 * replaced on SIGHUP.
 *
 * Readers bracket their use with bx_swap_enter()/bx_swap_leave(): two
 * atomic additions and a load, no lock. The writer installs the new value,
 * then waits until every reader that may still hold the old one has left
 * (two grace periods, as userspace RCU's counter flip: a reader counts
 * itself in the counter of the generation it saw), and only then returns
 * the old value for the caller to free. Writers are serialized by a mutex;
 * a reader never takes it.
 */
#ifndef BX_SWAP_H
#define BX_SWAP_H

#include <pthread.h>
#include <stdatomic.h>

typedef struct bx_swap {
	_Atomic(void *) ptr;
	atomic_uint gen; /* parity chooses the readers' counter */
	atomic_long readers[2];
	pthread_mutex_t wlock; /* one writer at a time */
} bx_swap;

/* Starts with value p (may be NULL). */
void bx_swap_init(bx_swap *s, void *p);
/* After the last reader and writer: returns the value for the caller to free. */
void *bx_swap_destroy(bx_swap *s);

/* The current value, valid until bx_swap_leave(s, *ticket). Never waits. */
void *bx_swap_enter(bx_swap *s, unsigned *ticket);
void bx_swap_leave(bx_swap *s, unsigned ticket);

/* The current value with no guarantee it stays valid: only to test it
 * against NULL. */
void *bx_swap_peek(bx_swap *s);

/* Installs p and returns the previous value once no reader can still be
 * using it (the caller frees it). Waits for readers already inside, which
 * are short; must not be called between enter and leave on this thread. */
void *bx_swap_replace(bx_swap *s, void *p);

#endif
