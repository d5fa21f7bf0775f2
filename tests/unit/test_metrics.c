/* Metrics (README, "Metrics and health"): the latency histogram's buckets
 * and its lock-free counting from several threads, the text formatter, the
 * labels, who may read /metrics, and health. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>

#include "helpers.h"
#include "core/bus.h"
#include "core/stats.h"
#include "http/metrics.h"

static bx_server *srv;

static void setup(void)
{
	srv = test_server(30000, 10000);
}

static void teardown(void)
{
	bx_server_free(srv);
}

TestSuite(metrics, .init = setup, .fini = teardown);

/*---- Histogram -------------------------------------------------------------------*/

Test(metrics, histogram_bounds_are_inclusive_and_cumulative)
{
	bx_histo h = {0};
	bx_histo_observe(&h, 0);        /* le 0.0001 */
	bx_histo_observe(&h, 100);      /* le 0.0001: a bound is inclusive */
	bx_histo_observe(&h, 101);      /* le 0.00025 */
	bx_histo_observe(&h, 999999);   /* le 1 */
	bx_histo_observe(&h, 10000000); /* le 10 */
	bx_histo_observe(&h, 10000001); /* +Inf */
	bx_histo_snap s;
	bx_histo_read(&h, &s);
	cr_assert_eq(s.cum[0], 2);
	cr_assert_eq(s.cum[1], 3);
	cr_assert_eq(bx_lat_bounds_us[12], 1000000);
	cr_assert_eq(s.cum[11], 3);
	cr_assert_eq(s.cum[12], 4);
	cr_assert_eq(s.cum[BX_LAT_NBOUNDS - 1], 5);
	cr_assert_eq(s.cum[BX_LAT_NBOUNDS], 6);
	cr_assert_eq(s.count, 6);
	cr_assert_eq(s.sum_us, 0 + 100 + 101 + 999999 + 10000000 + 10000001);
	for (size_t i = 1; i < BX_LAT_NBOUNDS; i++)
		cr_assert_gt(bx_lat_bounds_us[i], bx_lat_bounds_us[i - 1]);
}

#define THREADS 4
#define PER     100000

static void *hammer(void *arg)
{
	bx_histo *h = arg;
	for (uint64_t i = 0; i < PER; i++)
		bx_histo_observe(h, i % 3000); /* 0..2999 µs */
	return NULL;
}

Test(metrics, histogram_counts_every_observation_from_many_threads)
{
	static bx_histo h;
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, &h), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	bx_histo_snap s;
	bx_histo_read(&h, &s);
	cr_assert_eq(s.count, (uint64_t)THREADS * PER);
	/* Per thread: values 0..100 are 101 of every 3000, and PER = 33 * 3000 + 1000. */
	cr_assert_eq(s.cum[0], (uint64_t)THREADS * (33 * 101 + 101));
	/* Everything is under 2.5 ms (le 0.0025, the fifth bound) but 2501..2999. */
	cr_assert_eq(s.cum[4], (uint64_t)THREADS * (33 * 2501 + 1000));
	uint64_t sum = 0;
	for (uint64_t i = 0; i < PER; i++)
		sum += i % 3000;
	cr_assert_eq(s.sum_us, THREADS * sum);
}

/*---- Labels ------------------------------------------------------------------------*/

