/*
 * memory.c — the in-memory history engine (no --store): one ring of records
 * per channel in a chained hash table, all under one mutex. Replay ids start
 * at 1 per channel and restart with the process.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bayeux.h"
#include "core/buf.h"
#include "engines.h"

typedef struct mrec {
	uint64_t id;
	int64_t time_ms;
	size_t len;
	char *json;
} mrec;

typedef struct mchan {
	struct mchan *next;
	char *name;
	size_t len;
	uint64_t last; /* last id given */
	mrec *r;       /* ring */
	size_t head, n, cap;
} mchan;

typedef struct mstore {
	pthread_mutex_t lock;
	mchan **buckets;
	size_t nbuckets, count;
} mstore;

static mchan *find(mstore *m, const char *ch, size_t len)
{
	for (mchan *c = m->buckets[bx_hash(ch, len) & (m->nbuckets - 1)]; c; c = c->next)
		if (c->len == len && memcmp(c->name, ch, len) == 0)
			return c;
	return NULL;
}

static int grow_table(mstore *m)
{
	size_t nb = m->nbuckets * 2;
	mchan **b = calloc(nb, sizeof *b);
	if (!b)
		return -BX_ENOMEM;
	for (size_t i = 0; i < m->nbuckets; i++)
		for (mchan *c = m->buckets[i], *next; c; c = next) {
			next = c->next;
			size_t k = bx_hash(c->name, c->len) & (nb - 1);
			c->next = b[k];
			b[k] = c;
		}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = nb;
	return 0;
}

static mchan *get(mstore *m, const char *ch, size_t len)
{
	mchan *c = find(m, ch, len);
	if (c)
		return c;
	if (m->count >= m->nbuckets && grow_table(m) != 0)
		return NULL;
	c = calloc(1, sizeof *c);
	if (!c || !(c->name = malloc(len + 1))) {
		free(c);
		return NULL;
	}
	memcpy(c->name, ch, len);
	c->name[len] = '\0';
	c->len = len;
	size_t k = bx_hash(ch, len) & (m->nbuckets - 1);
	c->next = m->buckets[k];
	m->buckets[k] = c;
	m->count++;
	return c;
}

static mrec *at(mchan *c, size_t i)
{
	return &c->r[(c->head + i) % c->cap];
}

static void drop_oldest(mchan *c)
{
	free(at(c, 0)->json);
	c->head = (c->head + 1) % c->cap;
	c->n--;
}

static int push(mchan *c, const bx_store_rec *rec)
{
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 8;
		mrec *r = malloc(nc * sizeof *r);
		if (!r)
			return -BX_ENOMEM;
		for (size_t i = 0; i < c->n; i++)
			r[i] = *at(c, i);
		free(c->r);
		c->r = r;
		c->head = 0;
		c->cap = nc;
	}
	char *j = malloc(rec->len ? rec->len : 1);
	if (!j)
		return -BX_ENOMEM;
	memcpy(j, rec->json, rec->len);
	*at(c, c->n) = (mrec){.id = rec->id, .time_ms = rec->time_ms, .len = rec->len, .json = j};
	c->n++;
	return 0;
}

static void trim_locked(mchan *c, uint64_t keep, int64_t min_time_ms)
{
	while (c->n && ((keep && c->n > keep) || at(c, 0)->time_ms < min_time_ms))
		drop_oldest(c);
}

static int m_append(void *self, bx_store_rec *recs, size_t n, bx_store_done_fn done, void *arg)
{
	mstore *m = self;
	int rc = 0;
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < n && rc == 0; i++) {
		mchan *c = get(m, recs[i].channel, recs[i].chlen);
		if (!c) {
			rc = -BX_ENOMEM;
			break;
		}
		recs[i].id = c->last + 1;
		rc = push(c, &recs[i]);
		if (rc == 0) {
			c->last++;
			trim_locked(c, recs[i].keep, recs[i].min_time_ms);
		}
	}
	pthread_mutex_unlock(&m->lock);
	/* A failure part-way keeps what was appended (each record stands alone). */
	if (rc == 0 && done)
		done(arg, 0, n ? recs[0].id : 0);
	return rc;
}

/* Index of the first record with an id above after. */
static size_t first_after(mchan *c, uint64_t after)
{
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (at(c, mid)->id <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int m_read_after(void *self, const char *channel, size_t chlen, uint64_t after, size_t limit,
                        bx_store_visit_fn visit, void *arg)
{
	mstore *m = self;
	pthread_mutex_lock(&m->lock);
	mchan *c = find(m, channel, chlen);
	size_t sent = 0;
	for (size_t i = c ? first_after(c, after) : 0; c && i < c->n; i++) {
		if (limit && sent == limit)
			break;
		mrec *r = at(c, i);
		bx_store_rec rec = {.channel = c->name,
		                    .chlen = c->len,
		                    .json = r->json,
		                    .len = r->len,
		                    .time_ms = r->time_ms,
		                    .id = r->id};
		sent++;
		if (visit(arg, &rec))
			break;
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int m_channels(void *self, bx_store_channel_fn fn, void *arg)
{
	mstore *m = self;
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->nbuckets; i++)
		for (mchan *c = m->buckets[i]; c; c = c->next)
			if (fn(arg, c->name, c->len))
				goto out;
out:
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int m_trim(void *self, const char *channel, size_t chlen, uint64_t keep, int64_t min_time_ms)
{
	mstore *m = self;
	pthread_mutex_lock(&m->lock);
	mchan *c = find(m, channel, chlen);
	if (c)
		trim_locked(c, keep, min_time_ms);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int m_bounds(void *self, const char *channel, size_t chlen, uint64_t *oldest,
                    uint64_t *newest)
{
	mstore *m = self;
	pthread_mutex_lock(&m->lock);
	mchan *c = find(m, channel, chlen);
	*oldest = c && c->n ? at(c, 0)->id : 0;
	*newest = c ? c->last : 0;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static void m_close(void *self)
{
	mstore *m = self;
	if (!m)
		return;
	for (size_t i = 0; i < m->nbuckets; i++)
		for (mchan *c = m->buckets[i], *next; c; c = next) {
			next = c->next;
			while (c->n)
				drop_oldest(c);
			free(c->r);
			free(c->name);
			free(c);
		}
	free(m->buckets);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const bx_store_ops memory_ops = {
        .append = m_append,
        .read_after = m_read_after,
        .channels = m_channels,
        .trim = m_trim,
        .bounds = m_bounds,
        .close = m_close,
};

int bx_store_memory_open(bx_store *out)
{
	mstore *m = calloc(1, sizeof *m);
	if (!m)
		return -BX_ENOMEM;
	m->nbuckets = 64;
	m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
	if (!m->buckets) {
		free(m);
		return -BX_ENOMEM;
	}
	pthread_mutex_init(&m->lock, NULL);
	out->ops = &memory_ops;
	out->self = m;
	return 0;
}
