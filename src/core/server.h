/*
 * server.h — the broker's state, one struct shared by every module: the
 * session table, router, timer, per-browser and per-address accounting,
 * counters, and opaque pointers to what the layers around the core own
 * (HTTP, CORS, static files, the embedding hooks). Types only: its
 * lifecycle is src/lib/server.c, the composition root.
 */
#ifndef BX_SERVER_H
#define BX_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bayeux.h"
#include "browser.h"
#include "router.h"
#include "stats.h"
#include "table.h"
#include "timer.h"

struct bx_http;
struct bx_bus;

typedef struct bx_stats {
	atomic_uint_fast64_t handshakes, publishes, deliveries, dropped, expired;
	atomic_uint_fast64_t held_now;
	atomic_uint_fast64_t streams_now; /* event streams whose response is alive */
	bx_metrics m; /* the rest of /metrics (stats.h) */
} bx_stats;

struct bx_server {
	bx_config cfg; /* string fields point at our copies below */
	char *host, *path;
	char *metrics_host; /* our copy of cfg.metrics_host, or NULL */
	unsigned conn_types; /* enabled enum bx_conn_type bits */

	int64_t (*now)(void *arg); /* milliseconds on a monotonic clock */
	void *now_arg;

	bx_table sessions;
	bx_router router;
	bx_timer timer;
	bx_browsers browsers;

	atomic_bool draining; /* shutdown has begun: /healthz says 503 (--shutdown-delay) */
	atomic_bool stopping;
	atomic_bool stopped;
	struct bx_http *http;
	struct bx_cors *cors;  /* allowed origins (cors.c), or NULL: none */
	struct bx_static *web; /* static file folders (static.c), or NULL: none */
	bx_stats stats;

	char *publish_token; /* our copy of cfg.publish_token, or NULL */
	struct bx_api *api;  /* hooks of the embedding program (hooks.h), or NULL */
	struct bx_peers *peers; /* limits per client address (limits.c) */
	struct bx_bus *bus;     /* the cluster bus (bus.h), or NULL: one node */
};

static inline int64_t bx_now(struct bx_server *srv)
{
	return srv->now(srv->now_arg);
}

#endif
