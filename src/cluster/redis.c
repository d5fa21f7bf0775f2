/*
 * redis.c — the Redis bus: bayeuxd nodes share one Redis (issue #13).
 *
 * One thread per node runs an epoll loop that drives two hiredis
 * asynchronous connections through our own adapter:
 *   - `pub` sends one PUBLISH per local Bayeux publish, in the order the
 *     HTTP threads handed them over (a queue under the bus lock);
 *   - `sub` holds this node's SUBSCRIBE/PSUBSCRIBE set and receives.
 * HTTP threads never touch a socket: they change the interest table and the
 * publish queue under `lock` and kick the loop through an eventfd.
 *
 * Interest table: one entry per Redis subscription (an exact channel, or one
 * pattern standing for /a/ * and /a/ ** alike), counting the Bayeux patterns
 * turned on by the router. An entry is subscribed when its count becomes
 * positive, confirmed by Redis's subscribe reply (then `ready` waiters run),
 * and unsubscribed after a short linger once its count is back to zero.
 *
 * Faults: when either connection fails the node logs once, drops the
 * publishes it cannot send (local delivery never depended on Redis), fails
 * its waiters, and reconnects with a doubling backoff; on return every entry
 * with a count is subscribed again. healthy() is false meanwhile.
 *
 * Duplicates: a PUBLISH matched by several of this node's subscriptions
 * arrives once per subscription, adjacent (Redis writes them in one go); the
 * (origin, seq) header (wire.h) lets the loop drop all but the first.
 */
#include "redis.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/channel.h"
#include "core/msg.h"
#include "core/log.h"
#include "core/server.h"
#include "core/stats.h"
#include "wire.h"

/* A Redis subscription is kept this long after its last local subscriber
 * leaves, so a client that unsubscribes and subscribes again costs nothing. */
#define LINGER_MS 200
/* A ready() waiter gives up (done with an error) after this long. */
#define READY_TIMEOUT_MS 3000
/* Reconnection backoff: first, then doubling up to the last. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
/* Publishes sent but not yet answered by Redis past which new ones are
 * dropped (a slow Redis must not grow our memory without bound). */
#define MAX_INFLIGHT 100000
/* A connection attempt not established after this long is retried. */
#define CONNECT_TIMEOUT_MS 3000
/* The loop wakes this often while something is timed (a linger, a waiter's
 * deadline, a reconnection); idle, it sleeps until kicked. */
#define TICK_MS 50
/* Origins remembered for duplicate detection; the table is cleared when
 * full (a restarting node gets a new origin token each start). */
#define ORIGINS_MAX 4096
/* Longest Redis key or pattern for one Bayeux pattern (escaped). */
#define KEY_MAX (2 * (BX_REDIS_PREFIX_MAX + 1 + BX_CHANNEL_MAX_LEN) + 2)

typedef struct waiter {
	bx_bus_done_fn done;
	void *arg;
	int64_t deadline;
	struct waiter *next;
} waiter;

typedef struct entry {
	char *key;     /* "<prefix>:/a/b" or the escaped pattern "<prefix>:/a/ *" */
	size_t klen;
	bool pattern;  /* PSUBSCRIBE, not SUBSCRIBE */
	long count;    /* Bayeux patterns on, per the router */
	bool sent;     /* a (P)SUBSCRIBE is on the wire or in effect */
	int unconfirmed; /* (P)SUBSCRIBEs sent, not yet answered */
	bool active;   /* confirmed: other nodes' publishes reach us */
	bool dirty;    /* on the dirty list */
	int64_t linger_until; /* count 0: unsubscribe at this time */
	waiter *waiters;
	struct entry *hnext, *dnext;
} entry;

typedef struct pubmsg {
	struct pubmsg *next;
	size_t klen, plen;
	char *key, *payload; /* both point into the same allocation */
	/* A history append (the append script) instead of a PUBLISH: its
	 * arguments, and who to tell once Redis answered. */
	struct rbus *bus;
	bx_store_done_fn done;
	void *arg;
	int argc;
	const char *argv[13];
	size_t lens[13];
} pubmsg;

/* A replay from the history stream (store.h replay): holds the channel's
 * interest until done, so the node receives its publishes; sent once that
 * interest is confirmed; done when both the script's answer (the records)
 * and its cut (on the subscriber connection) came. */
typedef struct rjob {
	struct rjob *next;
	char key[KEY_MAX]; /* the Redis subscription: "<prefix>:<channel>" or a pattern */
	size_t klen;
	bool pattern;
	char *channel; /* the Bayeux channel or pattern */
	size_t chlen;
	bool has_after;
	uint64_t after;
	bx_store_after *named; /* channels copied */
	size_t nnamed;
	size_t limit;
	bx_store_replay_fn fn;
	void *arg;
	uint64_t token;   /* its cut's */
	int64_t deadline; /* waiting for interest, or for the cut after the answer */
	bool sent, got_reply, got_cut;
	bx_store_replayed *chans; /* the answer, copied */
	size_t nchans;
} rjob;

/* A message the subscriber connection delivered while a replay waits for
 * its answer after its cut (see deliver()). */
typedef struct later_msg {
	struct later_msg *next;
	size_t clen, plen;
	char data[]; /* channel, then payload */
} later_msg;

typedef struct origin_seen {
	char origin[BX_ORIGIN_MAX + 1];
	uint64_t seq;
	bool used;
} origin_seen;

struct rbus;

/* One hiredis connection and its place in our epoll set. */
typedef struct rconn {
	struct rbus *bus;
	redisAsyncContext *ac; /* NULL when closed */
	int fd;
	bool reading, writing, registered;
	bool connected;
} rconn;

typedef struct rbus {
	struct bx_server *srv;
	bx_redis_addr addr;
	char prefix[BX_REDIS_PREFIX_MAX + 1];
	char origin[BX_ORIGIN_MAX + 1];
	size_t olen;

	pthread_t thread;
	bool thread_started;
	int epfd, evfd;
	atomic_bool kicked; /* an eventfd write is pending */
	atomic_bool up;     /* both connections established */
	atomic_bool stopped;

	pthread_mutex_t lock; /* everything down to `seq` */
	entry **buckets;
	size_t nbuckets, nentries;
	entry *dirty;
	pubmsg *qhead, *qtail;
	size_t qlen;
	uint64_t seq; /* publishes numbered, under lock so seq order = queue order */
	size_t nwaiters; /* ready() callers waiting, over all entries */
	rjob *jobs;      /* replays not done */
	bool stop;

	/* The loop thread's own. */
	rconn pub, sub;
	int64_t retry_at;
	int64_t connect_at; /* when the current connection attempt began */
	int64_t backoff;
	bool down_logged;
	bool ever_up;
	size_t inflight;
	uint64_t dropped; /* publishes not sent (Redis down or too slow) */
	origin_seen *seen;
	size_t nseen;
	uint64_t own_seq; /* the last of our own retained messages delivered */
	uint64_t tokens;  /* cuts sent */
	rjob *paused;     /* its cut came before its answer: hold deliveries */
	later_msg *held, **held_tail;

	/* For /metrics (read with no lock). */
	atomic_uint_fast64_t m_sent, m_dropped, m_received, m_duplicates, m_reconnects;
	atomic_int_fast64_t m_subscriptions; /* (P)SUBSCRIBEs in effect */
} rbus;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void kick(rbus *b)
{
	if (!atomic_exchange(&b->kicked, true)) {
		uint64_t one = 1;
		ssize_t w = write(b->evfd, &one, sizeof one);
		(void)w;
	}
}

/*---- The interest table (under lock) ----------------------------------------*/

static entry *entry_find(rbus *b, const char *key, size_t klen, bool pattern)
{
	for (entry *e = b->buckets[bx_hash(key, klen) & (b->nbuckets - 1)]; e; e = e->hnext)
		if (e->pattern == pattern && e->klen == klen && memcmp(e->key, key, klen) == 0)
			return e;
	return NULL;
}

