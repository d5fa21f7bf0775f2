/*
 * ackq.h — the queue of a session with the ack extension on (PROTOCOL.md §8,
 * CometD's AckExtension.js): at-least-once delivery to the client.
 *
 * Every message is tagged, when queued, with the open batch number (the
 * first is 1). A /meta/connect reply carries every message still held, the
 * ones sent before and not yet acknowledged first, in the order they were
 * queued, and closes the open batch: its number goes out as ext.ack and the
 * next batch opens. The client's next /meta/connect carries the last batch
 * it received (ext.ack); messages of batches up to it are dropped then, and
 * anything after it is sent again.
 *
 * Unacknowledged messages count against --max-queue like new ones: when the
 * queue is full the oldest message goes (counted in `dropped`), whether it
 * was sent before or not. The queue has no lock of its own: the session's
 * lock guards it.
 */
#ifndef BX_ACKQ_H
#define BX_ACKQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct bx_msg;
struct bx_metrics;

typedef struct bx_ackq_ent {
	struct bx_msg *m; /* one reference */
	uint64_t batch;   /* the batch that was open when it was queued */
} bx_ackq_ent;

typedef struct bx_ackq {
	bx_ackq_ent *v; /* ring */
	size_t head, len, cap;
	uint64_t batch;   /* the open batch; every closed batch is below it */
	uint64_t dropped; /* messages dropped on overflow, ever */
} bx_ackq;

/* An empty queue with batch 1 open. */
void bx_ackq_init(bx_ackq *q);
/* Drops every message (unreferences them) and frees the ring. */
void bx_ackq_free(bx_ackq *q);
/* Queues m (takes its own reference) in the open batch. When len reaches
 * max the oldest message is dropped first. Returns false (m not queued) only
 * when memory ran out. */
bool bx_ackq_push(bx_ackq *q, struct bx_msg *m, size_t max);
/* The client received every batch up to `acked`: drops their messages.
 * An ack of a batch not yet closed is taken as the last closed one (a client
 * cannot have received what was never sent). Returns how many went. */
size_t bx_ackq_ack(bx_ackq *q, uint64_t acked);
/* Messages held: unacknowledged and not yet sent. */
static inline size_t bx_ackq_len(const bx_ackq *q)
{
	return q->len;
}
/* Writes every held message to out, oldest first, comma-separated (with a
 * leading comma when `comma`), closes the open batch and returns its number
 * (for the connect reply's ext.ack). *count gets how many were written,
 * *fresh how many of them went out for the first time (their publish-to-
 * write latency goes to metrics, when not NULL). Messages stay held until
 * acknowledged. */
uint64_t bx_ackq_send(bx_ackq *q, bx_buf *out, bool comma, size_t *count, size_t *fresh,
                      struct bx_metrics *metrics);

#endif
