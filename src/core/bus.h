/*
 * bus.h — the interface between the core and a bus that joins several
 * nodes (src/cluster/: Redis). The core announces which channels and
 * patterns its sessions are subscribed to, hands each local publish to the
 * bus once, and receives the other nodes' publishes through
 * bx_bus_deliver(). It never includes an engine's header.
 *
 * Who calls what:
 *   - the router (router.c) calls interest(on) when a pattern gets its first
 *     local subscriber and interest(off) when it loses its last, under the
 *     router's write lock (so the calls for one pattern arrive in order);
 *   - /meta/subscribe calls ready() for each pattern it subscribed and parks
 *     its reply until every done has run, so a publish on another node after
 *     the reply is not missed (a request that cannot park does not wait);
 *   - bx_broadcast() calls publish() once per local publish, after the local
 *     delivery, in the order publishes were accepted;
 *   - the engine's own thread calls bx_bus_deliver() for what other nodes
 *     published. An engine drops its own echoes and duplicates itself.
 * Every op may be called from any HTTP thread and must never wait on the
 * network.
 */
#ifndef BX_BUS_H
#define BX_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bx_server;
struct bx_msg;

/* Called once an interest change is confirmed by the bus (err 0) or failed
 * (err < 0: the bus is down or did not answer in time; the local
 * subscription stands and the bus subscribes again when it is back). May run
 * on the engine's thread, or before the call that registered it returns. */
typedef void (*bx_bus_done_fn)(void *arg, int err);

typedef struct bx_bus_ops {
	/* This node starts (on) or stops receiving what other nodes publish to
	 * channels matching pattern (a channel name or a wildcard pattern, as
	 * subscribed). The first subscriber turns it on, the last one off. done
	 * may be NULL; when not, it is called once as for ready(). */
	int (*interest)(void *self, const char *pattern, size_t len, bool on, bx_bus_done_fn done,
	                void *arg);
	/* Calls done once pattern (turned on with interest) is confirmed by the
	 * bus, or at once when it already is, or with err < 0 when the bus is
	 * down or does not confirm within a few seconds. Returns 0 (done will
	 * be or was called) or a negative BX_E* code (done not called). */
	int (*ready)(void *self, const char *pattern, size_t len, bx_bus_done_fn done, void *arg);
	/* Sends a local publish (its delivered form, serialized once) to the other
	 * nodes. Never blocks on the network. */
	int (*publish)(void *self, const char *channel, size_t chlen, const struct bx_msg *m);
	/* False while the bus is unreachable (health checks). */
	bool (*healthy)(void *self);
	/* Stops the engine's thread and calls every pending done with an error;
	 * afterwards the ops are harmless no-ops (ready calls done(err) at once).
	 * Called while the transports still run (before they stop), so parked
	 * replies are released. */
	void (*stop)(void *self);
	/* Frees the engine (after stop). */
	void (*close)(void *self);
} bx_bus_ops;

typedef struct bx_bus {
	const bx_bus_ops *ops;
	void *self;
} bx_bus;

/* Inward: the engine hands the core a message another node published; the
 * core delivers it to this node's subscribers of channel (a broadcast
 * channel: anything else is dropped). replay_id is 0, or the id a shared
 * history store (store.h) gave a retained message: it is then delivered
 * with ext.replayId, and the engine calls this for the publishes of this
 * node too (in id order). Returns how many sessions got it (1 for a
 * retained one). */
size_t bx_bus_deliver(struct bx_server *srv, const char *channel, size_t chlen, const char *json,
                      size_t len, uint64_t replay_id);
/* Health: bx_bus_healthy() (stats.h) asks healthy(); /healthz answers 503
 * while it is false. */

#endif