static int table_grow(rbus *b)
{
	size_t n = b->nbuckets * 2;
	entry **v = calloc(n, sizeof *v);
	if (!v)
		return -BX_ENOMEM;
	for (size_t i = 0; i < b->nbuckets; i++)
		for (entry *e = b->buckets[i], *next; e; e = next) {
			next = e->hnext;
			size_t j = bx_hash(e->key, e->klen) & (n - 1);
			e->hnext = v[j];
			v[j] = e;
		}
	free(b->buckets);
	b->buckets = v;
	b->nbuckets = n;
	return 0;
}

static entry *entry_get(rbus *b, const char *key, size_t klen, bool pattern)
{
	entry *e = entry_find(b, key, klen, pattern);
	if (e)
		return e;
	if (b->nentries + 1 > b->nbuckets && table_grow(b) != 0)
		return NULL;
	e = calloc(1, sizeof *e);
	if (!e || !(e->key = malloc(klen + 1))) {
		free(e);
		return NULL;
	}
	memcpy(e->key, key, klen + 1);
	e->klen = klen;
	e->pattern = pattern;
	size_t j = bx_hash(key, klen) & (b->nbuckets - 1);
	e->hnext = b->buckets[j];
	b->buckets[j] = e;
	b->nentries++;
	return e;
}