Test(metrics, transports_and_refusal_reasons)
{
	cr_assert_eq(bx_tr_of(BX_CT_LONG_POLLING), BX_TR_LONG_POLLING);
	cr_assert_eq(bx_tr_of(BX_CT_CALLBACK_POLLING), BX_TR_CALLBACK_POLLING);
	cr_assert_eq(bx_tr_of(BX_CT_EVENTSOURCE), BX_TR_EVENTSOURCE);
	cr_assert_eq(bx_tr_of(0), BX_TR_LONG_POLLING);
	cr_assert_str_eq(bx_tr_names[BX_TR_EVENTSOURCE], "eventsource");
	cr_assert_eq(bx_hs_deny_of("503::too_many_sessions"), BX_HS_TOO_MANY_SESSIONS);
	cr_assert_eq(bx_hs_deny_of("503::too_many_sessions_per_ip"), BX_HS_TOO_MANY_PER_IP);
	cr_assert_eq(bx_hs_deny_of("429::too_many_handshakes"), BX_HS_TOO_MANY_HANDSHAKES);
	cr_assert_eq(bx_hs_deny_of("301::connection_types_unsupported"), BX_HS_CONNECTION_TYPES);
	cr_assert_eq(bx_hs_deny_of("403::handshake_denied"), BX_HS_DENIED);
	cr_assert_eq(bx_hs_deny_of("anything else"), BX_HS_DENIED);
	cr_assert_eq(bx_hs_deny_of(NULL), BX_HS_DENIED);
}

/*---- The text format ---------------------------------------------------------------*/

static char *format(void)
{
	bx_buf b;
	bx_buf_init(&b);
	bx_metrics_format(srv, &b);
	cr_assert(!b.failed);
	return bx_buf_steal(&b, NULL);
}

/* The value of the sample line starting with `sample ` (name and labels). */
static double sample(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, name, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	cr_assert_fail("no sample %s in:\n%s", name, text);
	return -1;
}

Test(metrics, text_format_has_help_and_type_before_each_family)
{
	char *t = format();
	/* Every sample's family was introduced by # HELP and # TYPE lines. */
	char family[128] = "";
	for (char *line = t; line && *line;) {
		char *nl = strchr(line, '\n');
		cr_assert_not_null(nl, "every line ends with \\n");
		*nl = '\0';
		if (strncmp(line, "# HELP ", 7) == 0) {
			sscanf(line + 7, "%127s", family);
		} else if (strncmp(line, "# TYPE ", 7) == 0) {
			char name[128], type[32];
			cr_assert_eq(sscanf(line + 7, "%127s %31s", name, type), 2);
			cr_assert_str_eq(name, family, "TYPE follows HELP of the same family");
			cr_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
			          strcmp(type, "histogram") == 0);
			if (strcmp(type, "counter") == 0)
				cr_assert(strstr(name, "_total"), "%s: a counter ends in _total",
				          name);
		} else {
			cr_assert(family[0], "a sample before any HELP: %s", line);
			cr_assert_eq(strncmp(line, family, strlen(family)), 0, "%s is not of %s",
			             line, family);
		}
		line = nl + 1;
	}
	free(t);
}

