/*
 * history.h — channel history and replay in the core (--retain, ext.replay).
 * What is kept is decided here (the --retain rules); how it is kept is the
 * engine's (bx_store, store.h). A publish on a retained channel is appended,
 * and delivered to live subscribers only once the engine says it is durable
 * (so an id a subscriber saw is never given again after a crash, and live
 * deliveries of a channel go out in replay-id order). A subscribe with a
 * replay id registers the subscription and reads the history under one lock
 * that the deliveries of retained messages also take, reading each channel
 * only up to the last id delivered live: what was delivered before is
 * replayed, what is delivered after arrives live; no gap, no duplicate.
 */
#ifndef BX_HISTORY_H
#define BX_HISTORY_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct bx_server;
struct bx_session;
struct bx_msg;

/* Most --retain rules. */
#define BX_RETAIN_MAX 64
/* Most records of one channel a --retain rule may keep. */
#define BX_RETAIN_COUNT_MAX 10000000ULL
/* Longest AGE: 366 days. */
#define BX_RETAIN_AGE_MAX (366LL * 86400 * 1000)

/* ext.replay values with a meaning of their own (Salesforce's). */
#define BX_REPLAY_ALL (-2) /* every retained message */
#define BX_REPLAY_NEW (-1) /* only new ones: no replay */

/* One --retain PATTERN=COUNT[,AGE]. */
typedef struct bx_retain_rule {
	char pattern[512 + 1]; /* a channel name or a wildcard pattern */
	size_t plen;
	uint64_t count; /* records kept per channel */
	int64_t age_ms; /* none kept older than this; 0: no age limit */
} bx_retain_rule;

/* Parses "PATTERN=COUNT[,AGE]" (len bytes, need not be NUL-terminated):
 * PATTERN a channel or wildcard pattern outside /meta and /service, COUNT
 * 1..10,000,000, AGE a number with a unit ms, s, m, h or d (at most 366d).
 * Returns 0, or -BX_EINVAL with a sentence in err. */
int bx_retain_parse(const char *text, size_t len, bx_retain_rule *out, char *err, size_t errlen);

/* True when channel name (no wildcard) is matched by pattern (a name, or one
 * ending in * or **). */
bool bx_channel_matches(const char *pattern, size_t plen, const char *name, size_t nlen);

/* Checks a subscribe's ext.replay (may be NULL: no replay): a JSON object
 * whose values are integers -2, -1 or 0..2^53. Returns NULL when it is
 * valid, else the key that is not (or "" when ext.replay is not an
 * object). */
const char *bx_replay_check(json_object *replay);
/* The replay value ext.replay gives pattern; BX_REPLAY_NEW when none. Call
 * bx_replay_check first. */
int64_t bx_replay_value(json_object *replay, const char *pattern, size_t plen);

typedef struct bx_hist_chan bx_hist_chan;

/* The server's history: the engine, the rules, and per channel the last
 * replay id delivered live. */
typedef struct bx_history {
	bx_store store;
	bx_retain_rule rules[BX_RETAIN_MAX];
	size_t nrules;
	pthread_mutex_t lock;   /* recursive: a synchronous engine calls done from
	                           inside append. Taken before the router's lock. */
	bx_hist_chan **buckets; /* under lock */
	size_t nbuckets, count;
	int64_t (*wall)(void); /* wall clock in ms (tests replace it) */
	bool closed;           /* under lock: the engine was closed (shutdown) */
	_Atomic unsigned long long appended, replayed, failed;
} bx_history;

/* Takes ownership of store (closed by bx_history_free). NULL on OOM. */
bx_history *bx_history_new(const bx_store *store, const bx_retain_rule *rules, size_t n);
/* Closes the engine: its writer finishes what was queued (their done
 * callbacks run); later publishes on retained channels fail and replays
 * find nothing. NULL is accepted. */
void bx_history_close(bx_history *h);
/* Closes (if not done yet) and frees. NULL is accepted. */
void bx_history_free(bx_history *h);

/* Appends history's families to /metrics (a bx_metrics_fn; arg: the
 * bx_history). */
struct bx_buf;
void bx_history_metrics(void *arg, struct bx_buf *out);

/* The rule that retains channel, or NULL. */
const bx_retain_rule *bx_history_rule(const bx_history *h, const char *channel, size_t len);