static void entry_unlink_free(rbus *b, entry *e)
{
	entry **pp = &b->buckets[bx_hash(e->key, e->klen) & (b->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	b->nentries--;
	free(e->key);
	free(e);
}

static void mark_dirty(rbus *b, entry *e)
{
	if (!e->dirty) {
		e->dirty = true;
		e->dnext = b->dirty;
		b->dirty = e;
	}
}

/* Moves e's waiters onto the list *into (run it with run_waiters() after
 * unlocking). */
static void take_waiters(rbus *b, entry *e, waiter **into)
{
	while (e->waiters) {
		waiter *w = e->waiters;
		e->waiters = w->next;
		w->next = *into;
		*into = w;
		b->nwaiters--;
	}
}

static void run_waiters(waiter *w, int err)
{
	while (w) {
		waiter *next = w->next;
		w->done(w->arg, err);
		free(w);
		w = next;
	}
}

/* Translates a Bayeux pattern into its Redis key; 0 when it cannot be. */
static size_t translate(rbus *b, const char *pattern, size_t len, char *key, bool *is_pattern)
{
	unsigned flags;
	if (len > BX_CHANNEL_MAX_LEN || !bx_channel_check(pattern, len, &flags))
		return 0;
	return bx_wire_redis_key(b->prefix, pattern, len, (flags & BX_CH_WILD) != 0, key, KEY_MAX,
	                         is_pattern);
}

/*---- The bus ops (any thread) -----------------------------------------------*/

static int op_ready(void *self, const char *pattern, size_t len, bx_bus_done_fn done, void *arg);

static int op_interest(void *self, const char *pattern, size_t len, bool on, bx_bus_done_fn done,
                       void *arg)
{
	rbus *b = self;
	char key[KEY_MAX];
	bool pat;
	size_t klen = translate(b, pattern, len, key, &pat);
	if (!klen)
		return -BX_ECHANNEL;
	pthread_mutex_lock(&b->lock);
	if (b->stop) {
		pthread_mutex_unlock(&b->lock);
		if (done)
			done(arg, -BX_ESTATE);
		return 0;
	}
	entry *e = entry_get(b, key, klen, pat);
	if (!e) {
		pthread_mutex_unlock(&b->lock);
		return -BX_ENOMEM;
	}
	bool wake = false;
	if (on) {
		if (++e->count == 1) {
			e->linger_until = 0;
			if (!e->sent) {
				mark_dirty(b, e);
				wake = true;
			}
		}
	} else if (e->count > 0 && --e->count == 0) {
		e->linger_until = now_ms() + LINGER_MS;
		mark_dirty(b, e);
		wake = true; /* the loop times the linger */
	}
	pthread_mutex_unlock(&b->lock);
	if (wake)
		kick(b);
	if (on && done)
		return op_ready(self, pattern, len, done, arg);
	if (done)
		done(arg, 0);
	return 0;
}

static int op_ready(void *self, const char *pattern, size_t len, bx_bus_done_fn done, void *arg)
{
	rbus *b = self;
	char key[KEY_MAX];
	bool pat;
	size_t klen = translate(b, pattern, len, key, &pat);
	if (!klen)
		return -BX_ECHANNEL;
	int err = 0;
	pthread_mutex_lock(&b->lock);
	entry *e = entry_find(b, key, klen, pat);
	if (b->stop || !atomic_load(&b->up) || !e || e->count == 0) {
		err = -BX_ESTATE;
	} else if (!e->active) {
		waiter *w = malloc(sizeof *w);
		if (!w) {
			pthread_mutex_unlock(&b->lock);
			return -BX_ENOMEM;
		}
		w->done = done;
		w->arg = arg;
		w->deadline = now_ms() + READY_TIMEOUT_MS;
		w->next = e->waiters;
		e->waiters = w;
		b->nwaiters++;
		pthread_mutex_unlock(&b->lock);
		kick(b); /* the loop times the waiter's deadline */
		return 0;
	}
	pthread_mutex_unlock(&b->lock);
	done(arg, err);
	return 0;
}

/* Takes everything queued (caller holds the lock). */
static pubmsg *take_queue_locked(rbus *b)
{
	pubmsg *q = b->qhead;
	b->qhead = b->qtail = NULL;
	b->qlen = 0;
	return q;
}

/* What an append's done hears when Redis did not take it. */
static void append_failed(pubmsg *p)
{
	if (p->done)
		p->done(p->arg, -BX_ESTATE, 0);
	free(p);
}

/* Frees what will not be sent: appends hear they failed. Returns how many. */
static uint64_t drop_queued(pubmsg *q)
{
	uint64_t n = 0;
	for (pubmsg *p = q, *next; p; p = next, n++) {
		next = p->next;
		append_failed(p);
	}
	return n;
}

/* Queues p with the next seq (its header written by the caller's fill
 * with that seq) and kicks the loop; -BX_ESTATE (p freed) once stopped. */
static int enqueue(rbus *b, pubmsg *p, void (*fill)(rbus *b, pubmsg *p, uint64_t seq))
{
	pthread_mutex_lock(&b->lock);
	if (b->stop) {
		pthread_mutex_unlock(&b->lock);
		free(p);
		return -BX_ESTATE;
	}
	fill(b, p, ++b->seq);
	if (b->qtail)
		b->qtail->next = p;
	else
		b->qhead = p;
	b->qtail = p;
	b->qlen++;
	pthread_mutex_unlock(&b->lock);
	kick(b);
	return 0;
}

/* A PUBLISH's payload: the header, then the message (placed after it). */
static void fill_publish(rbus *b, pubmsg *p, uint64_t seq)
{
	char hdr[BX_WIRE_HEADER_MAX];
	size_t hl = bx_wire_header(hdr, b->origin, seq);
	memmove(p->payload + hl, p->payload + BX_WIRE_HEADER_MAX, p->plen);
	memcpy(p->payload, hdr, hl);
	p->plen += hl;
}

static int op_publish(void *self, const char *channel, size_t chlen, const bx_msg *m)
{
	rbus *b = self;
	if (!atomic_load(&b->up))
		return -BX_ESTATE; /* counted by the loop as it finds out; local delivery is done */
	size_t plen = strlen(b->prefix);
	size_t klen = plen + 1 + chlen;
	pubmsg *p = malloc(sizeof *p + klen + BX_WIRE_HEADER_MAX + m->len);
	if (!p)
		return -BX_ENOMEM;
	p->key = (char *)(p + 1);
	memcpy(p->key, b->prefix, plen);
	p->key[plen] = ':';
	memcpy(p->key + plen + 1, channel, chlen);
	p->klen = klen;
	p->payload = p->key + klen;
	p->next = NULL;
	p->done = NULL; /* a PUBLISH, not an append */
	/* The message waits after room for the header (fill_publish). */
	memcpy(p->payload + BX_WIRE_HEADER_MAX, m->data, m->len);
	p->plen = m->len;
	return enqueue(b, p, fill_publish);
}

static bool op_healthy(void *self)
{
	rbus *b = self;
	return atomic_load(&b->up) && !atomic_load(&b->stopped);
}

/*---- History in Redis Streams (store.h, shared) --------------------------------------*/

static bool is_str(const redisReply *r);

/* Append and publish in one step: the replay id is the channel's counter,
 * the stream entry's id is "<replay id>-0" (so every node reads the same
 * ids), the stream keeps at most `keep` entries and, with an age limit,
 * loses up to 16 expired ones per append (reads skip older ones anyway),
 * and the PUBLISH carries the id. One script, so no node ever sees a
 * publish whose entry is not in the stream yet, and ids follow the order
 * in which every subscriber receives them.
 * The channel joins the set of channels with history (wildcard replays).
 * KEYS: counter, stream, channel, the set. ARGV: header, JSON, time, keep,
 * oldest time kept ("" for none), the Bayeux channel. */
static const char APPEND_LUA[] =
        "local id = redis.call('INCR', KEYS[1])\n"
        "local sid = string.format('%d-0', id)\n"
        "if tonumber(ARGV[4]) > 0 then\n"
        "  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], sid, 't', ARGV[3], 'd', ARGV[2])\n"
        "else\n"
        "  redis.call('XADD', KEYS[2], sid, 't', ARGV[3], 'd', ARGV[2])\n"
        "end\n"
        "if ARGV[5] ~= '' then\n"
        "  local min, cut = tonumber(ARGV[5]), nil\n"
        "  for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 16)) do\n"
        "    if tonumber(e[2][2]) < min then cut = e[1] else break end\n"
        "  end\n"
        "  if cut then\n"
        "    local n = tonumber(string.match(cut, '^(%d+)'))\n"
        "    redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d-0', n + 1))\n"
        "  end\n"
        "end\n"
        "redis.call('SADD', KEYS[4], ARGV[6])\n"
        "redis.call('PUBLISH', KEYS[3], ARGV[1] .. string.format(' r%d', id) .. '\\n' .. ARGV[2])\n"
        "return id\n";

/* A replay: for the channel, or each channel with history that the wildcard
 * matches (from the set; * is one segment, ** any), the counter and the
 * entries after the channel's id (named ones their own, the others the
 * default; all when the id is beyond the counter: a history that was lost),
 * at most ARGV[3] per channel; and the cut published where the node's Redis
 * subscription receives it, in the same step: what the node receives before
 * the cut is in the answer (or older), what comes after is not.
 * KEYS: the set, the cut's channel. ARGV: prefix, pattern, limit, cut,
 * default id ("" for none), then channel, id pairs. Answer: {{channel,
 * newest, entries}, ...}. */
static const char REPLAY_LUA[] =
        "local prefix, pat, limit = ARGV[1], ARGV[2], ARGV[3]\n"
        "local named = {}\n"
        "for i = 6, #ARGV, 2 do named[ARGV[i]] = tonumber(ARGV[i + 1]) end\n"
        "local chans, base\n"
        "local deep = string.sub(pat, -3) == '/**'\n"
        "if string.sub(pat, -1) == '*' then\n"
        "  base = string.sub(pat, 1, #pat - (deep and 2 or 1))\n"
        "  chans = redis.call('SMEMBERS', KEYS[1])\n"
        "else\n"
        "  chans = {pat}\n"
        "end\n"
        "local out = {}\n"
        "for _, ch in ipairs(chans) do\n"
        "  local ok = base == nil or (#ch > #base and string.sub(ch, 1, #base) == base and\n"
        "    (deep or not string.find(ch, '/', #base + 1, true)))\n"
        "  local after = named[ch] or tonumber(ARGV[5])\n"
        "  if ok and after then\n"
        "    local newest = tonumber(redis.call('GET', prefix .. ':histseq:' .. ch) or '0')\n"
        "    local entries = {}\n"
        "    if after ~= newest then\n"
        "      local from = '-'\n"
        "      if after < newest then from = string.format('%d-0', after + 1) end\n"
        "      entries = redis.call('XRANGE', prefix .. ':history:' .. ch, from, '+', 'COUNT', limit)\n"
        "    end\n"
        "    out[#out + 1] = {ch, newest, entries}\n"
        "  end\n"
        "end\n"
        "redis.call('PUBLISH', KEYS[2], ARGV[4])\n"
        "return out\n";

/* Writes "<prefix>:<what><channel>" at out; returns its length. */
static size_t history_key(const rbus *b, const char *what, const char *ch, size_t chlen,
                          char *out)
{
	size_t pl = strlen(b->prefix), wl = strlen(what);
	memcpy(out, b->prefix, pl);
	out[pl] = ':';
	memcpy(out + pl + 1, what, wl);
	memcpy(out + pl + 1 + wl, ch, chlen);
	out[pl + 1 + wl + chlen] = '\0';
	return pl + 1 + wl + chlen;
}

#define HKEY_MAX (BX_REDIS_PREFIX_MAX + 16 + BX_CHANNEL_MAX_LEN)

/* An append's header argument, without its '\n' (the script adds " r<id>\n"). */
static void fill_append(rbus *b, pubmsg *p, uint64_t seq)
{
	size_t hl = bx_wire_header((char *)p->argv[7], b->origin, seq);
	p->lens[7] = hl ? hl - 1 : 0;
}

static int st_append(void *self, bx_store_rec *recs, size_t n, bx_store_done_fn done, void *arg)
{
	rbus *b = self;
	if (n != 1 || recs[0].chlen > BX_CHANNEL_MAX_LEN)
		return -BX_EINVAL; /* the core appends one at a time */
	if (!atomic_load(&b->up))
		return -BX_ESTATE;
	const bx_store_rec *r = &recs[0];
	pubmsg *p = malloc(sizeof *p + 4 * HKEY_MAX + BX_WIRE_HEADER_MAX + 3 * 24 + r->len);
	if (!p)
		return -BX_ENOMEM;
	memset(p, 0, sizeof *p);
	char *at = (char *)(p + 1);
	p->bus = b;
	p->done = done;
	p->arg = arg;
	/* EVAL script 4 counter stream channel set header json time keep oldest channel */
	p->argc = 13;
	p->argv[0] = "EVAL";
	p->argv[1] = APPEND_LUA;
	p->argv[2] = "4";
	const char *what[4] = {"histseq:", "history:", "", "histchannels"};
	for (int k = 0; k < 4; k++) {
		size_t cl = k == 3 ? 0 : r->chlen;
		p->lens[3 + k] = history_key(b, what[k], r->channel, cl, at);
		p->argv[3 + k] = at;
		at += p->lens[3 + k] + 1;
	}
	p->argv[7] = at; /* the header, without its '\n' (the script adds " r<id>\n") */
	at += BX_WIRE_HEADER_MAX;
	memcpy(at, r->json, r->len);
	p->argv[8] = at;
	p->lens[8] = r->len;
	at += r->len;
	char *nums = at;
	p->lens[9] = (size_t)snprintf(nums, 24, "%lld", (long long)r->time_ms);
	p->lens[10] = (size_t)snprintf(nums + 24, 24, "%llu", (unsigned long long)r->keep);
	p->lens[11] = r->min_time_ms == INT64_MIN
	                      ? 0
	                      : (size_t)snprintf(nums + 48, 24, "%lld", (long long)r->min_time_ms);
	p->argv[9] = nums;
	p->argv[10] = nums + 24;
	p->argv[11] = nums + 48;
	p->argv[12] = p->argv[5] + p->lens[5] - r->chlen; /* the channel: the end of its key */
	p->lens[12] = r->chlen;
	for (int k = 0; k < 3; k++)
		p->lens[k] = strlen(p->argv[k]);
	return enqueue(b, p, fill_append);
}

static void job_free(rjob *j)
{
	for (size_t i = 0; i < j->nnamed; i++)
		free((void *)j->named[i].channel);
	free(j->named);
	for (size_t i = 0; i < j->nchans; i++) {
		for (size_t k = 0; k < j->chans[i].n; k++)
			free((void *)j->chans[i].recs[k].json);
		free((void *)j->chans[i].recs);
		free((void *)j->chans[i].channel);
	}
	free(j->chans);
	free(j->channel);
	free(j);
}

static int st_replay(void *self, const bx_store_replay_req *req, bx_store_replay_fn fn, void *arg)
{
	rbus *b = self;
	char key[KEY_MAX];
	bool pat;
	size_t klen = translate(b, req->pattern, req->plen, key, &pat);
	if (!klen)
		return -BX_ECHANNEL;
	if (!atomic_load(&b->up)) {
		fn(arg, -BX_ESTATE, NULL, 0);
		return 0;
	}
	rjob *j = calloc(1, sizeof *j);
	if (!j)
		return -BX_ENOMEM;
	memcpy(j->key, key, klen + 1);
	j->klen = klen;
	j->pattern = pat;
	j->channel = malloc(req->plen + 1);
	j->named = req->nnamed ? calloc(req->nnamed, sizeof *j->named) : NULL;
	if (!j->channel || (req->nnamed && !j->named)) {
		job_free(j);
		return -BX_ENOMEM;
	}
	memcpy(j->channel, req->pattern, req->plen);
	j->channel[req->plen] = '\0';
	j->chlen = req->plen;
	for (size_t i = 0; i < req->nnamed; i++) {
		char *c = malloc(req->named[i].chlen + 1);
		if (!c) {
			job_free(j);
			return -BX_ENOMEM;
		}
		memcpy(c, req->named[i].channel, req->named[i].chlen);
		c[req->named[i].chlen] = '\0';
		j->named[j->nnamed++] = (bx_store_after){.channel = c,
		                                          .chlen = req->named[i].chlen,
		                                          .after = req->named[i].after};
	}
	j->has_after = req->has_after;
	j->after = req->after;
	j->limit = req->limit ? req->limit : 1000000;
	j->fn = fn;
	j->arg = arg;
	j->deadline = now_ms() + READY_TIMEOUT_MS;
	/* Hold the subscription's interest (as a subscriber would) until done. */
	int rc = op_interest(b, j->channel, j->chlen, true, NULL, NULL);
	if (rc != 0) {
		job_free(j);
		return rc;
	}
	pthread_mutex_lock(&b->lock);
	j->next = b->jobs;
	b->jobs = j;
	pthread_mutex_unlock(&b->lock);
	kick(b);
	return 0;
}

/* The synchronous reads are not served: replay through st_replay. */
static int st_read_after(void *self, const char *channel, size_t chlen, uint64_t after,
                         size_t limit, bx_store_visit_fn visit, void *arg)
{
	(void)self, (void)channel, (void)chlen, (void)after, (void)limit, (void)visit, (void)arg;
	return -BX_ESTATE;
}

static int st_channels(void *self, bx_store_channel_fn fn, void *arg)
{
	(void)self, (void)fn, (void)arg;
	return -BX_ESTATE;
}

static int st_trim(void *self, const char *channel, size_t chlen, uint64_t keep,
                   int64_t min_time_ms)
{
	(void)self, (void)channel, (void)chlen, (void)keep, (void)min_time_ms;
	return 0; /* every append trims */
}

static int st_bounds(void *self, const char *channel, size_t chlen, uint64_t *oldest,
                     uint64_t *newest)
{
	(void)self, (void)channel, (void)chlen;
	*oldest = *newest = 0;
	return -BX_ESTATE;
}

/* The bus owns the connections: closing the store leaves them to op_stop,
 * which fails what is still outstanding. */
static void st_close(void *self)
{
	(void)self;
}

static const bx_store_ops redis_store_ops = {
        .append = st_append,
        .read_after = st_read_after,
        .channels = st_channels,
        .trim = st_trim,
        .bounds = st_bounds,
        .close = st_close,
        .shared = true,
        .replay = st_replay,
};

void bx_redis_store(bx_bus *bus, bx_store *out)
{
	out->ops = &redis_store_ops;
	out->self = bus->self;
}

/* Takes j off the job list (loop thread). */
static void job_unlink(rbus *b, rjob *j)
{
	pthread_mutex_lock(&b->lock);
	for (rjob **pp = &b->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	pthread_mutex_unlock(&b->lock);
}

static void deliver(rbus *b, const char *rch, size_t rlen, const char *payload, size_t plen);

/* Delivers what was held while a replay waited for its answer, until the
 * next such wait (loop thread). */
static void release_held(rbus *b)
{
	while (b->held && !b->paused) {
		later_msg *m = b->held;
		b->held = m->next;
		if (!b->held)
			b->held_tail = &b->held;
		deliver(b, m->data, m->clen, m->data + m->clen, m->plen);
		free(m);
	}
}

/* A job is done (err 0: answer and cut both came) or failed: it is off the
 * list (or never was). Calls its fn, lets go of the interest (loop thread,
 * no lock held). */
static void job_finish(rbus *b, rjob *j, int err)
{
	if (err)
		j->fn(j->arg, err, NULL, 0);
	else
		j->fn(j->arg, 0, j->chans, j->nchans);
	op_interest(b, j->channel, j->chlen, false, NULL, NULL);
	if (b->paused == j) {
		b->paused = NULL;
		release_held(b);
	}
	job_free(j);
}

/* Copies one channel's part of the replay answer: {channel, newest,
 * {{"<id>-0", {"t", time, "d", json}}, ...}}. False when malformed. */
static bool copy_channel(const redisReply *c, bx_store_replayed *out)
{
	if (c->type != REDIS_REPLY_ARRAY || c->elements != 3 || !is_str(c->element[0]) ||
	    c->element[1]->type != REDIS_REPLY_INTEGER || c->element[2]->type != REDIS_REPLY_ARRAY)
		return false;
	char *name = malloc(c->element[0]->len + 1);
	if (!name)
		return false;
	memcpy(name, c->element[0]->str, c->element[0]->len);
	name[c->element[0]->len] = '\0';
	out->channel = name;
	out->chlen = c->element[0]->len;
	out->newest = c->element[1]->integer > 0 ? (uint64_t)c->element[1]->integer : 0;
	const redisReply *es = c->element[2];
	bx_store_rec *recs = calloc(es->elements ? es->elements : 1, sizeof *recs);
	if (!recs)
		return false;
	out->recs = recs;
	for (size_t i = 0; i < es->elements; i++) {
		const redisReply *e = es->element[i];
		uint64_t id;
		int64_t t = 0;
		const redisReply *data = NULL;
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !is_str(e->element[0]) ||
		    bx_wire_stream_id(e->element[0]->str, e->element[0]->len, &id) != 0 ||
		    e->element[1]->type != REDIS_REPLY_ARRAY)
			continue;
		const redisReply *f = e->element[1];
		for (size_t k = 0; k + 1 < f->elements; k += 2) {
			if (!is_str(f->element[k]) || !is_str(f->element[k + 1]))
				continue;
			if (strcmp(f->element[k]->str, "t") == 0)
				bx_wire_number(f->element[k + 1]->str, f->element[k + 1]->len, &t);
			else if (strcmp(f->element[k]->str, "d") == 0)
				data = f->element[k + 1];
		}
		if (!data || !data->len)
			continue;
		char *json = malloc(data->len);
		if (!json)
			return false;
		memcpy(json, data->str, data->len);
		recs[out->n++] = (bx_store_rec){.channel = out->channel,
		                                 .chlen = out->chlen,
		                                 .json = json,
		                                 .len = data->len,
		                                 .time_ms = t,
		                                 .id = id};
	}
	return true;
}

/* The replay script's answer. */
static void replay_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	rjob *j = priv;
	redisReply *r = reply;
	rbus *b = ac->data ? ((rconn *)ac->data)->bus : NULL;
	if (!b)
		return;
	if (b->inflight)
		b->inflight--;
	bool ok = r && r->type == REDIS_REPLY_ARRAY;
	if (ok && r->elements) {
		j->chans = calloc(r->elements, sizeof *j->chans);
		ok = j->chans != NULL;
		for (size_t i = 0; ok && i < r->elements; i++) {
			ok = copy_channel(r->element[i], &j->chans[i]);
			j->nchans = i + 1; /* (what copy_channel filled in is freed with the job) */
		}
	}
	if (!ok) {
		if (r && r->type == REDIS_REPLY_ERROR)
			bx_warn("redis: a history replay failed: %s", r->str);
		job_unlink(b, j);
		job_finish(b, j, -BX_ESTATE);
		return;
	}
	j->got_reply = true;
	if (j->got_cut) {
		job_unlink(b, j);
		job_finish(b, j, 0);
	} else {
		j->deadline = now_ms() + READY_TIMEOUT_MS; /* for the cut */
	}
}

/* Our own cut came back on the subscriber connection (loop thread). */
static void cut_arrived(rbus *b, uint64_t token)
{
	rjob *j = NULL;
	pthread_mutex_lock(&b->lock);
	for (rjob *x = b->jobs; x; x = x->next)
		if (x->sent && x->token == token) {
			j = x;
			break;
		}
	pthread_mutex_unlock(&b->lock);
	if (!j || j->got_cut)
		return; /* a second copy (two matching subscriptions), or failed */
	j->got_cut = true;
	if (j->got_reply) {
		job_unlink(b, j);
		job_finish(b, j, 0);
	} else {
		b->paused = j; /* what comes next is after the cut: hold it */
	}
}

/* Where a job's cut is published: its channel's Redis channel, or for a
 * pattern ("<prefix>:/a/ *", escaped) the channel "<prefix>:/a/", which the
 * pattern matches and no Bayeux channel is. Returns its length. */
static size_t cut_channel(const rbus *b, const rjob *j, char *out)
{
	if (!j->pattern) {
		memcpy(out, j->key, j->klen + 1);
		return j->klen;
	}
	size_t base = j->chlen - (j->chlen >= 3 && j->channel[j->chlen - 2] == '*' ? 2 : 1);
	return history_key(b, "", j->channel, base, out);
}

/* Sends replays whose interest is confirmed; fails those that waited too
 * long (loop thread). */
static void flush_jobs(rbus *b, int64_t now, bool up)
{
	rjob *failed = NULL;
	pthread_mutex_lock(&b->lock);
	for (rjob **pp = &b->jobs; *pp;) {
		rjob *j = *pp;
		if (!j->sent) {
			entry *e = entry_find(b, j->key, j->klen, j->pattern);
			size_t argc = 10 + 2 * j->nnamed;
			const char **argv = up && b->pub.ac && e && e->active ? malloc(argc * sizeof *argv) : NULL;
			size_t *lens = argv ? malloc(argc * sizeof *lens) : NULL;
			char (*nums)[24] = lens ? malloc((j->nnamed + 2) * sizeof *nums) : NULL;
			if (nums) {
				char set[HKEY_MAX], cutch[HKEY_MAX], cut[BX_WIRE_HEADER_MAX];
				size_t setl = history_key(b, "histchannels", "", 0, set);
				size_t cutchl = cut_channel(b, j, cutch);
				j->token = ++b->tokens;
				size_t cutl = bx_wire_cut(cut, b->origin, j->token);
				snprintf(nums[0], 24, "%zu", j->limit);
				if (j->has_after)
					snprintf(nums[1], 24, "%llu", (unsigned long long)j->after);
				else
					nums[1][0] = '\0';
				const char *fixed[10] = {"EVAL", REPLAY_LUA, "2", set, cutch, b->prefix,
				                         j->channel, nums[0], cut, nums[1]};
				size_t flen[10] = {4, sizeof REPLAY_LUA - 1, 1, setl, cutchl, strlen(b->prefix),
				                   j->chlen, strlen(nums[0]), cutl, strlen(nums[1])};
				for (size_t k = 0; k < 10; k++) {
					argv[k] = fixed[k];
					lens[k] = flen[k];
				}
				for (size_t i = 0; i < j->nnamed; i++) {
					snprintf(nums[2 + i], 24, "%llu", (unsigned long long)j->named[i].after);
					argv[10 + 2 * i] = j->named[i].channel;
					lens[10 + 2 * i] = j->named[i].chlen;
					argv[11 + 2 * i] = nums[2 + i];
					lens[11 + 2 * i] = strlen(nums[2 + i]);
				}
				int rc = redisAsyncCommandArgv(b->pub.ac, replay_cb, j, (int)argc, argv, lens);
				free(nums);
				free(lens);
				free(argv);
				if (rc == REDIS_OK) {
					j->sent = true;
					b->inflight++;
					pp = &j->next;
					continue;
				}
			} else {
				free(lens);
				free(argv);
			}
		}
		/* Not sent in time, or answered but its cut is late. */
		if ((!j->sent || j->got_reply) && now >= j->deadline) {
			*pp = j->next;
			j->next = failed;
			failed = j;
			continue;
		}
		pp = &j->next;
	}
	pthread_mutex_unlock(&b->lock);
	if (failed)
		bx_warn("redis: a history replay was not answered within %d ms", READY_TIMEOUT_MS);
	while (failed) {
		rjob *j = failed;
		failed = j->next;
		job_finish(b, j, -BX_ESTATE);
	}
}

/* Fails every replay not sent (the connections are gone: sent ones were
 * failed by their callbacks). */
static void fail_jobs(rbus *b)
{
	pthread_mutex_lock(&b->lock);
	rjob *all = b->jobs;
	b->jobs = NULL;
	pthread_mutex_unlock(&b->lock);
	while (all) {
		rjob *j = all;
		all = j->next;
		job_finish(b, j, -BX_ESTATE);
	}
	for (later_msg *m = b->held, *next; m; m = next) {
		next = m->next;
		free(m);
	}
	b->held = NULL;
	b->held_tail = &b->held;
	b->paused = NULL;
}

/*---- Our hiredis adapter: epoll on the loop thread ----------------------------*/

static void conn_update(rconn *c)
{
	if (!c->ac)
		return;
	struct epoll_event ev = {.events = (c->reading ? EPOLLIN : 0) | (c->writing ? EPOLLOUT : 0),
	                         .data.ptr = c};
	if (!c->registered) {
		if (epoll_ctl(c->bus->epfd, EPOLL_CTL_ADD, c->fd, &ev) == 0)
			c->registered = true;
	} else {
		epoll_ctl(c->bus->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	}
}

/* hiredis turns reading or writing on or off: flag is c->reading or
 * c->writing. */
static void ev_set(rconn *c, bool *flag, bool on)
{
	if (*flag != on) {
		*flag = on;
		conn_update(c);
	}
}

static void ev_add_read(void *p)
{
	ev_set(p, &((rconn *)p)->reading, true);
}

static void ev_del_read(void *p)
{
	ev_set(p, &((rconn *)p)->reading, false);
}

static void ev_add_write(void *p)
{
	ev_set(p, &((rconn *)p)->writing, true);
}

static void ev_del_write(void *p)
{
	ev_set(p, &((rconn *)p)->writing, false);
}

/* hiredis is done with the context (freed right after). */
static void ev_cleanup(void *p)
{
	rconn *c = p;
	if (c->registered)
		epoll_ctl(c->bus->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->registered = c->reading = c->writing = false;
	c->ac = NULL;
	c->connected = false;
}

/*---- Connections -----------------------------------------------------------------*/

static void went_down(rbus *b, const char *why);

static void on_connect(const redisAsyncContext *ac, int status);
static void on_disconnect(const redisAsyncContext *ac, int status);

static int conn_open(rbus *b, rconn *c)
{
	redisAsyncContext *ac = b->addr.path[0] ? redisAsyncConnectUnix(b->addr.path)
	                                        : redisAsyncConnect(b->addr.host, (int)b->addr.port);
	if (!ac)
		return -1;
	if (ac->err) {
		bx_debug("redis: connect: %s", ac->errstr);
		redisAsyncFree(ac);
		return -1;
	}
	c->bus = b;
	c->ac = ac;
	c->fd = ac->c.fd;
	c->reading = c->writing = c->registered = c->connected = false;
	ac->data = c;
	ac->ev.data = c;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	ev_add_write(c); /* the connect completes when the socket is writable */
	return 0;
}

/* Closes c if open (its callbacks run with NULL replies). */
static void conn_close(rconn *c)
{
	if (c->ac) {
		redisAsyncContext *ac = c->ac;
		ac->onDisconnect = NULL; /* we know: no went_down() for this one */
		redisAsyncFree(ac);      /* calls ev_cleanup, pending callbacks get NULL */
		c->ac = NULL;
	}
	c->connected = false;
}

static void sub_cb(redisAsyncContext *ac, void *r, void *priv);

/* Sends (P)SUBSCRIBE or (P)UNSUBSCRIBE for e; loop thread, lock held. */
static void send_sub(rbus *b, entry *e, bool on)
{
	const char *cmd = on ? (e->pattern ? "PSUBSCRIBE" : "SUBSCRIBE")
	                     : (e->pattern ? "PUNSUBSCRIBE" : "UNSUBSCRIBE");
	const char *argv[2] = {cmd, e->key};
	size_t lens[2] = {strlen(cmd), e->klen};
	if (redisAsyncCommandArgv(b->sub.ac, sub_cb, b, 2, argv, lens) != REDIS_OK) {
		bx_warn("redis: %s %s could not be sent", cmd, e->key);
		return;
	}
	bx_debug("redis: %s %s", cmd, e->key);
	if (on) {
		e->sent = true;
		e->unconfirmed++;
		atomic_fetch_add(&b->m_subscriptions, 1);
	} else {
		e->sent = false;
		e->active = false;
		atomic_fetch_sub(&b->m_subscriptions, 1);
	}
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	rconn *c = ac->data;
	rbus *b = c->bus;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this returns. */
		c->ac = NULL;
		c->connected = false;
		went_down(b, ac->errstr);
		return;
	}
	c->connected = true;
	if (!b->pub.connected || !b->sub.connected)
		return;
	/* Both up: select the database, subscribe everything that has a count. */
	if (b->addr.db)
		redisAsyncCommand(b->pub.ac, NULL, NULL, "SELECT %u", b->addr.db);
	b->inflight = 0;
	b->backoff = BACKOFF_MIN_MS;
	pthread_mutex_lock(&b->lock);
	size_t n = 0;
	for (size_t i = 0; i < b->nbuckets; i++)
		for (entry *e = b->buckets[i]; e; e = e->hnext) {
			e->sent = false;
			e->active = false;
			e->unconfirmed = 0;
			mark_dirty(b, e);
			n++;
		}
	atomic_store(&b->up, true);
	atomic_store(&b->m_subscriptions, 0);
	if (b->ever_up)
		atomic_fetch_add(&b->m_reconnects, 1);
	pthread_mutex_unlock(&b->lock);
	if (b->down_logged || !b->ever_up)
		bx_info("redis: connected to %s%s%u as %s (%zu subscriptions to restore)",
		        b->addr.path[0] ? b->addr.path : b->addr.host, b->addr.path[0] ? "" : ":",
		        b->addr.path[0] ? 0 : b->addr.port, b->origin, n);
	b->down_logged = false;
	b->ever_up = true;
	kick(b);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	rconn *c = ac->data;
	(void)status;
	c->ac = NULL; /* hiredis frees it after this returns */
	c->connected = false;
	if (!c->bus->stop)
		went_down(c->bus, ac->errstr[0] ? ac->errstr : "connection closed");
}

/* A connection failed: close the other, fail the waiters, retry later. */
static void went_down(rbus *b, const char *why)
{
	bool was_up = atomic_exchange(&b->up, false);
	atomic_store(&b->m_subscriptions, 0);
	if (!b->down_logged) {
		bx_warn("redis: %s: %s; local delivery continues, retrying", was_up ? "lost" : "down",
		        why ? why : "?");
		b->down_logged = true;
	}
	conn_close(&b->pub);
	conn_close(&b->sub);
	waiter *all = NULL;
	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < b->nbuckets; i++)
		for (entry *e = b->buckets[i]; e; e = e->hnext) {
			e->sent = e->active = false;
			e->unconfirmed = 0;
			take_waiters(b, e, &all);
		}
	pubmsg *q = take_queue_locked(b);
	pthread_mutex_unlock(&b->lock);
	uint64_t n = drop_queued(q);
	b->dropped += n;
	atomic_fetch_add(&b->m_dropped, n);
	run_waiters(all, -BX_ESTATE);
	fail_jobs(b);
	b->retry_at = now_ms() + b->backoff;
	b->backoff = b->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b->backoff * 2;
}

/*---- Inbound ---------------------------------------------------------------------*/

/* True when (origin, seq) was delivered already (a second matching
 * subscription, or our own echo); else records it. */
static bool seen_before(rbus *b, const bx_wire_msg *w)
{
	if (w->olen == b->olen && memcmp(w->origin, b->origin, w->olen) == 0)
		return true;
	size_t h = bx_hash(w->origin, w->olen) & (ORIGINS_MAX - 1);
	for (size_t i = 0; i < ORIGINS_MAX; i++, h = (h + 1) & (ORIGINS_MAX - 1)) {
		origin_seen *o = &b->seen[h];
		if (!o->used) {
			if (b->nseen + 1 > ORIGINS_MAX / 2) { /* full: forget all */
				memset(b->seen, 0, ORIGINS_MAX * sizeof *b->seen);
				b->nseen = 0;
				return seen_before(b, w);
			}
			memcpy(o->origin, w->origin, w->olen);
			o->origin[w->olen] = '\0';
			o->used = true;
			o->seq = w->seq;
			b->nseen++;
			return false;
		}
		if (strlen(o->origin) == w->olen && memcmp(o->origin, w->origin, w->olen) == 0) {
			if (w->seq <= o->seq)
				return true;
			o->seq = w->seq;
			return false;
		}
	}
	return false;
}

static void confirm(rbus *b, const char *key, size_t klen, bool pattern)
{
	waiter *w = NULL;
	pthread_mutex_lock(&b->lock);
	entry *e = entry_find(b, key, klen, pattern);
	if (e && e->unconfirmed > 0 && --e->unconfirmed == 0) {
		if (e->sent) {
			e->active = true;
			take_waiters(b, e, &w);
		} else if (e->count == 0) {
			mark_dirty(b, e); /* unsubscribed meanwhile: flush frees it */
		}
	}
	pthread_mutex_unlock(&b->lock);
	run_waiters(w, 0);
}

static void deliver(rbus *b, const char *rch, size_t rlen, const char *payload, size_t plen)
{
	size_t pl = strlen(b->prefix);
	bx_wire_msg w;
	if (rlen <= pl + 1 || memcmp(rch, b->prefix, pl) != 0 || rch[pl] != ':' ||
	    bx_wire_parse(payload, plen, &w) != 0) {
		bx_debug("redis: ignored a message on %.*s that is not a bayeuxd one", (int)rlen, rch);
		return;
	}
	bool own = w.olen == b->olen && memcmp(w.origin, b->origin, w.olen) == 0;
	if (w.cut) { /* a replay's cut: only its origin cares */
		if (own)
			cut_arrived(b, w.seq);
		return;
	}
	if (own && w.replay_id) {
		/* Our own retained publish: delivered here too, from Redis, so
		 * that every node delivers a channel in replay-id order. Ours
		 * arrive in the order they were numbered. */
		if (w.seq <= b->own_seq) {
			atomic_fetch_add(&b->m_duplicates, 1);
			return;
		}
		b->own_seq = w.seq;
	} else if (seen_before(b, &w)) {
		if (!own)
			atomic_fetch_add(&b->m_duplicates, 1);
		return;
	} else {
		atomic_fetch_add(&b->m_received, 1);
	}
	bx_bus_deliver(b->srv, rch + pl + 1, rlen - pl - 1, w.json, w.jlen, w.replay_id);
}

/* A message from the subscriber connection: delivered, or held while a
 * replay's cut came before its answer (the replay's records go first). */
static void arrived(rbus *b, const char *rch, size_t rlen, const char *payload, size_t plen)
{
	if (!b->paused) {
		deliver(b, rch, rlen, payload, plen);
		return;
	}
	later_msg *m = malloc(sizeof *m + rlen + plen);
	if (!m) {
		bx_warn("redis: out of memory holding a message during a replay: dropped");
		return;
	}
	m->next = NULL;
	m->clen = rlen;
	m->plen = plen;
	memcpy(m->data, rch, rlen);
	memcpy(m->data + rlen, payload, plen);
	*b->held_tail = m;
	b->held_tail = &m->next;
}

static bool is_str(const redisReply *r)
{
	return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static void sub_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	rbus *b = priv;
	redisReply *r = reply;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_str(r->element[0]))
		return;
	const char *kind = r->element[0]->str;
	if (strcmp(kind, "message") == 0 && is_str(r->element[1]) && is_str(r->element[2]))
		arrived(b, r->element[1]->str, r->element[1]->len, r->element[2]->str,
		        r->element[2]->len);
	else if (strcmp(kind, "pmessage") == 0 && r->elements >= 4 && is_str(r->element[2]) &&
	         is_str(r->element[3]))
		arrived(b, r->element[2]->str, r->element[2]->len, r->element[3]->str,
		        r->element[3]->len);
	else if (strcmp(kind, "subscribe") == 0 && is_str(r->element[1]))
		confirm(b, r->element[1]->str, r->element[1]->len, false);
	else if (strcmp(kind, "psubscribe") == 0 && is_str(r->element[1]))
		confirm(b, r->element[1]->str, r->element[1]->len, true);
}

