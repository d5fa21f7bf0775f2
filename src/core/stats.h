/*
 * stats.h — the core's figures for /metrics (src/http/metrics.c formats
 * them): gauges and counters that are plain atomics, bumped where the thing
 * happens and read with no lock, and one histogram of publish-to-write
 * latency with fixed buckets. Nothing here knows HTTP: a transport reports
 * bytes, status classes and its connections through the functions below.
 */
#ifndef BX_CORE_STATS_H
#define BX_CORE_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Transports, the bounded `transport` label. */
enum bx_tr {
	BX_TR_LONG_POLLING = 0,
	BX_TR_CALLBACK_POLLING,
	BX_TR_EVENTSOURCE,
	BX_TR_WEBSOCKET,
	BX_TR_N
};
extern const char *const bx_tr_names[BX_TR_N];

/* The transport index of one connection-type bit (enum bx_conn_type);
 * long polling for anything else. */
int bx_tr_of(unsigned conn_type);

/* Why a handshake was refused, the bounded `reason` label. */
enum bx_hs_deny {
	BX_HS_CONNECTION_TYPES = 0, /* 301::connection_types_unsupported */
	BX_HS_DENIED,               /* 403::handshake_denied: the policy (--auth, --acl, a hook) */
	BX_HS_TOO_MANY_SESSIONS,    /* --max-sessions */
	BX_HS_TOO_MANY_PER_IP,      /* --max-sessions-per-ip */
	BX_HS_TOO_MANY_HANDSHAKES,  /* --max-handshakes-per-ip */
	BX_HS_OUT_OF_MEMORY,
	BX_HS_N
};
extern const char *const bx_hs_deny_names[BX_HS_N];

/* The reason of a refusal's Bayeux error text ("503::too_many_sessions"). */
int bx_hs_deny_of(const char *error);

/*---- Publish-to-write latency ---------------------------------------------*/

/* Upper bounds (inclusive, microseconds) of the latency buckets; one more
 * bucket, +Inf, follows. */
#define BX_LAT_NBOUNDS 16
extern const uint64_t bx_lat_bounds_us[BX_LAT_NBOUNDS];

typedef struct bx_histo {
	atomic_uint_fast64_t bucket[BX_LAT_NBOUNDS + 1]; /* one count per bucket, not cumulative */
	atomic_uint_fast64_t sum_us;
} bx_histo;

/* Counts one observation of us microseconds. Lock-free. */
void bx_histo_observe(bx_histo *h, uint64_t us);
/* Counts n observations of us microseconds each. */
void bx_histo_observe_n(bx_histo *h, uint64_t us, uint64_t n);

/* A reading: cumulative counts (cum[BX_LAT_NBOUNDS] is +Inf, the count). */
typedef struct bx_histo_snap {
	uint64_t cum[BX_LAT_NBOUNDS + 1];
	uint64_t count;
	uint64_t sum_us;
} bx_histo_snap;

void bx_histo_read(bx_histo *h, bx_histo_snap *out);

/* Microseconds on CLOCK_MONOTONIC (a message's publish time). */
int64_t bx_clock_us(void);

/*---- The figures ------------------------------------------------------------*/

/* HTTP status classes 1xx..5xx are [1]..[5]; [0] is anything else. */
#define BX_STATUS_CLASSES 6

/* An engine's own figures (the history store, the cluster bus): fn appends
 * whole families in Prometheus's text format to out, with the helpers
 * below, reading only what it can read without waiting on a publish. */
typedef void (*bx_metrics_fn)(void *arg, bx_buf *out);
#define BX_METRICS_SOURCES 4
typedef struct bx_metrics_source {
	bx_metrics_fn fn;
	void *arg;
} bx_metrics_source;

typedef struct bx_metrics {
	atomic_int_fast64_t sessions;       /* registered now */
	atomic_int_fast64_t conns[BX_TR_N]; /* held connects, streams, sockets now */
	atomic_uint_fast64_t hs_denied[BX_HS_N];
	atomic_uint_fast64_t msg_expired; /* queued, never sent: the session ended */
	atomic_uint_fast64_t bytes_in, bytes_out;
	atomic_uint_fast64_t http[BX_STATUS_CLASSES];
	bx_histo latency; /* publish → written to a client */
	/* Added before the server starts, read with no lock after. */
	bx_metrics_source sources[BX_METRICS_SOURCES];
	size_t nsources;
} bx_metrics;

/* Adds an engine's figures to /metrics; call before the server starts.
 * 0, or -1 when BX_METRICS_SOURCES are taken. */
int bx_metrics_add_source(bx_metrics *m, bx_metrics_fn fn, void *arg);

/* Text-format helpers for sources. name: bayeux_<what>[_<unit>][_total];
 * type: "counter" or "gauge"; help: one line, no backslash. */
void bx_prom_family(bx_buf *out, const char *name, const char *type, const char *help);
/* One sample; labels: NULL, or `key="value"` pairs as written between the
 * braces (bounded values only). */
void bx_prom_sample(bx_buf *out, const char *name, const char *labels, uint64_t v);

static inline void bx_metric_add(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline void bx_metric_gauge(atomic_int_fast64_t *g, int64_t d)
{
	atomic_fetch_add_explicit(g, d, memory_order_relaxed);
}

struct bx_bus;
/* True unless a bus is there and says it cannot reach the other nodes (the
 * healthy op of core/bus.h); NULL (no cluster) is healthy. */
bool bx_bus_healthy(const struct bx_bus *bus);

/* A transport's connection (held connect, stream, socket) opens or ends. */
void bx_metrics_conn(bx_metrics *m, int tr, bool open);
/* A response of HTTP status went out. */
void bx_metrics_status(bx_metrics *m, unsigned status);
/* n messages published at their born_us times were written now: one clock
 * read for the batch, then one observation per message (see session.c). */
void bx_metrics_written(bx_metrics *m, int64_t born_us, int64_t now_us);

#endif
