/*
 * gate.c — a reply that waits for the bus (bus.h): /meta/subscribe is
 * answered only once the bus confirmed that this node receives what other
 * nodes publish to the new subscriptions, so a publish elsewhere right after
 * the reply is not missed. The request is parked with its waker, like a held
 * connect, while the reply it built waits in a bx_hold; the last
 * confirmation resumes it. HTTP threads never wait.
 *
 * A gate is shared by the request (until it is answered or abandoned) and
 * every confirmation still to come: reference-counted, its own lock.
 */
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "server.h"
#include "bus.h"

struct bx_gate {
	pthread_mutex_t lock;
	unsigned refs;    /* the request's, plus one per confirmation to come */
	unsigned pending; /* confirmations still to come */
	bool parked;      /* suspended: the last confirmation resumes it */
	bx_waker waker;
};

static void gate_unref(bx_gate *g)
{
	pthread_mutex_lock(&g->lock);
	bool last = --g->refs == 0;
	pthread_mutex_unlock(&g->lock);
	if (last) {
		pthread_mutex_destroy(&g->lock);
		free(g);
	}
}

/* A confirmation came (or failed: the subscription stands locally and the
 * bus subscribes again when it is back, so the reply goes out either way). */
static void gate_done(void *arg, int err)
{
	(void)err;
	bx_gate *g = arg;
	pthread_mutex_lock(&g->lock);
	if (--g->pending == 0 && g->parked) {
		g->parked = false;
		g->waker.resume(g->waker.arg);
	}
	pthread_mutex_unlock(&g->lock);
	gate_unref(g);
}

void bx_gate_wait(bx_batch *b, const char *pattern, size_t len)
{
	bx_server *srv = b->srv;
	if (!srv->bus || !b->req->waker.suspend ||
	    !(b->req->transport & (BX_CT_LONG_POLLING | BX_CT_CALLBACK_POLLING)))
		return; /* this request cannot park: it does not wait */
	if (!b->gate) {
		bx_gate *g = calloc(1, sizeof *g);
		if (!g)
			return;
		pthread_mutex_init(&g->lock, NULL);
		g->refs = 1;
		g->waker = b->req->waker;
		b->gate = g;
	}
	bx_gate *g = b->gate;
	pthread_mutex_lock(&g->lock);
	g->pending++;
	g->refs++;
	pthread_mutex_unlock(&g->lock);
	if (srv->bus->ops->ready(srv->bus->self, pattern, len, gate_done, g) != 0)
		gate_done(g, -BX_ENOMEM);
}

void bx_gate_park(bx_batch *b)
{
	bx_gate *g = b->gate;
	if (!g)
		return;
	b->gate = NULL;
	bx_response *res = b->res;
	pthread_mutex_lock(&g->lock);
	bx_hold *h = NULL;
	if (g->pending > 0 && !res->hold && res->status == 200 && !b->out->failed)
		h = calloc(1, sizeof *h);
	if (!h) {
		pthread_mutex_unlock(&g->lock);
		gate_unref(g);
		return;
	}
	h->gate = g; /* takes the request's reference */
	h->body = res->body;
	bx_buf_init(&res->body);
	g->parked = true;
	g->waker.suspend(g->waker.arg);
	res->hold = h;
	pthread_mutex_unlock(&g->lock);
}

void bx_gate_finish(bx_hold *h, bx_response *res)
{
	bx_buf_free(&res->body);
	res->body = h->body;
	gate_unref(h->gate);
	free(h);
}

void bx_gate_abandon(bx_hold *h)
{
	bx_gate *g = h->gate;
	pthread_mutex_lock(&g->lock);
	g->parked = false; /* the transport is gone: never resume it */
	pthread_mutex_unlock(&g->lock);
	bx_buf_free(&h->body);
	gate_unref(g);
	free(h);
}
