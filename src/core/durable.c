/*
 * durable.c — a request whose publishes wait for the history store: each
 * publish on a retained channel writes its successful reply at once and
 * counts one wait; when the batch is done and waits remain, the request is
 * parked with the transport's waker (as a held connect is) and resumed by
 * the last durability callback. No HTTP thread waits for a sync. A publish
 * whose append failed has its reply replaced by an error when the request
 * is finished.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bayeux.h"
#include "reply.h"
#include "durable.h"
#include "history.h"

typedef struct slot {
	size_t start, end; /* the reply's bytes in body */
	size_t idat;       /* where its replay id's digits are, when not known
	                      at write time (a shared store): "0" is there */
	uint64_t id;       /* the id done gave */
	int err;
	bx_buf fail; /* the reply to send instead when err */
	struct bx_pending *p;
} slot;

struct bx_pending {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* for a transport that cannot park */
	atomic_uint refs;    /* the request + one per wait */
	size_t waiting;      /* appends not yet durable */
	bool parked;
	bx_waker waker;
	bx_buf body; /* the reply array, moved here when parked */
	slot **slots;
	size_t n, cap;
};

static void pending_unref(bx_pending *p)
{
	if (atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	for (size_t i = 0; i < p->n; i++) {
		bx_buf_free(&p->slots[i]->fail);
		free(p->slots[i]);
	}
	free(p->slots);
	bx_buf_free(&p->body);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

static bx_pending *pending_of(bx_batch *b)
{
	if (b->pending)
		return b->pending;
	bx_pending *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	atomic_init(&p->refs, 1);
	bx_buf_init(&p->body);
	b->pending = p;
	return p;
}

static void durable(void *arg, int err, uint64_t id)
{
	slot *sl = arg;
	bx_pending *p = sl->p;
	pthread_mutex_lock(&p->lock);
	sl->err = err;
	sl->id = id;
	if (--p->waiting == 0) {
		if (p->parked)
			p->waker.resume(p->waker.arg);
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	pending_unref(p);
}

void bx_publish_retained(bx_batch *b, bx_in *in, const bx_retain_rule *rule, const bx_msg *m)
{
	bx_pending *p = pending_of(b);
	slot *sl = p ? calloc(1, sizeof *sl) : NULL;
	if (sl && p->n == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 4;
		slot **v = realloc(p->slots, nc * sizeof *v);
		if (v) {
			p->slots = v;
			p->cap = nc;
		} else {
			free(sl);
			sl = NULL;
		}
	}
	if (!sl) {
		bx_reply_error(b, in, "500::out_of_memory", NULL);
		return;
	}
	sl->p = p;
	bx_buf_init(&sl->fail);
	p->slots[p->n++] = sl;
	pthread_mutex_lock(&p->lock);
	p->waiting++;
	pthread_mutex_unlock(&p->lock);
	atomic_fetch_add(&p->refs, 1);
	uint64_t id = 0;
	int rc = bx_history_publish(b->srv, rule, in->channel, in->chlen, m, durable, sl, &id);
	if (rc != 0) {
		pthread_mutex_lock(&p->lock);
		p->waiting--;
		pthread_mutex_unlock(&p->lock);
		pending_unref(p);
		sl->start = sl->end = 0;
		p->n--;
		free(sl);
		bx_reply_error(b, in, "500::history_store_failed", NULL);
		return;
	}
	size_t before = b->out->len;
	bool comma = b->any;
	bx_reply_open(b, in, NULL, true);
	char ext[48];
	snprintf(ext, sizeof ext, "\"replayId\":%llu", (unsigned long long)id);
	size_t extat = b->out->len;
	bx_reply_close(b, in, ext);
	sl->start = before + (comma ? 1 : 0); /* from its '{', after a comma */
	sl->end = b->out->len;
	if (id == 0 && !b->out->failed) { /* the id comes with done: mark the "0" */
		const char *z = memmem(b->out->data + extat, sl->end - extat, "\"replayId\":0", 12);
		sl->idat = z ? (size_t)(z - b->out->data) + 11 : 0;
	}
	/* What to send instead if the write fails. */
	bx_buf *f = &sl->fail;
	bx_buf_puts(f, "{\"channel\":");
	bx_buf_json_str(f, in->channel, in->chlen);
	bx_buf_puts(f, ",\"successful\":false");
	if (in->id_json[0]) {
		bx_buf_puts(f, ",\"id\":");
		bx_buf_puts(f, in->id_json);
	}
	bx_buf_puts(f, ",\"error\":\"500::history_store_failed\"}");
}

/* Writes body into res with failed publishes' replies replaced and ids
 * that came with done written in. */
static void finish(bx_pending *p, bx_buf *body, bx_response *res)
{
	bool edit = false;
	for (size_t i = 0; i < p->n; i++)
		edit |= p->slots[i]->err != 0 || p->slots[i]->idat != 0;
	if (!edit) {
		if (body != &res->body) {
			bx_buf_free(&res->body);
			res->body = *body;
			bx_buf_init(body);
		}
		return;
	}
	bx_buf out;
	bx_buf_init(&out);
	size_t at = 0;
	for (size_t i = 0; i < p->n; i++) {
		slot *sl = p->slots[i];
		if (sl->err) {
			bx_buf_append(&out, body->data + at, sl->start - at);
			bx_buf_append(&out, sl->fail.data, sl->fail.len);
			at = sl->end;
		} else if (sl->idat) {
			bx_buf_append(&out, body->data + at, sl->idat - at);
			bx_buf_printf(&out, "%llu", (unsigned long long)sl->id);
			at = sl->idat + 1;
		}
	}
	bx_buf_append(&out, body->data + at, body->len - at);
	bx_buf_free(&res->body);
	if (body != &res->body)
		bx_buf_free(body);
	res->body = out;
}

void bx_pending_settle(bx_batch *b)
{
	bx_pending *p = b->pending;
	if (!p)
		return;
	bx_response *res = b->res;
	pthread_mutex_lock(&p->lock);
	if (p->waiting && b->req->waker.suspend) {
		/* Park: the last durability callback resumes the transport,
		 * which calls bx_pending_finish(). */
		p->parked = true;
		p->waker = b->req->waker;
		p->body = res->body;
		bx_buf_init(&res->body);
		res->pending = p;
		p->waker.suspend(p->waker.arg);
		pthread_mutex_unlock(&p->lock);
		return;
	}
	/* Nothing left to wait for (a synchronous engine), or a transport that
	 * cannot park: wait here. */
	while (p->waiting)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	finish(p, &res->body, res);
	pending_unref(p);
}

void bx_pending_finish(bx_pending *p, bx_response *res)
{
	pthread_mutex_lock(&p->lock);
	pthread_mutex_unlock(&p->lock); /* every callback has let go of it */
	res->pending = NULL;
	finish(p, &p->body, res);
	pending_unref(p);
}

void bx_pending_abandon(bx_pending *p)
{
	/* The transport is gone: a callback still to come must not wake it. */
	pthread_mutex_lock(&p->lock);
	p->parked = false;
	pthread_mutex_unlock(&p->lock);
	pending_unref(p);
}