/* Called once the publish is durable and delivered (err 0) or failed. */
typedef void (*bx_history_done_fn)(void *arg, int err, uint64_t id);

/* Publishes m (the delivered JSON, without a replay id) on a retained
 * channel: appends it with the next replay id (added as ext.replayId) and,
 * once durable, delivers it to every subscriber, then calls done. *id is
 * the replay id given. Returns 0, or a negative BX_E* code (done not
 * called, nothing delivered). */
int bx_history_publish(struct bx_server *srv, const bx_retain_rule *rule, const char *channel,
                       size_t chlen, const struct bx_msg *m, bx_history_done_fn done, void *arg,
                       uint64_t *id);

/* A gap a replay skipped: the client asked for what came after `after`,
 * but the oldest retained (or the next live) message was `resumed`. */
typedef struct bx_replay_gap {
	char channel[512 + 1];
	uint64_t after, resumed;
} bx_replay_gap;

typedef struct bx_replay_result {
	size_t replayed;     /* messages queued */
	bx_replay_gap *gaps; /* malloc'd, ngaps of them; free() it */
	size_t ngaps;
} bx_replay_result;

/* Subscribes s to pattern and queues what history holds after the id that
 * replay (a checked ext.replay, or NULL) gives pattern (BX_REPLAY_ALL: all;
 * >= 0: after it) for every retained channel the pattern matches, in
 * replay-id order per channel, before any live message of those channels.
 * Under a wildcard, a channel that replay names itself uses its own id. At
 * most --max-queue messages are queued. Returns what bx_router_subscribe
 * returns; out->gaps lists what could not be replayed. */
int bx_history_subscribe(struct bx_server *srv, struct bx_session *s, const char *pattern,
                         size_t plen, json_object *replay, bx_replay_result *out);

/* Appends r's gaps to o as "channel":{"after":A,"resumedFrom":R} members
 * (comma-separated, after what o holds) and frees them. */
void bx_replay_gaps_write(struct bx_buf *o, bx_replay_result *r);

/* A retained message another node published, delivered here through the
 * bus (bus.h) with its replay id from the shared store: queued for every
 * subscriber of channel with ext.replayId. The caller checked that channel
 * is retained here (bx_history_rule). Returns 1 when delivered, 0 when
 * history is closed. */
size_t bx_history_bus_deliver(struct bx_server *srv, const char *channel, size_t chlen,
                              const char *json, size_t len, uint64_t id);

/* With a shared store (store.h: several nodes, one history), a subscription
 * with a replay value cannot be read here and now: it waits for the store's
 * cut. True when pattern's subscription is such a one (an exact retained
 * channel that replay gives a value, or a wildcard that replay gives a
 * value or whose channels it names). */
bool bx_history_defers(struct bx_server *srv, const char *pattern, size_t plen,
                       json_object *replay);
/* Called once a deferred subscription is made: rc is what
 * bx_history_subscribe would return, or 1 when the store could not be read
 * (nothing subscribed); r as bx_history_subscribe fills it (free r->gaps). */
typedef void (*bx_history_later_fn)(void *arg, int rc, bx_replay_result *r);
/* Starts one (bx_history_defers said so): s is subscribed to pattern at the
 * store's cut, with what came after the client's id queued first, and fn is
 * called (on the engine's thread). Returns 0 (fn will be called) or a
 * negative BX_E* code (fn will not). */
int bx_history_subscribe_later(struct bx_server *srv, struct bx_session *s, const char *pattern,
                               size_t plen, json_object *replay, bx_history_later_fn fn,
                               void *arg);

/* Reads up to limit (at most 10,000) messages of channel after `after` into
 * out as a JSON array of the delivered messages (each with ext.replayId),
 * oldest first. Returns 0, or -BX_ECHANNEL when the channel is not
 * retained, -BX_EREJECTED when the store is shared (read it with a replay
 * subscription), -BX_ESTATE when closing, -BX_ENOMEM. */
struct bx_buf;
int bx_history_read_json(struct bx_server *srv, const char *channel, size_t chlen, uint64_t after,
                         size_t limit, struct bx_buf *out);

/* The delivered JSON text of m with "replayId":id added to its ext (made
 * when missing) as a new message; NULL on OOM or when m is not an object. */
struct bx_msg *bx_msg_with_replay_id(const char *json, size_t len, uint64_t id);

#endif
