/*
 * router.h — the subscription trie: exact, `*` and `**` subscriptions per
 * segment (router.c).
 */
#ifndef BX_ROUTER_H
#define BX_ROUTER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "session.h"

/*---- Router ----------------------------------------------------------------*/

typedef struct bx_rnode bx_rnode;

typedef struct bx_router {
	pthread_rwlock_t lock;
	bx_rnode *root;
} bx_router;

/* A set of sessions collected by a match, each with one reference. */
typedef struct bx_sessvec {
	bx_session **v;
	size_t n, cap;
} bx_sessvec;

int bx_router_init(bx_router *r);
void bx_router_destroy(bx_router *r);
/* Subscribes s to pattern (a valid channel name or wildcard). Returns 0,
 * -BX_ENOMEM, -BX_ESTATE when s was removed meanwhile, or -BX_EREJECTED
 * when s holds --max-subscriptions already. Subscribing twice is a no-op. */
int bx_router_subscribe(bx_router *r, bx_session *s, const char *pattern, size_t len);
/* Removes one subscription; returns true when s had it. */
bool bx_router_unsubscribe(bx_router *r, bx_session *s, const char *pattern, size_t len);
/* Removes all of s's subscriptions and refuses any later one (removal). */
void bx_router_unsubscribe_all(bx_router *r, bx_session *s);
/* Collects every session subscribed to a pattern matching channel, once each,
 * into out (each with a reference; free with bx_sessvec_release). */
void bx_router_match(bx_router *r, const char *channel, size_t len, bx_sessvec *out);
void bx_sessvec_release(bx_sessvec *v);
struct bx_msg;
/* Queues m for every session subscribed to a pattern matching channel (once
 * each); returns how many. */
size_t bx_router_deliver(bx_router *r, const char *channel, size_t len, struct bx_msg *m);
/* True when no subscription is left and every branch was freed. */
bool bx_router_is_empty(bx_router *r);

#endif
