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
#include "history.h"

/* A /meta/subscribe reply rebuilt once its deferred replays are done. */
struct bx_later {
	struct bx_gate *g;
	size_t start, end;    /* the reply written meanwhile: its bytes in the body */
	bx_buf okpre, errpre; /* {"channel":…,"successful":true|false,"id":… */
	bx_buf echo;          /* ,"subscription":… */
	bx_buf gaps;          /* replayGap members so far */
	bx_timesync ts;
	const char *err; /* the first failure, or NULL */
	bool set;        /* bx_gate_later_set was called */
	struct bx_later *next;
};

struct bx_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a request that cannot park waits for its replays */
	unsigned refs;    /* the request's, plus one per confirmation to come */
	unsigned pending; /* confirmations still to come */
	bool parked;      /* suspended: the last confirmation resumes it */
	bx_waker waker;
	bx_later *laters, **ltail; /* in reply order */
};

static void gate_unref(bx_gate *g)
{
	pthread_mutex_lock(&g->lock);
	bool last = --g->refs == 0;
	pthread_mutex_unlock(&g->lock);
	if (last) {
		for (bx_later *l = g->laters, *next; l; l = next) {
			next = l->next;
			bx_buf_free(&l->okpre);
			bx_buf_free(&l->errpre);
			bx_buf_free(&l->echo);
			bx_buf_free(&l->gaps);
			free(l);
		}
		pthread_mutex_destroy(&g->lock);
		pthread_cond_destroy(&g->cond);
		free(g);
	}
}

/* One confirmation or replay is done; the last resumes the request. Caller
 * holds g->lock. */
static void one_done_locked(bx_gate *g)
{
	if (--g->pending == 0) {
		if (g->parked) {
			g->parked = false;
			g->waker.resume(g->waker.arg);
		}
		pthread_cond_broadcast(&g->cond);
	}
}

/* A confirmation came (or failed: the subscription stands locally and the
 * bus subscribes again when it is back, so the reply goes out either way). */
static void gate_done(void *arg, int err)
{
	(void)err;
	bx_gate *g = arg;
	pthread_mutex_lock(&g->lock);
	one_done_locked(g);
	pthread_mutex_unlock(&g->lock);
	gate_unref(g);
}

static bx_gate *gate_of(bx_batch *b)
{
	if (b->gate)
		return b->gate;
	bx_gate *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->refs = 1;
	g->waker = b->req->waker;
	g->ltail = &g->laters;
	b->gate = g;
	return g;
}

/*---- Replays that wait for a shared store (history.h) -------------------------------*/

bx_later *bx_gate_later(bx_batch *b)
{
	bx_gate *g = gate_of(b);
	bx_later *l = g ? calloc(1, sizeof *l) : NULL;
	if (!l)
		return NULL;
	l->g = g;
	bx_buf_init(&l->okpre);
	bx_buf_init(&l->errpre);
	bx_buf_init(&l->echo);
	bx_buf_init(&l->gaps);
	*g->ltail = l;
	g->ltail = &l->next;
	return l;
}

/* A deferred subscription is made (or not): its gaps join the reply. */
static void later_done(void *arg, int rc, bx_replay_result *r)
{
	bx_later *l = arg;
	bx_gate *g = l->g;
	pthread_mutex_lock(&g->lock);
	if (rc != 0 && !l->err)
		l->err = rc == 1               ? "500::history_store_failed"
		         : rc == -BX_ESTATE    ? "402::session_unknown"
		         : rc == -BX_EREJECTED ? "403::too_many_subscriptions"
		                               : "500::out_of_memory";
	bx_replay_gaps_write(&l->gaps, r);
	one_done_locked(g);
	pthread_mutex_unlock(&g->lock);
	gate_unref(g);
}

void bx_gate_replay(bx_batch *b, bx_later *l, bx_session *s, const char *pattern, size_t len,
                    json_object *replay)
{
	bx_gate *g = l->g;
	pthread_mutex_lock(&g->lock);
	g->pending++;
	g->refs++;
	pthread_mutex_unlock(&g->lock);
	if (bx_history_subscribe_later(b->srv, s, pattern, len, replay, later_done, l) != 0) {
		bx_replay_result none = {0};
		later_done(l, -BX_ENOMEM, &none);
	}
}

