/*
 * lmdb.c — the durable history engine (--store DIR): LMDB, crash-safe, one
 * writer. Two named databases:
 *   "rec"  key: channel, NUL, replay id (8 bytes big-endian, so keys sort by
 *          channel then id); value: time_ms (8 bytes) then the message JSON
 *   "last" key: channel; value: the last replay id given (8 bytes), kept when
 *          every record of the channel was trimmed, so ids never go back
 * append() gives ids at once (under `lock`, from a cache of "last") and
 * queues the records; the writer thread takes everything queued, writes it
 * in ONE transaction whose commit syncs (data, then the meta page; with
 * full_sync off the meta page is not synced: MDB_NOMETASYNC, which loses the
 * last transactions only to an operating-system crash or power loss, never
 * to the process dying), then calls each append's done in
 * order: publishers that arrive while a sync runs share the next one (group
 * commit). Readers use their own read-only transactions (MDB_NOTLS: not tied
 * to a thread) and never wait for the writer.
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "bayeux.h"
#include "core/buf.h"
#include "core/stats.h"
#include "engines.h"

#define KEY_MAX 600 /* a channel name (at most 512 bytes), NUL, 8-byte id */

typedef struct job {
	struct job *next;
	bx_store_done_fn done;
	void *arg;
	size_t n;
	bx_store_rec recs[]; /* channel and json point into the same block */
} job;

typedef struct idc { /* the cache of "last": channel -> last id given */
	struct idc *next;
	uint64_t last;
	size_t len;
	char name[];
} idc;

typedef struct lstore {
	MDB_env *env;
	MDB_dbi rec, last;
	pthread_mutex_t lock; /* the queue and the id cache */
	pthread_cond_t cond;
	job *head, **tail;
	bool stop;
	pthread_t writer;
	idc **buckets;
	size_t nbuckets, count;
	/* /metrics (bx_store_lmdb_metrics): written by the writer only. */
	atomic_uint_fast64_t commits, records;
} lstore;

static size_t make_key(char *k, const char *ch, size_t len, uint64_t id)
{
	memcpy(k, ch, len);
	k[len] = '\0';
	for (int i = 0; i < 8; i++)
		k[len + 1 + i] = (char)(id >> (56 - 8 * i));
	return len + 9;
}

static uint64_t key_id(const MDB_val *k)
{
	const unsigned char *p = (const unsigned char *)k->mv_data + k->mv_size - 8;
	uint64_t id = 0;
	for (int i = 0; i < 8; i++)
		id = id << 8 | p[i];
	return id;
}

/* True when k is a record key of channel ch. */
static bool key_of(const MDB_val *k, const char *ch, size_t len)
{
	return k->mv_size == len + 9 && memcmp(k->mv_data, ch, len) == 0 &&
	       ((const char *)k->mv_data)[len] == '\0';
}

static uint64_t get_u64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* The last id given on channel as stored, 0 when none. */
static uint64_t stored_last(lstore *l, MDB_txn *txn, const char *ch, size_t len)
{
	MDB_val k = {len, (void *)ch}, v;
	if (mdb_get(txn, l->last, &k, &v) == 0 && v.mv_size == 8)
		return get_u64(v.mv_data);
	return 0;
}

/* The cached entry of channel (loaded from the database when missing), or
 * NULL on OOM or a read failure. Caller holds l->lock. */
static idc *cached(lstore *l, const char *ch, size_t len)
{
	size_t h = bx_hash(ch, len);
	for (idc *c = l->buckets[h & (l->nbuckets - 1)]; c; c = c->next)
		if (c->len == len && memcmp(c->name, ch, len) == 0)
			return c;
	if (l->count >= l->nbuckets) {
		size_t nb = l->nbuckets * 2;
		idc **b = calloc(nb, sizeof *b);
		if (!b)
			return NULL;
		for (size_t i = 0; i < l->nbuckets; i++)
			for (idc *c = l->buckets[i], *next; c; c = next) {
				next = c->next;
				size_t j = bx_hash(c->name, c->len) & (nb - 1);
				c->next = b[j];
				b[j] = c;
			}
		free(l->buckets);
		l->buckets = b;
		l->nbuckets = nb;
	}
	MDB_txn *txn;
	if (mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn) != 0)
		return NULL;
	uint64_t last = stored_last(l, txn, ch, len);
	mdb_txn_abort(txn);
	idc *c = malloc(sizeof *c + len);
	if (!c)
		return NULL;
	c->last = last;
	c->len = len;
	memcpy(c->name, ch, len);
	size_t j = h & (l->nbuckets - 1);
	c->next = l->buckets[j];
	l->buckets[j] = c;
	l->count++;
	return c;
}