static void pub_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	rbus *b = priv;
	redisReply *r = reply;
	if (b->inflight)
		b->inflight--;
	if (r && r->type == REDIS_REPLY_ERROR)
		bx_warn("redis: PUBLISH failed: %s", r->str);
}

/* The append script's answer: the replay id. */
static void append_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	pubmsg *p = priv;
	rbus *b = p->bus;
	redisReply *r = reply;
	if (b->inflight)
		b->inflight--;
	if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
		p->done(p->arg, 0, (uint64_t)r->integer);
		free(p);
		return;
	}
	if (r && r->type == REDIS_REPLY_ERROR)
		bx_warn("redis: a history append failed: %s", r->str);
	append_failed(p);
}

/*---- The loop ---------------------------------------------------------------------*/

/* Sends what the HTTP threads queued and applies interest changes. */
static void flush(rbus *b)
{
	int64_t now = now_ms();
	waiter *failed = NULL;
	pthread_mutex_lock(&b->lock);
	pubmsg *q = take_queue_locked(b);
	bool up = atomic_load(&b->up);
	entry *d = b->dirty, *keep = NULL;
	b->dirty = NULL;
	while (d) {
		entry *e = d;
		d = d->dnext;
		e->dirty = false;
		if (!up)
			continue; /* on_connect marks everything again */
		if (e->count > 0 && !e->sent) {
			send_sub(b, e, true);
		} else if (e->count == 0 && e->sent) {
			if (now >= e->linger_until)
				send_sub(b, e, false);
			else {
				e->dnext = keep; /* look again next tick */
				keep = e;
				e->dirty = true;
				continue;
			}
		}
		if (e->count == 0 && !e->sent && e->unconfirmed == 0 && !e->waiters)
			entry_unlink_free(b, e);
	}
	b->dirty = keep;
	/* Waiters that waited too long. */
	for (size_t i = 0; b->nwaiters && i < b->nbuckets; i++)
		for (entry *e = b->buckets[i]; e; e = e->hnext)
			for (waiter **pp = &e->waiters; *pp;) {
				waiter *w = *pp;
				if (w->deadline <= now) {
					*pp = w->next;
					b->nwaiters--;
					w->next = failed;
					failed = w;
				} else {
					pp = &w->next;
				}
			}
	pthread_mutex_unlock(&b->lock);
	if (failed)
		bx_warn("redis: a subscription was not confirmed within %d ms", READY_TIMEOUT_MS);
	run_waiters(failed, -BX_ESTATE);

	for (pubmsg *p = q, *next; p; p = next) {
		next = p->next;
		if (p->done) { /* a history append: its done hears the outcome */
			if (up && b->pub.ac && b->inflight < MAX_INFLIGHT &&
			    redisAsyncCommandArgv(b->pub.ac, append_cb, p, p->argc, p->argv, p->lens) ==
			            REDIS_OK) {
				b->inflight++;
				atomic_fetch_add(&b->m_sent, 1);
			} else {
				append_failed(p);
			}
			continue;
		}
		if (up && b->pub.ac && b->inflight < MAX_INFLIGHT) {
			const char *argv[3] = {"PUBLISH", p->key, p->payload};
			size_t lens[3] = {7, p->klen, p->plen};
			if (redisAsyncCommandArgv(b->pub.ac, pub_cb, b, 3, argv, lens) == REDIS_OK) {
				b->inflight++;
				atomic_fetch_add(&b->m_sent, 1);
			} else {
				b->dropped++;
				atomic_fetch_add(&b->m_dropped, 1);
			}
		} else {
			b->dropped++;
			atomic_fetch_add(&b->m_dropped, 1);
		}
		free(p);
	}
	flush_jobs(b, now, up);
}

