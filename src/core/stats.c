/* stats.c — the core's figures for /metrics: labels, the latency histogram (stats.h). */
#include "stats.h"

#include "bus.h"
#include "dispatch.h"

#include <string.h>
#include <time.h>

const char *const bx_tr_names[BX_TR_N] = {"long-polling", "callback-polling", "eventsource",
                                          "websocket"};

/* The connection-type bits (dispatch.h) are 1 << their bx_tr index; a new
 * transport keeps that order (a WebSocket: 1 << BX_TR_WEBSOCKET). */
_Static_assert(BX_CT_LONG_POLLING == 1u << BX_TR_LONG_POLLING, "bx_tr order");
_Static_assert(BX_CT_CALLBACK_POLLING == 1u << BX_TR_CALLBACK_POLLING, "bx_tr order");
_Static_assert(BX_CT_EVENTSOURCE == 1u << BX_TR_EVENTSOURCE, "bx_tr order");

int bx_tr_of(unsigned conn_type)
{
	for (int i = 0; i < BX_TR_N; i++)
		if (conn_type == (1u << i))
			return i;
	return BX_TR_LONG_POLLING;
}

const char *const bx_hs_deny_names[BX_HS_N] = {
        "connection_types_unsupported", "handshake_denied",    "too_many_sessions",
        "too_many_sessions_per_ip",     "too_many_handshakes", "out_of_memory",
};

int bx_hs_deny_of(const char *error)
{
	/* "code:args:text": the text after the second ':'. */
	const char *p = error ? strchr(error, ':') : NULL;
	p = p ? strchr(p + 1, ':') : NULL;
	if (p)
		for (int i = 0; i < BX_HS_N; i++)
			if (strcmp(p + 1, bx_hs_deny_names[i]) == 0)
				return i;
	return BX_HS_DENIED;
}

/*---- Latency histogram ---------------------------------------------------------*/

/* 100 µs to 10 s: loopback deliveries land in the first buckets, a client
 * that polls late or a congested one in the last. */
const uint64_t bx_lat_bounds_us[BX_LAT_NBOUNDS] = {
        100,   250,    500,    1000,   2500,    5000,    10000,   25000,
        50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

static size_t bucket_of(uint64_t us)
{
	size_t lo = 0, hi = BX_LAT_NBOUNDS; /* first bound >= us, or NBOUNDS (+Inf) */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (bx_lat_bounds_us[mid] >= us)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

void bx_histo_observe_n(bx_histo *h, uint64_t us, uint64_t n)
{
	if (!n)
		return;
	atomic_fetch_add_explicit(&h->bucket[bucket_of(us)], n, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, us * n, memory_order_relaxed);
}

void bx_histo_observe(bx_histo *h, uint64_t us)
{
	bx_histo_observe_n(h, us, 1);
}

void bx_histo_read(bx_histo *h, bx_histo_snap *out)
{
	uint64_t c = 0;
	for (size_t i = 0; i <= BX_LAT_NBOUNDS; i++) {
		c += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		out->cum[i] = c;
	}
	out->count = c;
	out->sum_us = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

int64_t bx_clock_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*---- Reports from the transports ------------------------------------------------*/

void bx_metrics_conn(bx_metrics *m, int tr, bool open)
{
	if (tr < 0 || tr >= BX_TR_N)
		return;
	bx_metric_gauge(&m->conns[tr], open ? 1 : -1);
}

void bx_metrics_status(bx_metrics *m, unsigned status)
{
	unsigned c = status / 100;
	bx_metric_add(&m->http[c >= 1 && c <= 5 ? c : 0], 1);
}

void bx_metrics_written(bx_metrics *m, int64_t born_us, int64_t now_us)
{
	bx_histo_observe(&m->latency, now_us > born_us ? (uint64_t)(now_us - born_us) : 0);
}

int bx_metrics_add_source(bx_metrics *m, bx_metrics_fn fn, void *arg)
{
	if (!fn || m->nsources == BX_METRICS_SOURCES)
		return -1;
	m->sources[m->nsources++] = (bx_metrics_source){fn, arg};
	return 0;
}

void bx_prom_family(bx_buf *out, const char *name, const char *type, const char *help)
{
	bx_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void bx_prom_sample(bx_buf *out, const char *name, const char *labels, uint64_t v)
{
	if (labels)
		bx_buf_printf(out, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
	else
		bx_buf_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

bool bx_bus_healthy(const struct bx_bus *bus)
{
	return !bus || !bus->ops || !bus->ops->healthy || bus->ops->healthy(bus->self);
}