Test(metrics, counters_and_gauges_show_the_core_figures)
{
	atomic_store(&srv->stats.handshakes, 7);
	atomic_store(&srv->stats.deliveries, 1234567890123ull);
	bx_metric_gauge(&srv->stats.m.sessions, 3);
	bx_metrics_conn(&srv->stats.m, BX_TR_EVENTSOURCE, true);
	bx_metrics_conn(&srv->stats.m, BX_TR_EVENTSOURCE, true);
	bx_metrics_conn(&srv->stats.m, BX_TR_EVENTSOURCE, false);
	bx_metric_add(&srv->stats.m.hs_denied[BX_HS_TOO_MANY_PER_IP], 2);
	bx_metrics_status(&srv->stats.m, 200);
	bx_metrics_status(&srv->stats.m, 204);
	bx_metrics_status(&srv->stats.m, 404);
	bx_metrics_status(&srv->stats.m, 503);
	bx_metrics_status(&srv->stats.m, 0);
	bx_histo_observe(&srv->stats.m.latency, 300);
	bx_histo_observe(&srv->stats.m.latency, 2000000);
	char *t = format();
	cr_assert_eq(sample(t, "bayeux_handshakes_total"), 7);
	cr_assert_eq(sample(t, "bayeux_messages_delivered_total"), 1234567890123.0);
	cr_assert_eq(sample(t, "bayeux_sessions"), 3);
	cr_assert_eq(sample(t, "bayeux_connections{transport=\"eventsource\"}"), 1);
	cr_assert_eq(sample(t, "bayeux_connections{transport=\"websocket\"}"), 0);
	cr_assert_eq(
	        sample(t, "bayeux_handshakes_denied_total{reason=\"too_many_sessions_per_ip\"}"),
	        2);
	cr_assert_eq(sample(t, "bayeux_http_requests_total{class=\"2xx\"}"), 2);
	cr_assert_eq(sample(t, "bayeux_http_requests_total{class=\"4xx\"}"), 1);
	cr_assert_eq(sample(t, "bayeux_http_requests_total{class=\"5xx\"}"), 1);
	cr_assert_eq(sample(t, "bayeux_http_requests_total{class=\"other\"}"), 1);
	cr_assert_eq(sample(t, "bayeux_publish_to_write_seconds_bucket{le=\"0.00025\"}"), 0);
	cr_assert_eq(sample(t, "bayeux_publish_to_write_seconds_bucket{le=\"0.0005\"}"), 1);
	cr_assert_eq(sample(t, "bayeux_publish_to_write_seconds_bucket{le=\"2.5\"}"), 2);
	cr_assert_eq(sample(t, "bayeux_publish_to_write_seconds_bucket{le=\"+Inf\"}"), 2);
	cr_assert_eq(sample(t, "bayeux_publish_to_write_seconds_count"), 2);
	cr_assert(strstr(t, "bayeux_publish_to_write_seconds_sum 2.0003\n"), "%s", t);
	cr_assert_gt(sample(t, "process_resident_memory_bytes"), 1e5);
	cr_assert_gt(sample(t, "process_open_fds"), 2);
	cr_assert_gt(sample(t, "process_start_time_seconds"), 1.6e9);
	cr_assert(strstr(t, "bayeux_build_info{version=\"" BX_VERSION_STRING "\"} 1\n"));
	free(t);
}

static void engine_figures(void *arg, bx_buf *out)
{
	bx_prom_family(out, "bayeux_store_appended_total", "counter", "Messages appended.");
	bx_prom_sample(out, "bayeux_store_appended_total", NULL, *(uint64_t *)arg);
	bx_prom_family(out, "bayeux_bus_links", "gauge", "Links by state.");
	bx_prom_sample(out, "bayeux_bus_links", "state=\"up\"", 2);
}

Test(metrics, an_engine_adds_its_own_families)
{
	static uint64_t appended = 42;
	cr_assert_eq(bx_metrics_add_source(&srv->stats.m, engine_figures, &appended), 0);
	for (int i = 1; i < BX_METRICS_SOURCES; i++)
		cr_assert_eq(bx_metrics_add_source(&srv->stats.m, engine_figures, &appended), 0);
	cr_assert_eq(bx_metrics_add_source(&srv->stats.m, engine_figures, &appended), -1);
	srv->stats.m.nsources = 1;
	char *t = format();
	cr_assert_eq(sample(t, "bayeux_store_appended_total"), 42);
	cr_assert_eq(sample(t, "bayeux_bus_links{state=\"up\"}"), 2);
	/* Before the process figures, after the core's. */
	cr_assert_lt(strstr(t, "bayeux_publish_to_write_seconds_count"),
	             strstr(t, "bayeux_store_"));
	cr_assert_lt(strstr(t, "bayeux_store_"), strstr(t, "process_cpu_seconds_total"));
	free(t);
}

Test(metrics, a_gauge_caught_between_two_updates_never_reads_negative)
{
	bx_metrics_conn(&srv->stats.m, BX_TR_LONG_POLLING, false);
	char *t = format();
	cr_assert_eq(sample(t, "bayeux_connections{transport=\"long-polling\"}"), 0);
	free(t);
}

/*---- Who may read it -------------------------------------------------------------*/

static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, text, &in->sin_addr) == 1)
		in->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1)
		in6->sin6_family = AF_INET6;
	else
		cr_assert_fail("bad address %s", text);
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

