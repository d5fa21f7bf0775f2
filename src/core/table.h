/*
 * table.h — the session registry: creates sessions with fresh ids, finds
 * them by client id, removes them (unsubscribing, ending their sink and held
 * connect, telling the hooks), and expires them when their timer says so.
 */
#ifndef BX_TABLE_H
#define BX_TABLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"
#include "timer.h"

struct bx_server;

typedef struct bx_table {
	pthread_rwlock_t lock;
	bx_session **buckets;
	size_t nbuckets, count;
} bx_table;

void bx_table_init(bx_table *t);
/* Removes every session (shutdown) and frees the table. */
void bx_table_destroy(struct bx_server *srv);
/* Creates and registers a session; NULL on OOM or when the limit is reached
 * (*full is then set). The result carries one reference for the caller. */
bx_session *bx_session_create(struct bx_server *srv, const char *browser, bool *full);
/* Finds a session by client id and takes a reference, or NULL. */
bx_session *bx_session_find(struct bx_server *srv, const char *id, size_t len);
/* Unregisters a session: unsubscribes it, drops its queue, releases its held
 * connect and its sink with `reason`. Safe to call twice. */
void bx_session_remove(struct bx_server *srv, bx_session *s, int reason);
/* Calls fn on every session (holding a reference), e.g. at shutdown. */
void bx_session_foreach(struct bx_server *srv, void (*fn)(bx_session *, void *), void *arg);
size_t bx_session_count(struct bx_server *srv);

/* The timer's callback for sessions (arg: the server): acts on a session
 * whose deadline came and expires it when due. */
void bx_table_timer_fire(void *arg, bx_timer_ent *e, int64_t now);
/* Drops the heap's reference of an entry left in the timer (bx_timer_destroy). */
void bx_table_timer_drop(bx_timer_ent *e);

#endif