static void *loop(void *arg)
{
	rbus *b = arg;
	b->backoff = BACKOFF_MIN_MS;
	b->retry_at = 0;
	struct epoll_event evs[8];
	for (;;) {
		pthread_mutex_lock(&b->lock);
		bool stop = b->stop;
		/* Idle (connected, nothing lingering or waiting): sleep until kicked. */
		bool timed = b->dirty || b->nwaiters || b->jobs || !atomic_load(&b->up);
		pthread_mutex_unlock(&b->lock);
		if (stop)
			break;
		if (!b->pub.ac && !b->sub.ac && now_ms() >= b->retry_at) {
			b->connect_at = now_ms();
			if (conn_open(b, &b->pub) != 0 || conn_open(b, &b->sub) != 0)
				went_down(b, "cannot connect");
		}
		int n = epoll_wait(b->epfd, evs, 8, timed ? TICK_MS : -1);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				uint64_t v;
				ssize_t r = read(b->evfd, &v, sizeof v);
				(void)r;
				atomic_store(&b->kicked, false);
				continue;
			}
			rconn *c = evs[i].data.ptr;
			/* A callback may have closed it (the other connection failed). */
			if (c->ac && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				redisAsyncHandleRead(c->ac);
			if (c->ac && (evs[i].events & EPOLLOUT))
				redisAsyncHandleWrite(c->ac);
		}
		if (b->pub.ac && b->sub.ac && (!b->pub.connected || !b->sub.connected) &&
		    now_ms() > b->connect_at + CONNECT_TIMEOUT_MS) {
			went_down(b, "connect timed out");
		}
		flush(b);
	}
	conn_close(&b->pub);
	conn_close(&b->sub);
	return NULL;
}