static int l_append(void *self, bx_store_rec *recs, size_t n, bx_store_done_fn done, void *arg)
{
	lstore *l = self;
	size_t size = sizeof(job) + n * sizeof(bx_store_rec);
	for (size_t i = 0; i < n; i++) {
		if (recs[i].chlen + 9 > KEY_MAX)
			return -BX_EINVAL;
		size += recs[i].chlen + 1 + recs[i].len;
	}
	job *j = malloc(size);
	if (!j)
		return -BX_ENOMEM;
	j->next = NULL;
	j->done = done;
	j->arg = arg;
	j->n = n;
	char *p = (char *)&j->recs[n];
	for (size_t i = 0; i < n; i++) {
		j->recs[i] = recs[i];
		memcpy(p, recs[i].channel, recs[i].chlen);
		p[recs[i].chlen] = '\0';
		j->recs[i].channel = p;
		p += recs[i].chlen + 1;
		memcpy(p, recs[i].json, recs[i].len);
		j->recs[i].json = p;
		p += recs[i].len;
	}
	pthread_mutex_lock(&l->lock);
	if (l->stop) {
		pthread_mutex_unlock(&l->lock);
		free(j);
		return -BX_ESTATE;
	}
	/* Look every channel up first so that a failure gives no id. */
	for (size_t i = 0; i < n; i++)
		if (!cached(l, recs[i].channel, recs[i].chlen)) {
			pthread_mutex_unlock(&l->lock);
			free(j);
			return -BX_ENOMEM;
		}
	for (size_t i = 0; i < n; i++) {
		idc *c = cached(l, recs[i].channel, recs[i].chlen);
		recs[i].id = j->recs[i].id = ++c->last;
	}
	*l->tail = j;
	l->tail = &j->next;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
	return 0;
}

/* Deletes channel's oldest records while more than keep remain or they are
 * older than min_time_ms. */
static int trim_txn(lstore *l, MDB_txn *txn, const char *ch, size_t len, uint64_t keep,
                    int64_t min_time_ms, uint64_t newest)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, l->rec, &cur);
	if (rc)
		return rc;
	char kb[KEY_MAX];
	size_t klen = make_key(kb, ch, len, 0);
	/* Ids are given one by one, so newest - keep is the last one to drop. */
	uint64_t cut = keep && newest > keep ? newest - keep : 0;
	for (;;) {
		/* Seek again after each delete: where a cursor stands after
		 * mdb_cursor_del at a page's end is not something to rely on. */
		MDB_val k = {klen, kb}, v;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc)
			break;
		if (!key_of(&k, ch, len) || v.mv_size < 8)
			break;
		if (key_id(&k) > cut && (int64_t)get_u64(v.mv_data) >= min_time_ms)
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

static int write_batch(lstore *l, job *jobs)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(l->env, NULL, 0, &txn);
	if (rc)
		return rc;
	for (job *j = jobs; j && rc == 0; j = j->next)
		for (size_t i = 0; i < j->n && rc == 0; i++) {
			bx_store_rec *r = &j->recs[i];
			char kb[KEY_MAX];
			MDB_val k = {make_key(kb, r->channel, r->chlen, r->id), kb};
			MDB_val v = {8 + r->len, NULL};
			rc = mdb_put(txn, l->rec, &k, &v, MDB_RESERVE);
			if (rc)
				break;
			int64_t t = r->time_ms;
			memcpy(v.mv_data, &t, 8);
			memcpy((char *)v.mv_data + 8, r->json, r->len);
			MDB_val lk = {r->chlen, (void *)r->channel}, lv = {8, &r->id};
			rc = mdb_put(txn, l->last, &lk, &lv, 0);
			if (rc == 0)
				rc = trim_txn(l, txn, r->channel, r->chlen, r->keep, r->min_time_ms,
				              r->id);
		}
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn); /* syncs (the environment has no NOSYNC flag) */
}