void bx_gate_later_set(bx_later *l, size_t start, size_t end, bx_buf *okpre, bx_buf *errpre,
                       bx_buf *echo, const bx_buf *gaps, const bx_timesync *ts)
{
	pthread_mutex_lock(&l->g->lock);
	l->start = start;
	l->end = end;
	l->okpre = *okpre;
	l->errpre = *errpre;
	l->echo = *echo;
	bx_buf_init(okpre);
	bx_buf_init(errpre);
	bx_buf_init(echo);
	if (gaps->len) { /* after what a replay done already added, if any */
		if (l->gaps.len)
			bx_buf_putc(&l->gaps, ',');
		bx_buf_append(&l->gaps, gaps->data, gaps->len);
	}
	l->ts = *ts;
	l->set = true;
	pthread_mutex_unlock(&l->g->lock);
}

/* Rewrites body with every deferred reply rebuilt. Caller holds g->lock,
 * and every replay is done. */
static void apply_laters(bx_gate *g, bx_buf *body)
{
	if (!g->laters)
		return;
	bx_buf out;
	bx_buf_init(&out);
	size_t at = 0;
	int64_t wall = bx_wall_ms();
	for (bx_later *l = g->laters; l; l = l->next) {
		if (!l->set || l->start < at || l->end > body->len)
			continue;
		bx_buf_append(&out, body->data + at, l->start - at);
		/* open, [error], echo, ext (gaps and timesync), close */
		const bx_buf *open = l->err ? &l->errpre : &l->okpre;
		bx_buf_append(&out, open->data, open->len);
		if (l->err) {
			bx_buf_puts(&out, ",\"error\":");
			bx_buf_json_str(&out, l->err, strlen(l->err));
		}
		bx_buf_append(&out, l->echo.data, l->echo.len);
		bx_buf ext;
		bx_buf_init(&ext);
		if (!l->err && l->gaps.len) {
			bx_buf_puts(&ext, "\"replayGap\":{");
			bx_buf_append(&ext, l->gaps.data, l->gaps.len);
			bx_buf_putc(&ext, '}');
		}
		bx_write_ext(&out, ext.data, &l->ts, l->ts.present ? wall : 0);
		bx_buf_free(&ext);
		bx_buf_putc(&out, '}');
		at = l->end;
	}
	bx_buf_append(&out, body->data + at, body->len - at);
	if (out.failed) {
		bx_buf_free(&out);
		return; /* the replies as first written: successful, without gaps */
	}
	bx_buf_free(body);
	*body = out;
}

/* Waits (a request that cannot park) until every replay is done, then
 * rebuilds the deferred replies in body. */
static void wait_laters(bx_gate *g, bx_buf *body)
{
	pthread_mutex_lock(&g->lock);
	while (g->pending)
		pthread_cond_wait(&g->cond, &g->lock);
	apply_laters(g, body);
	pthread_mutex_unlock(&g->lock);
}

void bx_gate_settle_laters(bx_batch *b)
{
	if (b->gate && b->gate->laters)
		wait_laters(b->gate, &b->res->body);
}

void bx_gate_wait(bx_batch *b, const char *pattern, size_t len)
{
	bx_server *srv = b->srv;
	if (!srv->bus || !b->req->waker.suspend ||
	    !(b->req->transport & (BX_CT_LONG_POLLING | BX_CT_CALLBACK_POLLING)))
		return; /* this request cannot park: it does not wait */
	bx_gate *g = gate_of(b);
	if (!g)
		return;
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
	bool can_park = b->req->waker.suspend &&
	                (b->req->transport & (BX_CT_LONG_POLLING | BX_CT_CALLBACK_POLLING));
	pthread_mutex_lock(&g->lock);
	bx_hold *h = NULL;
	if (can_park && g->pending > 0 && !res->hold && !res->pending && res->status == 200 &&
	    !b->out->failed)
		h = calloc(1, sizeof *h);
	if (!h) {
		pthread_mutex_unlock(&g->lock);
		/* Replays still to come are waited for here: their replies are
		 * part of this answer. */
		if (g->laters && !res->pending && res->status == 200)
			wait_laters(g, &res->body);
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
	bx_gate *g = h->gate;
	pthread_mutex_lock(&g->lock);
	apply_laters(g, &h->body);
	pthread_mutex_unlock(&g->lock);
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