/*---- Life ----------------------------------------------------------------------------*/

static void op_stop(void *self)
{
	rbus *b = self;
	pthread_mutex_lock(&b->lock);
	bool was = b->stop;
	b->stop = true;
	pthread_mutex_unlock(&b->lock);
	if (was)
		return;
	atomic_store(&b->stopped, true);
	kick(b);
	if (b->thread_started)
		pthread_join(b->thread, NULL);
	atomic_store(&b->up, false);
	waiter *all = NULL;
	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < b->nbuckets; i++)
		for (entry *e = b->buckets[i]; e; e = e->hnext)
			take_waiters(b, e, &all);
	pthread_mutex_unlock(&b->lock);
	run_waiters(all, -BX_ESTATE);
	/* What the loop did not send: appends and replays hear it failed. */
	pthread_mutex_lock(&b->lock);
	pubmsg *q = take_queue_locked(b);
	pthread_mutex_unlock(&b->lock);
	drop_queued(q);
	fail_jobs(b);
	if (b->dropped)
		bx_info("redis: %llu publishes were not sent to other nodes (Redis down or slow)",
		        (unsigned long long)b->dropped);
}

static void op_close(void *self)
{
	rbus *b = self;
	op_stop(b);
	for (size_t i = 0; i < b->nbuckets; i++)
		for (entry *e = b->buckets[i], *next; e; e = next) {
			next = e->hnext;
			free(e->key);
			free(e);
		}
	free(b->buckets);
	for (pubmsg *p = b->qhead, *next; p; p = next) {
		next = p->next;
		free(p);
	}
	free(b->seen);
	if (b->epfd >= 0)
		close(b->epfd);
	if (b->evfd >= 0)
		close(b->evfd);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

/* /metrics: the bus's own figures (stats.h), read with no lock. */
static void redis_metrics(void *arg, bx_buf *o)
{
	rbus *b = arg;
	bx_prom_family(o, "bayeux_cluster_up", "gauge",
	               "1 while both Redis connections are established, else 0");
	bx_prom_sample(o, "bayeux_cluster_up", NULL, atomic_load(&b->up) ? 1 : 0);
	bx_prom_family(o, "bayeux_cluster_subscriptions", "gauge",
	               "Redis SUBSCRIBE and PSUBSCRIBE this node holds (channels and patterns with local subscribers)");
	int64_t subs = atomic_load(&b->m_subscriptions);
	bx_prom_sample(o, "bayeux_cluster_subscriptions", NULL, subs > 0 ? (uint64_t)subs : 0);
	bx_prom_family(o, "bayeux_cluster_published_total", "counter",
	               "local publishes sent to Redis (one PUBLISH each)");
	bx_prom_sample(o, "bayeux_cluster_published_total", NULL, atomic_load(&b->m_sent));
	bx_prom_family(o, "bayeux_cluster_publish_dropped_total", "counter",
	               "local publishes not sent to the other nodes (Redis down or too slow)");
	bx_prom_sample(o, "bayeux_cluster_publish_dropped_total", NULL, atomic_load(&b->m_dropped));
	bx_prom_family(o, "bayeux_cluster_received_total", "counter",
	               "messages from other nodes delivered to this node's subscribers");
	bx_prom_sample(o, "bayeux_cluster_received_total", NULL, atomic_load(&b->m_received));
	bx_prom_family(o, "bayeux_cluster_duplicates_total", "counter",
	               "copies of one message received through a second matching subscription, dropped");
	bx_prom_sample(o, "bayeux_cluster_duplicates_total", NULL, atomic_load(&b->m_duplicates));
	bx_prom_family(o, "bayeux_cluster_reconnects_total", "counter",
	               "times the connection to Redis was established again after a loss");
	bx_prom_sample(o, "bayeux_cluster_reconnects_total", NULL, atomic_load(&b->m_reconnects));
}

static const bx_bus_ops redis_ops = {
        .interest = op_interest,
        .ready = op_ready,
        .publish = op_publish,
        .healthy = op_healthy,
        .stop = op_stop,
        .close = op_close,
};

int bx_redis_opts_check(const bx_redis_opts *o, char *err, size_t errlen)
{
	bx_redis_addr a;
	if (bx_redis_url_parse(o->url, &a, err, errlen) != 0)
		return -1;
	if (o->prefix && !bx_wire_name_ok(o->prefix, BX_REDIS_PREFIX_MAX)) {
		snprintf(err, errlen,
		         "--redis-prefix must be 1 to %d characters of A-Z a-z 0-9 . _ -, got \"%s\"",
		         BX_REDIS_PREFIX_MAX, o->prefix);
		return -1;
	}
	if (o->node_id && !bx_wire_name_ok(o->node_id, BX_NODE_ID_MAX)) {
		snprintf(err, errlen,
		         "--node-id must be 1 to %d characters of A-Z a-z 0-9 . _ -, got \"%s\"",
		         BX_NODE_ID_MAX, o->node_id);
		return -1;
	}
	return 0;
}

int bx_redis_bus_new(struct bx_server *srv, const bx_redis_opts *o, bx_bus *out)
{
	char err[512];
	if (bx_redis_opts_check(o, err, sizeof err) != 0) {
		bx_error("%s", err);
		return -BX_EINVAL;
	}
	rbus *b = calloc(1, sizeof *b);
	if (!b)
		return -BX_ENOMEM;
	b->srv = srv;
	b->epfd = b->evfd = -1;
	pthread_mutex_init(&b->lock, NULL);
	bx_redis_url_parse(o->url, &b->addr, err, sizeof err);
	snprintf(b->prefix, sizeof b->prefix, "%s", o->prefix ? o->prefix : "bayeux");
	char node[BX_NODE_ID_MAX + 1];
	if (o->node_id) {
		snprintf(node, sizeof node, "%s", o->node_id);
	} else {
		char host[64] = "node";
		if (gethostname(host, sizeof host - 1) != 0)
			strcpy(host, "node");
		host[sizeof host - 1] = '\0';
		for (char *p = host; *p; p++) /* keep it a valid name */
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
				*p = '_';
		snprintf(node, sizeof node, "%.40s-%ld", host, (long)getpid());
	}
	unsigned char rnd[8];
	randombytes_buf(rnd, sizeof rnd);
	int ol = snprintf(b->origin, sizeof b->origin, "%s~", node);
	for (size_t i = 0; i < sizeof rnd && ol + 2 < (int)sizeof b->origin; i++)
		ol += snprintf(b->origin + ol, sizeof b->origin - (size_t)ol, "%02x", rnd[i]);
	b->olen = strlen(b->origin);
	b->nbuckets = 64;
	b->buckets = calloc(b->nbuckets, sizeof *b->buckets);
	b->seen = calloc(ORIGINS_MAX, sizeof *b->seen);
	b->held_tail = &b->held;
	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	b->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	if (!b->buckets || !b->seen || b->epfd < 0 || b->evfd < 0 ||
	    epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->evfd, &ev) != 0) {
		op_close(b);
		return -BX_ENOMEM;
	}
	if (pthread_create(&b->thread, NULL, loop, b) != 0) {
		op_close(b);
		return -BX_ENOMEM;
	}
	b->thread_started = true;
	if (bx_metrics_add_source(&srv->stats.m, redis_metrics, b) != 0)
		bx_warn("redis: no room for the bus's figures in /metrics");
	bx_info("redis: node %s, prefix %s, Redis at %s", node, b->prefix, o->url);
	out->ops = &redis_ops;
	out->self = b;
	return 0;
}
