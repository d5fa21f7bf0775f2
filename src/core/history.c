/*
 * history.c — retained publishes and replay (see history.h for the design).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bayeux.h"
#include "buf.h"
#include "history.h"
#include "msg.h"
#include "router.h"
#include "server.h"
#include "session.h"
#include "stats.h"

/* Per channel: the last replay id delivered live in this process. A channel
 * gets an entry at its first append here, at (its first id - 1): every id
 * below it was made durable by an earlier run. */
struct bx_hist_chan {
	bx_hist_chan *next;
	uint64_t delivered;
	size_t len;
	char name[];
};

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bx_history *bx_history_new(const bx_store *store, const bx_retain_rule *rules, size_t n)
{
	if (n > BX_RETAIN_MAX)
		return NULL;
	bx_history *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->nbuckets = 64;
	h->buckets = calloc(h->nbuckets, sizeof *h->buckets);
	if (!h->buckets) {
		free(h);
		return NULL;
	}
	h->store = *store;
	memcpy(h->rules, rules, n * sizeof *rules);
	h->nrules = n;
	h->wall = wall_ms;
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&h->lock, &a);
	pthread_mutexattr_destroy(&a);
	return h;
}

void bx_history_close(bx_history *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	bool was = h->closed;
	h->closed = true;
	pthread_mutex_unlock(&h->lock);
	/* Outside the lock: the writer's last done callbacks take it. */
	if (!was && h->store.ops)
		h->store.ops->close(h->store.self);
}

