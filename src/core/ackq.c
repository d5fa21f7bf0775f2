/*
 * ackq.c — the session queue of the ack extension (ackq.h).
 */
#include "ackq.h"

#include <stdlib.h>

#include "msg.h"
#include "stats.h"

void bx_ackq_init(bx_ackq *q)
{
	*q = (bx_ackq){.batch = 1};
}

void bx_ackq_free(bx_ackq *q)
{
	for (size_t i = 0; i < q->len; i++)
		bx_msg_unref(q->v[(q->head + i) % q->cap].m);
	free(q->v);
	q->v = NULL;
	q->head = q->len = q->cap = 0;
}

bool bx_ackq_push(bx_ackq *q, bx_msg *m, size_t max)
{
	if (max == 0)
		max = 1;
	if (q->len >= max) {
		/* Full: the oldest goes, sent or not (README, "Limits"). */
		bx_msg_unref(q->v[q->head].m);
		q->head = (q->head + 1) % q->cap;
		q->len--;
		q->dropped++;
	}
	if (q->len == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 8;
		if (cap > max)
			cap = max;
		if (cap <= q->len)
			return false; /* cannot happen: len < max here */
		bx_ackq_ent *v = malloc(cap * sizeof *v);
		if (!v)
			return false;
		for (size_t i = 0; i < q->len; i++)
			v[i] = q->v[(q->head + i) % q->cap];
		free(q->v);
		q->v = v;
		q->cap = cap;
		q->head = 0;
	}
	bx_msg_ref(m);
	q->v[(q->head + q->len) % q->cap] = (bx_ackq_ent){.m = m, .batch = q->batch};
	q->len++;
	return true;
}

size_t bx_ackq_ack(bx_ackq *q, uint64_t acked)
{
	if (acked >= q->batch)
		acked = q->batch - 1;
	size_t n = 0;
	/* Batches only grow along the ring: drop from the head. */
	while (q->len && q->v[q->head].batch <= acked) {
		bx_msg_unref(q->v[q->head].m);
		q->head = (q->head + 1) % q->cap;
		q->len--;
		n++;
	}
	if (!q->len)
		q->head = 0;
	return n;
}

uint64_t bx_ackq_send(bx_ackq *q, bx_buf *out, bool comma, size_t *count, size_t *fresh,
                      bx_metrics *metrics)
{
	size_t nfresh = 0;
	int64_t now_us = metrics && q->len ? bx_clock_us() : 0;
	for (size_t i = 0; i < q->len; i++) {
		const bx_ackq_ent *e = &q->v[(q->head + i) % q->cap];
		if (comma || i > 0)
			bx_buf_putc(out, ',');
		bx_buf_append(out, e->m->data, e->m->len);
		if (e->batch == q->batch) {
			nfresh++;
			if (metrics)
				bx_metrics_written(metrics, e->m->born_us, now_us);
		}
	}
	if (count)
		*count = q->len;
	if (fresh)
		*fresh = nfresh;
	return q->batch++;
}