static void *writer(void *arg)
{
	lstore *l = arg;
	pthread_mutex_lock(&l->lock);
	for (;;) {
		while (!l->head && !l->stop)
			pthread_cond_wait(&l->cond, &l->lock);
		if (!l->head)
			break; /* stopping with nothing left */
		job *jobs = l->head;
		l->head = NULL;
		l->tail = &l->head;
		pthread_mutex_unlock(&l->lock);
		int rc = write_batch(l, jobs);
		uint64_t nrec = 0;
		for (job *j = jobs; j; j = j->next)
			nrec += j->n;
		if (rc == 0) {
			atomic_fetch_add(&l->commits, 1);
			atomic_fetch_add(&l->records, nrec);
		}
		if (rc)
			fprintf(stderr, "bayeuxd: history store write failed: %s\n",
			        mdb_strerror(rc));
		for (job *j = jobs, *next; j; j = next) {
			next = j->next;
			if (j->done)
				j->done(j->arg, rc ? -BX_ESTATE : 0, rc || !j->n ? 0 : j->recs[0].id);
			free(j);
		}
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

static int l_read_after(void *self, const char *channel, size_t chlen, uint64_t after, size_t limit,
                        bx_store_visit_fn visit, void *arg)
{
	lstore *l = self;
	if (chlen + 9 > KEY_MAX || after == UINT64_MAX)
		return 0;
	MDB_txn *txn;
	int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return -BX_ESTATE;
	MDB_cursor *cur;
	if (mdb_cursor_open(txn, l->rec, &cur) != 0) {
		mdb_txn_abort(txn);
		return -BX_ESTATE;
	}
	char kb[KEY_MAX];
	MDB_val k = {make_key(kb, channel, chlen, after + 1), kb}, v;
	size_t sent = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (!key_of(&k, channel, chlen) || v.mv_size < 8 || (limit && sent == limit))
			break;
		bx_store_rec r = {.channel = channel,
		                  .chlen = chlen,
		                  .json = (const char *)v.mv_data + 8,
		                  .len = v.mv_size - 8,
		                  .time_ms = (int64_t)get_u64(v.mv_data),
		                  .id = key_id(&k)};
		sent++;
		if (visit(arg, &r))
			break;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return 0;
}

static int l_channels(void *self, bx_store_channel_fn fn, void *arg)
{
	lstore *l = self;
	MDB_txn *txn;
	if (mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn) != 0)
		return -BX_ESTATE;
	MDB_cursor *cur;
	if (mdb_cursor_open(txn, l->last, &cur) != 0) {
		mdb_txn_abort(txn);
		return -BX_ESTATE;
	}
	MDB_val k, v;
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if (fn(arg, k.mv_data, k.mv_size))
			break;
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return 0;
}

/* A trim outside an append: a job of no records that the writer runs in its
 * own transaction. For tests and maintenance; appends trim as they go. */
typedef struct trim_wait {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool done;
	int err;
} trim_wait;

static int l_trim(void *self, const char *channel, size_t chlen, uint64_t keep, int64_t min_time_ms)
{
	lstore *l = self;
	if (chlen + 9 > KEY_MAX)
		return -BX_EINVAL;
	uint64_t newest = 0;
	pthread_mutex_lock(&l->lock);
	idc *c = cached(l, channel, chlen);
	if (c)
		newest = c->last;
	pthread_mutex_unlock(&l->lock);
	if (!c)
		return -BX_ENOMEM;
	/* Runs on the caller's thread in a write transaction of its own (LMDB
	 * serializes it with the writer's). */
	MDB_txn *txn;
	int rc = mdb_txn_begin(l->env, NULL, 0, &txn);
	if (rc == 0)
		rc = trim_txn(l, txn, channel, chlen, keep, min_time_ms, newest);
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	return rc ? -BX_ESTATE : 0;
}

static int l_bounds(void *self, const char *channel, size_t chlen, uint64_t *oldest,
                    uint64_t *newest)
{
	lstore *l = self;
	*oldest = *newest = 0;
	if (chlen + 9 > KEY_MAX)
		return 0;
	MDB_txn *txn;
	if (mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn) != 0)
		return -BX_ESTATE;
	*newest = stored_last(l, txn, channel, chlen);
	MDB_cursor *cur;
	if (mdb_cursor_open(txn, l->rec, &cur) == 0) {
		char kb[KEY_MAX];
		MDB_val k = {make_key(kb, channel, chlen, 0), kb}, v;
		if (mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) == 0 && key_of(&k, channel, chlen))
			*oldest = key_id(&k);
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	return 0;
}

