/*
 * redis.h — the Redis bus (bx_bus_ops over hiredis): bayeuxd nodes sharing
 * one Redis. See redis.c for the design, docs/ARCHITECTURE.md for the flow.
 */
#ifndef BX_CLUSTER_REDIS_H
#define BX_CLUSTER_REDIS_H

#include "core/bus.h"
#include "core/store.h"

struct bx_server;

typedef struct bx_redis_opts {
	const char *url;     /* redis://HOST[:PORT][/DB] or unix:/PATH */
	const char *prefix;  /* Redis key and channel prefix; NULL: "bayeux" */
	const char *node_id; /* this node's name; NULL: "<host>-<pid>" */
} bx_redis_opts;

/* Checks the options and starts the bus thread, which connects to Redis in
 * the background (a Redis that is down is retried, not an error). Fills out.
 * Returns 0, -BX_EINVAL (logged: bad URL, prefix or node id) or -BX_ENOMEM. */
int bx_redis_bus_new(struct bx_server *srv, const bx_redis_opts *opts, bx_bus *out);

/* The bus's history store (store.h, shared): retained channels' history in
 * Redis Streams, appended and published by one script. Valid while the bus
 * is; its close leaves the connections to the bus. */
struct bx_store;
void bx_redis_store(bx_bus *bus, struct bx_store *out);

/* Checks opts the way bx_redis_bus_new does; 0 or -1 with err set. */
int bx_redis_opts_check(const bx_redis_opts *opts, char *err, size_t errlen);

#endif