void bx_history_free(bx_history *h)
{
	if (!h)
		return;
	bx_history_close(h);
	for (size_t i = 0; i < h->nbuckets; i++)
		for (bx_hist_chan *c = h->buckets[i], *next; c; c = next) {
			next = c->next;
			free(c);
		}
	free(h->buckets);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void bx_history_metrics(void *arg, bx_buf *out)
{
	bx_history *h = arg;
	bx_prom_family(out, "bayeux_history_appended_total", "counter",
	               "messages of retained channels handed to the history store");
	bx_prom_sample(out, "bayeux_history_appended_total", NULL, atomic_load(&h->appended));
	bx_prom_family(out, "bayeux_history_failed_total", "counter",
	               "retained publishes the store could not make durable (answered 500)");
	bx_prom_sample(out, "bayeux_history_failed_total", NULL, atomic_load(&h->failed));
	bx_prom_family(out, "bayeux_history_replayed_total", "counter",
	               "messages queued to subscribers by replays (ext.replay)");
	bx_prom_sample(out, "bayeux_history_replayed_total", NULL, atomic_load(&h->replayed));
}

const bx_retain_rule *bx_history_rule(const bx_history *h, const char *channel, size_t len)
{
	if (!h)
		return NULL;
	for (size_t i = 0; i < h->nrules; i++)
		if (bx_channel_matches(h->rules[i].pattern, h->rules[i].plen, channel, len))
			return &h->rules[i];
	return NULL;
}

/* The channel's entry, or NULL. Caller holds h->lock. */
static bx_hist_chan *chan_find(bx_history *h, const char *ch, size_t len)
{
	for (bx_hist_chan *c = h->buckets[bx_hash(ch, len) & (h->nbuckets - 1)]; c; c = c->next)
		if (c->len == len && memcmp(c->name, ch, len) == 0)
			return c;
	return NULL;
}

/* Finds or adds the channel's entry (delivered = first_id - 1 when new).
 * Caller holds h->lock. */
static bx_hist_chan *chan_get(bx_history *h, const char *ch, size_t len, uint64_t first_id)
{
	bx_hist_chan *c = chan_find(h, ch, len);
	if (c)
		return c;
	if (h->count >= h->nbuckets) {
		size_t nb = h->nbuckets * 2;
		bx_hist_chan **b = calloc(nb, sizeof *b);
		if (b) {
			for (size_t i = 0; i < h->nbuckets; i++)
				for (bx_hist_chan *e = h->buckets[i], *next; e; e = next) {
					next = e->next;
					size_t k = bx_hash(e->name, e->len) & (nb - 1);
					e->next = b[k];
					b[k] = e;
				}
			free(h->buckets);
			h->buckets = b;
			h->nbuckets = nb;
		}
	}
	c = malloc(sizeof *c + len);
	if (!c)
		return NULL;
	c->delivered = first_id ? first_id - 1 : 0;
	c->len = len;
	memcpy(c->name, ch, len);
	size_t k = bx_hash(ch, len) & (h->nbuckets - 1);
	c->next = h->buckets[k];
	h->buckets[k] = c;
	h->count++;
	return c;
}

/*---- Replay ids in delivered messages ------------------------------------------*/

bx_msg *bx_msg_with_replay_id(const char *json, size_t len, uint64_t id)
{
	if (len < 2 || json[0] != '{' || json[len - 1] != '}')
		return NULL;
	bx_buf b;
	bx_buf_init(&b);
	/* Our own deliveries carry no ext unless an extension added one: then
	 * the object is rebuilt; otherwise the id is spliced in before '}'. */
	bool has_ext = false;
	for (size_t i = 0; i + 5 <= len && !has_ext; i++)
		has_ext = memcmp(json + i, "\"ext\"", 5) == 0;
	if (!has_ext) {
		bx_buf_append(&b, json, len - 1);
		bx_buf_printf(&b, "%s\"ext\":{\"replayId\":%llu}}", len > 2 ? "," : "",
		              (unsigned long long)id);
	} else {
		json_tokener *tok = json_tokener_new();
		json_object *o = tok ? json_tokener_parse_ex(tok, json, (int)len) : NULL;
		if (tok)
			json_tokener_free(tok);
		json_object *ext = NULL;
		if (!o || !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			return NULL;
		}
		if (!json_object_object_get_ex(o, "ext", &ext) ||
		    !json_object_is_type(ext, json_type_object)) {
			ext = json_object_new_object();
			json_object_object_add(o, "ext", ext);
		}
		json_object_object_add(ext, "replayId", json_object_new_int64((int64_t)id));
		size_t n = 0;
		const char *t = json_object_to_json_string_length(
		        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
		if (t)
			bx_buf_append(&b, t, n);
		else
			b.failed = true;
		json_object_put(o);
	}
	bx_msg *m = b.failed ? NULL : bx_msg_new(b.data, b.len);
	bx_buf_free(&b);
	return m;
}

/*---- Publishing ------------------------------------------------------------------*/

/* One retained publish between append and its delivery. The caller and the
 * engine's done each hold a reference. */
typedef struct pub {
	atomic_uint refs;
	bx_server *srv;
	bx_msg *raw; /* the delivered JSON without a replay id */
	bx_history_done_fn done;
	void *arg;
	size_t chlen;
	char channel[];
} pub;

static void pub_unref(pub *p)
{
	if (atomic_fetch_sub(&p->refs, 1) == 1) {
		bx_msg_unref(p->raw);
		free(p);
	}
}

/* Queues the delivered JSON, with replay id `id` added, for every
 * subscriber of channel. Caller holds h->lock. */
static void deliver_with_id(bx_server *srv, const char *channel, size_t len, const char *json,
                            size_t jlen, uint64_t id)
{
	bx_msg *m = bx_msg_with_replay_id(json, jlen, id);
	if (m) {
		bx_router_deliver(&srv->router, channel, len, m);
		bx_msg_unref(m);
	}
}

/* The engine's done (with the id it gave): deliver under the history lock
 * and record the channel's last id delivered live, which bounds replays (a
 * shared store's append comes back through the bus instead, and its
 * replays are bounded by the store's cut), then tell the caller. */
static void published(void *arg, int err, uint64_t id)
{
	pub *p = arg;
	bx_history *h = p->srv->history;
	pthread_mutex_lock(&h->lock);
	if (err == 0) {
		if (!h->store.ops->shared) {
			deliver_with_id(p->srv, p->channel, p->chlen, p->raw->data, p->raw->len, id);
			bx_hist_chan *c = chan_get(h, p->channel, p->chlen, id);
			if (c && c->delivered < id)
				c->delivered = id;
		}
		atomic_fetch_add(&p->srv->stats.publishes, 1);
	}
	pthread_mutex_unlock(&h->lock);
	if (err)
		atomic_fetch_add(&h->failed, 1);
	if (p->done)
		p->done(p->arg, err, err ? 0 : id);
	pub_unref(p);
}

size_t bx_history_bus_deliver(bx_server *srv, const char *channel, size_t chlen,
                              const char *json, size_t len, uint64_t id)
{
	bx_history *h = srv->history;
	pthread_mutex_lock(&h->lock);
	/* (The engine drops duplicates; ids restart when Redis lost them.) */
	size_t n = 0;
	if (!h->closed) {
		deliver_with_id(srv, channel, chlen, json, len, id);
		n = 1;
	}
	pthread_mutex_unlock(&h->lock);
	return n;
}

int bx_history_publish(bx_server *srv, const bx_retain_rule *rule, const char *channel,
                       size_t chlen, const bx_msg *m, bx_history_done_fn done, void *arg,
                       uint64_t *id)
{
	bx_history *h = srv->history;
	pub *p = malloc(sizeof *p + chlen);
	if (!p)
		return -BX_ENOMEM;
	atomic_init(&p->refs, 2);
	p->srv = srv;
	p->raw = (bx_msg *)m;
	bx_msg_ref(p->raw);
	p->done = done;
	p->arg = arg;
	p->chlen = chlen;
	memcpy(p->channel, channel, chlen);
	int64_t now = h->wall();
	bx_store_rec rec = {.channel = channel,
	                    .chlen = chlen,
	                    .json = m->data,
	                    .len = m->len,
	                    .time_ms = now,
	                    .keep = rule->count,
	                    .min_time_ms = rule->age_ms ? now - rule->age_ms : INT64_MIN};
	pthread_mutex_lock(&h->lock);
	int rc =
	        h->closed ? -BX_ESTATE : h->store.ops->append(h->store.self, &rec, 1, published, p);
	if (rc == 0) {
		/* Until its done, replays read this channel only up to the id
		 * before: the entry says so (a synchronous done made it). A
		 * shared store gives the id only to done. */
		if (rec.id)
			chan_get(h, channel, chlen, rec.id);
		atomic_fetch_add(&h->appended, 1);
	}
	pthread_mutex_unlock(&h->lock);
	if (rc != 0)
		pub_unref(p); /* done will not come */
	pub_unref(p);
	*id = rec.id;
	return rc;
}

/*---- Replay -----------------------------------------------------------------------*/

typedef struct replay_ctx {
	bx_server *srv;
	bx_session *s;
	uint64_t bound;   /* the last id delivered live: stop after it */
	int64_t min_time; /* skip older (the rule's AGE) */
	size_t left;      /* most messages still to queue */
	uint64_t first;   /* first id queued, 0: none */
	size_t n;
} replay_ctx;

/* What a replay of one channel to s starts from: ids up to bound, none
 * older than the rule's AGE, at most left of them. */
static replay_ctx replay_start(bx_server *srv, bx_session *s, const bx_retain_rule *rule,
                               uint64_t bound, size_t left)
{
	return (replay_ctx){.srv = srv,
	                    .s = s,
	                    .bound = bound,
	                    .min_time = rule->age_ms ? srv->history->wall() - rule->age_ms
	                                             : INT64_MIN,
	                    .left = left};
}

/* Records a gap when what the client gets next (the first replayed, else
 * the next live) is not what it asked for. */
static void note_gap(bx_replay_result *out, const char *ch, size_t len, int64_t value,
                     bool reset, uint64_t first, uint64_t bound)
{
	uint64_t next = first ? first : bound + 1;
	if (value < 0 || (!reset && next <= (uint64_t)value + 1))
		return;
	bx_replay_gap *g = realloc(out->gaps, (out->ngaps + 1) * sizeof *g);
	if (!g)
		return;
	out->gaps = g;
	g = &out->gaps[out->ngaps++];
	snprintf(g->channel, sizeof g->channel, "%.*s", (int)len, ch);
	g->after = (uint64_t)value;
	g->resumed = next;
}

/* After the records were visited: counts them and notes a gap. */
static void replay_end(replay_ctx *x, const char *ch, size_t len, int64_t value, bool reset,
                       size_t *left, bx_replay_result *out)
{
	*left = x->left;
	out->replayed += x->n;
	atomic_fetch_add(&x->srv->history->replayed, x->n);
	note_gap(out, ch, len, value, reset, x->first, x->bound);
}

static int replay_visit(void *arg, const bx_store_rec *r)
{
	replay_ctx *x = arg;
	if (r->id > x->bound || x->left == 0)
		return 1;
	if (r->time_ms < x->min_time)
		return 0;
	bx_msg *m = bx_msg_with_replay_id(r->json, r->len, r->id);
	if (!m)
		return 1;
	bx_session_deliver(x->s, m);
	bx_msg_unref(m);
	if (!x->first)
		x->first = r->id;
	x->n++;
	x->left--;
	return 0;
}

typedef struct names {
	char **v;
	size_t *len;
	size_t n, cap;
	const char *pattern;
	size_t plen;
	bool failed;
} names;

static int collect(void *arg, const char *ch, size_t len)
{
	names *l = arg;
	if (!bx_channel_matches(l->pattern, l->plen, ch, len))
		return 0;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 8;
		char **v = realloc(l->v, nc * sizeof *v);
		if (v)
			l->v = v;
		size_t *ln = v ? realloc(l->len, nc * sizeof *ln) : NULL;
		if (ln)
			l->len = ln;
		if (!v || !ln) {
			l->failed = true;
			return 1;
		}
		l->cap = nc;
	}
	char *c = malloc(len + 1);
	if (!c) {
		l->failed = true;
		return 1;
	}
	memcpy(c, ch, len);
	c[len] = '\0';
	l->v[l->n] = c;
	l->len[l->n++] = len;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays one retained channel to s. Caller holds h->lock. */
static void replay_channel(bx_server *srv, bx_session *s, const bx_retain_rule *rule,
                           const char *ch, size_t len, int64_t value, size_t *left,
                           bx_replay_result *out)
{
	bx_history *h = srv->history;
	uint64_t oldest = 0, newest = 0;
	if (h->store.ops->bounds(h->store.self, ch, len, &oldest, &newest) != 0)
		return;
	bx_hist_chan *c = chan_find(h, ch, len);
	uint64_t bound = c ? c->delivered : newest;
	uint64_t after = value == BX_REPLAY_ALL ? 0 : (uint64_t)value;
	/* An id beyond anything this channel ever had comes from a history
	 * that is gone (a broker without --store restarted): replay it all,
	 * and say so. */
	bool reset = value >= 0 && after > bound;
	if (reset)
		after = 0;
	replay_ctx x = replay_start(srv, s, rule, bound, *left);
	if (after < bound)
		h->store.ops->read_after(h->store.self, ch, len, after, 0, replay_visit, &x);
	replay_end(&x, ch, len, value, reset, left, out);
}

int bx_history_subscribe(bx_server *srv, bx_session *s, const char *pattern, size_t plen,
                         json_object *replay, bx_replay_result *out)
{
	bx_history *h = srv->history;
	memset(out, 0, sizeof *out);
	int64_t value = bx_replay_value(replay, pattern, plen);
	bool wild = plen && pattern[plen - 1] == '*';
	if (value == BX_REPLAY_NEW && (!wild || !replay || json_object_object_length(replay) < 2))
		return bx_router_subscribe(&srv->router, s, pattern, plen);
	pthread_mutex_lock(&h->lock);
	int rc = bx_router_subscribe(&srv->router, s, pattern, plen);
	if (rc != 0 || h->closed) {
		pthread_mutex_unlock(&h->lock);
		return rc;
	}
	size_t left = srv->cfg.max_queue;
	if (!wild) {
		const bx_retain_rule *rule = bx_history_rule(h, pattern, plen);
		if (rule)
			replay_channel(srv, s, rule, pattern, plen, value, &left, out);
	} else {
		names l = {.pattern = pattern, .plen = plen};
		h->store.ops->channels(h->store.self, collect, &l);
		if (l.n)
			qsort(l.v, l.n, sizeof *l.v, cmp_names);
		for (size_t i = 0; i < l.n; i++) {
			size_t len = strlen(l.v[i]); /* (sorted: l.len no longer lines up) */
			const bx_retain_rule *rule = bx_history_rule(h, l.v[i], len);
			/* A channel named on its own in ext.replay (the client's
			 * last id of it) wins over the pattern's value. */
			int64_t v = bx_replay_value(replay, l.v[i], len);
			if (v == BX_REPLAY_NEW)
				v = value;
			if (rule && v != BX_REPLAY_NEW)
				replay_channel(srv, s, rule, l.v[i], len, v, &left, out);
			free(l.v[i]);
		}
		free(l.v);
		free(l.len);
	}
	pthread_mutex_unlock(&h->lock);
	return 0;
}

void bx_replay_gaps_write(bx_buf *o, bx_replay_result *r)
{
	for (size_t i = 0; i < r->ngaps; i++) {
		if (o->len)
			bx_buf_putc(o, ',');
		bx_buf_json_str(o, r->gaps[i].channel, strlen(r->gaps[i].channel));
		bx_buf_printf(o, ":{\"after\":%llu,\"resumedFrom\":%llu}",
		              (unsigned long long)r->gaps[i].after,
		              (unsigned long long)r->gaps[i].resumed);
	}
	free(r->gaps);
	r->gaps = NULL;
	r->ngaps = 0;
}

/*---- Replay from a shared store ------------------------------------------------------*/

/* One deferred subscription: what ext.replay asked, kept until the cut. */
typedef struct later {
	bx_server *srv;
	bx_session *s; /* one reference */
	int64_t value; /* the pattern's own value */
	bx_history_later_fn fn;
	void *arg;
	bx_store_after *named; /* channels ext.replay names under a wildcard */
	int64_t *nvalues;      /* ... and their values */
	size_t nnamed;
	size_t len;
	char pattern[];
} later;

static bool is_wild(const char *pattern, size_t plen)
{
	return plen && pattern[plen - 1] == '*';
}

bool bx_history_defers(bx_server *srv, const char *pattern, size_t plen, json_object *replay)
{
	bx_history *h = srv->history;
	if (!h || !h->store.ops->shared || !replay)
		return false;
	int64_t value = bx_replay_value(replay, pattern, plen);
	if (!is_wild(pattern, plen))
		return value != BX_REPLAY_NEW && bx_history_rule(h, pattern, plen) != NULL;
	/* Under a wildcard: the pattern's value, or channels named on their own. */
	return value != BX_REPLAY_NEW || json_object_object_length(replay) >= 2;
}

static void later_free(later *l)
{
	for (size_t i = 0; i < l->nnamed; i++)
		free((char *)l->named[i].channel);
	free(l->named);
	free(l->nvalues);
	bx_session_unref(l->s);
	free(l);
}

static int cmp_replayed(const void *a, const void *b)
{
	const bx_store_replayed *x = *(const bx_store_replayed *const *)a;
	const bx_store_replayed *y = *(const bx_store_replayed *const *)b;
	size_t n = x->chlen < y->chlen ? x->chlen : y->chlen;
	int c = memcmp(x->channel, y->channel, n);
	return c ? c : (x->chlen > y->chlen) - (x->chlen < y->chlen);
}

/* The value ext.replay gave channel (named on its own, else the pattern's). */
static int64_t value_of(const later *l, const char *ch, size_t len)
{
	for (size_t i = 0; i < l->nnamed; i++)
		if (l->named[i].chlen == len && memcmp(l->named[i].channel, ch, len) == 0)
			return l->nvalues[i];
	return l->value;
}

/* The engine's cut (store.h replay): subscribe, then queue each channel's
 * records (channels in name order, ids in order), on the engine's thread,
 * before any later record of them arrives. */
static void replayed(void *arg, int err, const bx_store_replayed *chans, size_t nchans)
{
	later *l = arg;
	bx_server *srv = l->srv;
	bx_history *h = srv->history;
	bx_replay_result out = {0};
	int rc = err ? 1 : 0;
	const bx_store_replayed **order = nchans ? malloc(nchans * sizeof *order) : NULL;
	if (rc == 0 && nchans && !order)
		rc = -BX_ENOMEM;
	pthread_mutex_lock(&h->lock);
	if (rc == 0 && h->closed)
		rc = 1;
	if (rc == 0)
		rc = bx_router_subscribe(&srv->router, l->s, l->pattern, l->len);
	if (rc == 0) {
		for (size_t i = 0; i < nchans; i++)
			order[i] = &chans[i];
		if (nchans > 1)
			qsort(order, nchans, sizeof *order, cmp_replayed);
		size_t left = srv->cfg.max_queue;
		for (size_t i = 0; i < nchans; i++) {
			const bx_store_replayed *c = order[i];
			const bx_retain_rule *rule = bx_history_rule(h, c->channel, c->chlen);
			int64_t value = value_of(l, c->channel, c->chlen);
			if (!rule || value == BX_REPLAY_NEW ||
			    !bx_channel_matches(l->pattern, l->len, c->channel, c->chlen))
				continue;
			replay_ctx x = replay_start(srv, l->s, rule, c->newest, left);
			for (size_t k = 0; k < c->n && replay_visit(&x, &c->recs[k]) == 0; k++)
				;
			bool reset = value >= 0 && (uint64_t)value > c->newest;
			replay_end(&x, c->channel, c->chlen, value, reset, &left, &out);
		}
	}
	pthread_mutex_unlock(&h->lock);
	free(order);
	l->fn(l->arg, rc, &out);
	later_free(l);
}

/* What to read for a value: ALL → after 0; an id → after it; NEW → none. */
static bool after_of(int64_t value, uint64_t *after)
{
	if (value == BX_REPLAY_NEW)
		return false;
	*after = value == BX_REPLAY_ALL ? 0 : (uint64_t)value;
	return true;
}

int bx_history_subscribe_later(bx_server *srv, bx_session *s, const char *pattern, size_t plen,
                               json_object *replay, bx_history_later_fn fn, void *arg)
{
	bx_history *h = srv->history;
	later *l = calloc(1, sizeof *l + plen + 1);
	if (!l)
		return -BX_ENOMEM;
	l->srv = srv;
	l->s = s;
	bx_session_ref(s);
	l->value = bx_replay_value(replay, pattern, plen);
	l->fn = fn;
	l->arg = arg;
	l->len = plen;
	memcpy(l->pattern, pattern, plen);
	bool wild = is_wild(pattern, plen);
	/* Under a wildcard, the channels ext.replay names on their own (with an
	 * id or -2: a -1 leaves the pattern's value to them). */
	size_t cap = wild && replay ? (size_t)json_object_object_length(replay) : 0;
	if (cap && (!(l->named = calloc(cap, sizeof *l->named)) ||
	            !(l->nvalues = calloc(cap, sizeof *l->nvalues)))) {
		later_free(l);
		return -BX_ENOMEM;
	}
	if (cap) {
		json_object_object_foreach(replay, key, val)
		{
			(void)val;
			size_t klen = strlen(key);
			int64_t v = bx_replay_value(replay, key, klen);
			uint64_t after;
			if (is_wild(key, klen) || !bx_channel_matches(pattern, plen, key, klen) ||
			    !after_of(v, &after))
				continue;
			char *c = malloc(klen + 1);
			if (!c) {
				later_free(l);
				return -BX_ENOMEM;
			}
			memcpy(c, key, klen + 1);
			l->named[l->nnamed] = (bx_store_after){.channel = c, .chlen = klen, .after = after};
			l->nvalues[l->nnamed++] = v;
		}
	}
	bx_store_replay_req req = {.pattern = l->pattern,
	                           .plen = plen,
	                           .named = l->named,
	                           .nnamed = l->nnamed,
	                           .limit = srv->cfg.max_queue};
	req.has_after = after_of(l->value, &req.after);
	int rc = h->store.ops->replay(h->store.self, &req, replayed, l);
	if (rc != 0) {
		l->fn = NULL;
		later_free(l);
	}
	return rc;
}

/*---- Reading for the HTTP endpoint -------------------------------------------------*/

typedef struct read_ctx {
	bx_buf *out;
	int64_t min_time;
	uint64_t bound;
	size_t n;
} read_ctx;

static int read_visit(void *arg, const bx_store_rec *r)
{
	read_ctx *x = arg;
	if (r->id > x->bound)
		return 1;
	if (r->time_ms < x->min_time)
		return 0;
	bx_msg *m = bx_msg_with_replay_id(r->json, r->len, r->id);
	if (!m)
		return 1;
	if (x->n++)
		bx_buf_putc(x->out, ',');
	bx_buf_append(x->out, m->data, m->len);
	bx_msg_unref(m);
	return 0;
}

int bx_history_read_json(bx_server *srv, const char *channel, size_t chlen, uint64_t after,
                         size_t limit, bx_buf *out)
{
	bx_history *h = srv->history;
	const bx_retain_rule *rule = bx_history_rule(h, channel, chlen);
	if (!rule)
		return -BX_ECHANNEL;
	if (limit == 0 || limit > 10000)
		limit = 10000;
	read_ctx x = {.out = out, .min_time = rule->age_ms ? h->wall() - rule->age_ms : INT64_MIN};
	uint64_t oldest, newest;
	if (h->store.ops->shared)
		return -BX_EREJECTED; /* read through ext.replay (store.h replay) */
	pthread_mutex_lock(&h->lock);
	if (h->closed) {
		pthread_mutex_unlock(&h->lock);
		return -BX_ESTATE;
	}
	h->store.ops->bounds(h->store.self, channel, chlen, &oldest, &newest);
	bx_hist_chan *c = chan_find(h, channel, chlen);
	x.bound = c ? c->delivered : newest;
	bx_buf_putc(out, '[');
	/* Under the lock, which keeps the engine open (shutdown); the bound
	 * keeps what is not yet durable out. Age filtering may skip some of
	 * `limit`; the caller pages on with the last id it got. */
	h->store.ops->read_after(h->store.self, channel, chlen, after, limit, read_visit, &x);
	pthread_mutex_unlock(&h->lock);
	bx_buf_putc(out, ']');
	return out->failed ? -BX_ENOMEM : 0;
}