static void l_close(void *self)
{
	lstore *l = self;
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	l->stop = true;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->writer, NULL); /* writes what was queued first */
	mdb_env_close(l->env);
	for (size_t i = 0; i < l->nbuckets; i++)
		for (idc *c = l->buckets[i], *next; c; c = next) {
			next = c->next;
			free(c);
		}
	free(l->buckets);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free(l);
}

void bx_store_lmdb_metrics(void *self, bx_buf *out)
{
	lstore *l = self;
	bx_prom_family(out, "bayeux_store_commits_total", "counter",
	               "LMDB write transactions committed and synced (one per group of appends)");
	bx_prom_sample(out, "bayeux_store_commits_total", NULL, atomic_load(&l->commits));
	bx_prom_family(out, "bayeux_store_records_total", "counter",
	               "records written; divided by commits: the mean group size");
	bx_prom_sample(out, "bayeux_store_records_total", NULL, atomic_load(&l->records));
}

static const bx_store_ops lmdb_ops = {
        .append = l_append,
        .read_after = l_read_after,
        .channels = l_channels,
        .trim = l_trim,
        .bounds = l_bounds,
        .close = l_close,
};

int bx_store_lmdb_open(const char *dir, size_t map_size, bool full_sync, bx_store *out, char *err,
                       size_t errlen)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "--store %s: cannot create the folder: %s", dir,
		         strerror(errno));
		return -BX_EINVAL;
	}
	lstore *l = calloc(1, sizeof *l);
	if (!l || !(l->buckets = calloc(64, sizeof *l->buckets))) {
		free(l);
		snprintf(err, errlen, "out of memory");
		return -BX_ENOMEM;
	}
	l->nbuckets = 64;
	l->tail = &l->head;
	MDB_txn *txn = NULL;
	int rc = mdb_env_create(&l->env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(l->env, 2);
	if (rc == 0)
		rc = mdb_env_set_mapsize(l->env, map_size ? map_size : (size_t)1 << 30);
	if (rc == 0)
		rc = mdb_env_open(l->env, dir, MDB_NOTLS | (full_sync ? 0 : MDB_NOMETASYNC), 0600);
	if (rc == 0)
		rc = mdb_txn_begin(l->env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "rec", MDB_CREATE, &l->rec);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "last", MDB_CREATE, &l->last);
	if (rc == 0) {
		rc = mdb_txn_commit(txn);
		txn = NULL;
	}
	if (txn)
		mdb_txn_abort(txn);
	if (rc == 0) {
		pthread_mutex_init(&l->lock, NULL);
		pthread_cond_init(&l->cond, NULL);
		if (pthread_create(&l->writer, NULL, writer, l) != 0) {
			pthread_mutex_destroy(&l->lock);
			pthread_cond_destroy(&l->cond);
			rc = EAGAIN;
		}
	}
	if (rc) {
		snprintf(err, errlen, "--store %s: %s", dir, mdb_strerror(rc));
		if (l->env)
			mdb_env_close(l->env);
		free(l->buckets);
		free(l);
		return -BX_EINVAL;
	}
	out->ops = &lmdb_ops;
	out->self = l;
	return 0;
}
