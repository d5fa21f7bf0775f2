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
} pubmsg;

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

static int op_publish(void *self, const char *channel, size_t chlen, const bx_msg *m)
{
	rbus *b = self;
	if (!atomic_load(&b->up))
		return -BX_ESTATE; /* counted by the loop as it finds out; local delivery is done */
	char hdr[BX_WIRE_HEADER_MAX];
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
	pthread_mutex_lock(&b->lock);
	if (b->stop) {
		pthread_mutex_unlock(&b->lock);
		free(p);
		return -BX_ESTATE;
	}
	size_t hl = bx_wire_header(hdr, b->origin, ++b->seq);
	memcpy(p->payload, hdr, hl);
	memcpy(p->payload + hl, m->data, m->len);
	p->plen = hl + m->len;
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

static bool op_healthy(void *self)
{
	rbus *b = self;
	return atomic_load(&b->up) && !atomic_load(&b->stopped);
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
	for (pubmsg *p = b->qhead, *next; p; p = next) {
		next = p->next;
		free(p);
		b->dropped++;
		atomic_fetch_add(&b->m_dropped, 1);
	}
	b->qhead = b->qtail = NULL;
	b->qlen = 0;
	pthread_mutex_unlock(&b->lock);
	run_waiters(all, -BX_ESTATE);
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
	if (seen_before(b, &w)) {
		if (w.olen != b->olen || memcmp(w.origin, b->origin, w.olen) != 0)
			atomic_fetch_add(&b->m_duplicates, 1);
		return;
	}
	atomic_fetch_add(&b->m_received, 1);
	bx_bus_deliver(b->srv, rch + pl + 1, rlen - pl - 1, w.json, w.jlen);
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
		deliver(b, r->element[1]->str, r->element[1]->len, r->element[2]->str,
		        r->element[2]->len);
	else if (strcmp(kind, "pmessage") == 0 && r->elements >= 4 && is_str(r->element[2]) &&
	         is_str(r->element[3]))
		deliver(b, r->element[2]->str, r->element[2]->len, r->element[3]->str,
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

/*---- The loop ---------------------------------------------------------------------*/

/* Sends what the HTTP threads queued and applies interest changes. */
static void flush(rbus *b)
{
	int64_t now = now_ms();
	waiter *failed = NULL;
	pthread_mutex_lock(&b->lock);
	pubmsg *q = b->qhead;
	b->qhead = b->qtail = NULL;
	b->qlen = 0;
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
		bool timed = b->dirty || b->nwaiters || !atomic_load(&b->up);
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
