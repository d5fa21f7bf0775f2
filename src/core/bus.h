/*
 * bus.h — the interface between the core and a bus that joins several
 * nodes (src/cluster/: Redis). The core announces which channels and
 * patterns its sessions are subscribed to, hands each local publish to the
 * bus once, and receives the other nodes' publishes through
 * bx_bus_deliver(). It never includes an engine's header.
 */
#ifndef BX_BUS_H
#define BX_BUS_H

#include <stdbool.h>
#include <stddef.h>

struct bx_server;
struct bx_msg;

/* Called once an interest change is confirmed by the bus (err 0) or failed;
 * may run on the engine's thread. */
typedef void (*bx_bus_done_fn)(void *arg, int err);

typedef struct bx_bus_ops {
	/* This node starts (on) or stops receiving what other nodes publish to
	 * channels matching pattern (a channel name or a wildcard pattern, as
	 * subscribed). The first subscriber turns it on, the last one off. */
	int (*interest)(void *self, const char *pattern, size_t len, bool on, bx_bus_done_fn done,
	                void *arg);
	/* Sends a local publish (its delivered form, serialized once) to the other
	 * nodes. Never blocks on the network. */
	int (*publish)(void *self, const char *channel, size_t chlen, const struct bx_msg *m);
	/* False while the bus is unreachable (health checks). */
	bool (*healthy)(void *self);
	void (*close)(void *self);
} bx_bus_ops;

typedef struct bx_bus {
	const bx_bus_ops *ops;
	void *self;
} bx_bus;

/* Inward: the engine hands the core a message another node published; the
 * core delivers it to this node's subscribers of channel. */
size_t bx_bus_deliver(struct bx_server *srv, const char *channel, size_t chlen, const char *json,
                      size_t len);

#endif
