/*
 * durable.h — publishes whose reply waits until the history store made them
 * durable (durable.c). The transport sees only bx_response.pending.
 */
#ifndef BX_DURABLE_H
#define BX_DURABLE_H

#include "reply.h"
#include "history.h"

typedef struct bx_pending bx_pending;

/* Publishes m on in's retained channel: its reply (with ext.replayId) is
 * written now and stands once the append is durable, else it is replaced
 * by a 500::history_store_failed reply. */
void bx_publish_retained(bx_batch *b, bx_in *in, const bx_retain_rule *rule, const bx_msg *m);

/* At the end of a batch: when appends are still being written, parks the
 * request (res->pending set, waker.suspend called) or, with no waker, waits;
 * otherwise completes res->body. */
void bx_pending_settle(bx_batch *b);

/* The transport was resumed: builds the reply into res and frees p. */
void bx_pending_finish(bx_pending *p, bx_response *res);
/* The transport went away before finishing. */
void bx_pending_abandon(bx_pending *p);

#endif
