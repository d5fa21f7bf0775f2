/*
 * store.h — the history-store interface the core owns (channel history and
 * replay). An engine (src/store/: memory ring, LMDB) implements bx_store_ops;
 * the core calls it through these pointers and never includes an engine's
 * header. The engine owns durability and replay-id assignment; the core owns
 * what is retained (--retain) and when records are read.
 */
#ifndef BX_STORE_H
#define BX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One retained message: its channel and its delivered JSON, serialized once. */
typedef struct bx_store_rec {
	const char *channel;
	size_t chlen;
	const char *json;
	size_t len;
	int64_t time_ms; /* wall clock (ms since the epoch), for age limits */
	uint64_t id;     /* the replay id: set by append, increasing per channel,
	                    never reused across restarts */
	/* Retention, applied by append in the same write (no second pass):
	 * after it the channel keeps at most `keep` records (0: no count limit)
	 * and none with time_ms below min_time_ms (INT64_MIN: no age limit). */
	uint64_t keep;
	int64_t min_time_ms;
} bx_store_rec;

/* Called once the records of one append are durable (err 0) or failed, with
 * the replay id of the first record (0 on failure). It may run on the
 * engine's own thread, or before append returns. */
typedef void (*bx_store_done_fn)(void *arg, int err, uint64_t id);
/* A shared store's replay (replay below). What to read: the channel, or
 * every channel a wildcard pattern matches, each after its own id: a
 * channel named in `named` after its id there, another after `after` when
 * has_after, else not at all. ALL ids are "after": 0 reads everything. */
typedef struct bx_store_after {
	const char *channel;
	size_t chlen;
	uint64_t after;
} bx_store_after;

typedef struct bx_store_replay_req {
	const char *pattern; /* a channel name, or /a/ * or /a/ ** */
	size_t plen;
	bool has_after;
	uint64_t after;
	const bx_store_after *named;
	size_t nnamed;
	size_t limit; /* most records per channel (0: no limit) */
} bx_store_replay_req;

/* What a replay read for one channel: its records after the asked id
 * (oldest first; all of them when the id is beyond newest, a history that
 * was lost), and newest, the last id the channel was ever given at the cut. */
typedef struct bx_store_replayed {
	const char *channel;
	size_t chlen;
	const bx_store_rec *recs;
	size_t n;
	uint64_t newest;
} bx_store_replayed;

/* Called once per replay, with one entry per channel read (none when the
 * pattern matched no channel with history); err < 0: no replay (the store
 * is unreachable), chans NULL. */
typedef void (*bx_store_replay_fn)(void *arg, int err, const bx_store_replayed *chans, size_t n);

/* Called for each record read; a non-zero return stops the read. */
typedef int (*bx_store_visit_fn)(void *arg, const bx_store_rec *rec);
/* Called for each channel that has history; a non-zero return stops. */
typedef int (*bx_store_channel_fn)(void *arg, const char *channel, size_t chlen);

typedef struct bx_store_ops {
	/* Appends n records, giving each the next replay id of its channel
	 * (recs[i].id is set before append returns by a local engine; a shared
	 * one learns it from the store and passes it to done), and calls done
	 * once they
	 * are durable, in the order the appends were made (so a caller that
	 * delivers in done delivers each channel in replay-id order). Returns 0
	 * or a negative BX_E* code (done not called). The engine copies what it
	 * keeps: recs may be freed once append returns. */
	int (*append)(void *self, bx_store_rec *recs, size_t n, bx_store_done_fn done, void *arg);
	/* Calls visit for each record of channel with an id above after, oldest
	 * first, at most limit of them (0: no limit). */
	int (*read_after)(void *self, const char *channel, size_t chlen, uint64_t after,
	                  size_t limit, bx_store_visit_fn visit, void *arg);
	/* Calls fn for each channel with history (wildcard replay). */
	int (*channels)(void *self, bx_store_channel_fn fn, void *arg);
	/* Keeps at most keep records of channel, none older than min_time_ms. */
	int (*trim)(void *self, const char *channel, size_t chlen, uint64_t keep,
	            int64_t min_time_ms);
	/* The oldest and newest replay ids kept for channel; both 0 when none.
	 * *newest is the last id ever given (it survives trimming), so
	 * *oldest may be 0 while *newest is not. */
	int (*bounds)(void *self, const char *channel, size_t chlen, uint64_t *oldest,
	              uint64_t *newest);
	void (*close)(void *self);

	/* A store shared by several nodes (src/cluster/: Redis Streams) sets
	 * the two below; a local engine leaves them NULL.
	 *
	 * shared: an append reaches subscribers through the bus, on every
	 * node this one included (bx_bus_deliver with the record's replay
	 * id), in replay-id order per channel: done only confirms the append
	 * (and gives its id), and the core does not deliver it itself. The
	 * synchronous reads above may then answer -BX_ESTATE. */
	bool shared;
	/* Reads what req asks and calls fn once, on the engine's thread, at
	 * the cut: every later record of those channels reaches this node
	 * through the bus after fn returns, none before it belongs to what fn
	 * got. So a caller that subscribes to req->pattern in fn, then queues
	 * the records, misses nothing and receives nothing twice. The engine
	 * copies req. Returns 0 (fn will be called, with err < 0 when the
	 * store is unreachable) or a negative BX_E* code. */
	int (*replay)(void *self, const bx_store_replay_req *req, bx_store_replay_fn fn, void *arg);
} bx_store_ops;

typedef struct bx_store {
	const bx_store_ops *ops;
	void *self;
} bx_store;

#endif