Test(metrics, loopback_or_the_publish_token)
{
	struct sockaddr_storage lo4 = addr("127.0.0.1"), lo4b = addr("127.3.2.1"),
	                        lo6 = addr("::1"), mapped = addr("::ffff:127.0.0.1"),
	                        far4 = addr("10.0.0.1"), far6 = addr("2001:db8::1"),
	                        farmapped = addr("::ffff:203.0.113.9");
	cr_assert(bx_metrics_allowed(srv, SA(lo4), NULL, false));
	cr_assert(bx_metrics_allowed(srv, SA(lo4b), NULL, false));
	cr_assert(bx_metrics_allowed(srv, SA(lo6), NULL, false));
	cr_assert(bx_metrics_allowed(srv, SA(mapped), NULL, false));
	cr_assert_not(bx_metrics_allowed(srv, SA(far4), NULL, false));
	cr_assert_not(bx_metrics_allowed(srv, SA(far6), NULL, false));
	cr_assert_not(bx_metrics_allowed(srv, SA(farmapped), NULL, false));
	cr_assert_not(bx_metrics_allowed(srv, NULL, NULL, false));
	/* Through a proxy on this host: not local. */
	cr_assert_not(bx_metrics_allowed(srv, SA(lo4), NULL, true));
	/* No token configured: a bearer header opens nothing. */
	cr_assert_not(bx_metrics_allowed(srv, SA(far4), "Bearer ", false));
	cr_assert_not(bx_metrics_allowed(srv, SA(far4), "Bearer anything-at-all-here", false));
}

Test(metrics, the_token_opens_it_from_anywhere)
{
	bx_server_free(srv);
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.log_level = BX_LOG_ERROR;
	cfg.publish_token = "s3cr3t-token-of-metrics";
	cr_assert_eq(bx_server_new(&cfg, &srv), 0);
	struct sockaddr_storage far4 = addr("203.0.113.9");
	cr_assert(bx_metrics_allowed(srv, SA(far4), "Bearer s3cr3t-token-of-metrics", false));
	cr_assert(bx_metrics_allowed(srv, SA(far4), "bearer   s3cr3t-token-of-metrics  ", true));
	cr_assert_not(bx_metrics_allowed(srv, SA(far4), "Bearer s3cr3t-token-of-metric", false));
	cr_assert_not(bx_metrics_allowed(srv, SA(far4), "Bearer s3cr3t-token-of-metricsX", false));
	cr_assert_not(bx_metrics_allowed(srv, SA(far4), "Basic s3cr3t-token-of-metrics", false));
	cr_assert_not(bx_metrics_allowed(srv, SA(far4), "s3cr3t-token-of-metrics", false));
	cr_assert_not(bx_metrics_allowed(srv, SA(far4), "", false));
}

/*---- Health ------------------------------------------------------------------------*/

static bool bus_up;
static bool fake_healthy(void *self)
{
	(void)self;
	return bus_up;
}

Test(metrics, healthy_until_stopping_or_while_the_bus_is_down)
{
	const char *why = "x";
	cr_assert(bx_server_healthy(srv, &why));
	cr_assert_null(why);

	static const bx_bus_ops ops = {.healthy = fake_healthy};
	bx_bus bus = {.ops = &ops, .self = NULL};
	srv->bus = &bus;
	bus_up = false;
	cr_assert_not(bx_server_healthy(srv, &why));
	cr_assert_str_eq(why, "degraded: cluster bus unreachable, local delivery continues");
	bus_up = true;
	cr_assert(bx_server_healthy(srv, &why));
	/* A bus with no health op is taken as healthy. */
	static const bx_bus_ops none = {0};
	bus.ops = &none;
	cr_assert(bx_server_healthy(srv, &why));
	srv->bus = NULL;

	atomic_store(&srv->draining, true);
	cr_assert_not(bx_server_healthy(srv, &why));
	cr_assert_str_eq(why, "stopping");
}
