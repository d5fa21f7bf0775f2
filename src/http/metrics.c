/*
 * metrics.c — GET /metrics and GET /healthz (metrics.h).
 *
 * The figures are the core's atomics (core/metrics.h, bx_stats) and the
 * process's own, read from /proc/self: a scrape takes no lock that a
 * publish or a connect waits on. Names follow Prometheus's conventions:
 * bayeux_ then what is counted, the unit (_seconds, _bytes) in the name,
 * _total on counters, labels only with bounded values (transport, reason,
 * class).
 */
#include <dirent.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bus.h"
#include "core/log.h"
#include "backend.h"
#include "http.h"
#include "metrics.h"

/*---- The text format ---------------------------------------------------------*/

static void head(bx_buf *o, const char *name, const char *type, const char *help)
{
	bx_prom_family(o, name, type, help);
}

static void u64(bx_buf *o, const char *name, const char *type, const char *help, uint64_t v)
{
	head(o, name, type, help);
	bx_prom_sample(o, name, NULL, v);
}

static uint64_t load(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* A gauge that is briefly negative between two threads' updates reads 0. */
static uint64_t gauge(atomic_int_fast64_t *g)
{
	int64_t v = atomic_load_explicit(g, memory_order_relaxed);
	return v > 0 ? (uint64_t)v : 0;
}

/* Microseconds as seconds, no exponent, no trailing zeros: 0.00025, 1, 2.5. */
static void seconds(bx_buf *o, uint64_t us)
{
	char frac[8];
	snprintf(frac, sizeof frac, "%06llu", (unsigned long long)(us % 1000000));
	size_t n = 6;
	while (n && frac[n - 1] == '0')
		n--;
	bx_buf_printf(o, "%llu%s%.*s", (unsigned long long)(us / 1000000), n ? "." : "", (int)n,
	              frac);
}

static void latency(bx_buf *o, bx_histo *h)
{
	static const char name[] = "bayeux_publish_to_write_seconds";
	bx_histo_snap s;
	bx_histo_read(h, &s);
	head(o, name, "histogram",
	     "Time from a publish until a transport wrote the message to a subscriber, once "
	     "per delivery (includes the wait for a polling client's next connect).");
	for (size_t i = 0; i < BX_LAT_NBOUNDS; i++) {
		bx_buf_printf(o, "%s_bucket{le=\"", name);
		seconds(o, bx_lat_bounds_us[i]);
		bx_buf_printf(o, "\"} %llu\n", (unsigned long long)s.cum[i]);
	}
	bx_buf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum ", name, (unsigned long long)s.count,
	              name);
	seconds(o, s.sum_us);
	bx_buf_printf(o, "\n%s_count %llu\n", name, (unsigned long long)s.count);
}

/*---- The process (/proc/self) ------------------------------------------------------*/

typedef struct proc_figures {
	bool stat_ok;
	double cpu_s, start_s;
	uint64_t rss_bytes, vsize_bytes;
	bool fds_ok;
	uint64_t open_fds, max_fds;
} proc_figures;

/* Seconds since the epoch when the machine booted (/proc/stat btime), read
 * once: it does not change. */
static long long boot_time(void)
{
	static _Atomic long long cached;
	long long bt = atomic_load(&cached);
	if (bt)
		return bt;
	FILE *f = fopen("/proc/stat", "r");
	char line[256];
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "btime %lld", &bt) == 1)
			break;
	if (f)
		fclose(f);
	atomic_store(&cached, bt);
	return bt;
}

static void read_proc(proc_figures *p)
{
	memset(p, 0, sizeof *p);
	long tick = sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	/* pid (comm) state ...: the name may hold spaces and ')'; fields count
	 * from the last ')'. utime is field 14, stime 15, starttime 22, vsize
	 * 23, rss 24 (pages). */
	const char *p3 = strrchr(buf, ')');
	unsigned long long utime, stime, start, vsize;
	long long rss;
	if (p3 && tick > 0 && page > 0 &&
	    sscanf(p3 + 2,
	           "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
	           "%llu %llu %lld",
	           &utime, &stime, &start, &vsize, &rss) == 5) {
		p->stat_ok = true;
		p->cpu_s = (double)(utime + stime) / (double)tick;
		p->start_s = (double)boot_time() + (double)start / (double)tick;
		p->vsize_bytes = vsize;
		p->rss_bytes = rss > 0 ? (uint64_t)rss * (uint64_t)page : 0;
	}
	/* Linux 6.2 and later give the count as the folder's size: one stat()
	 * instead of listing 20,000 entries (7 ms of CPU at 10,000 connections). */
	struct stat st;
	if (stat("/proc/self/fd", &st) == 0 && st.st_size > 0) {
		p->open_fds = (uint64_t)st.st_size;
		p->fds_ok = true;
	} else {
		DIR *d = opendir("/proc/self/fd");
		if (d) {
			struct dirent *e;
			while ((e = readdir(d)))
				if (e->d_name[0] != '.')
					p->open_fds++;
			closedir(d);
			p->open_fds--; /* the one opendir() holds */
			p->fds_ok = true;
		}
	}
	struct rlimit rl;
	p->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (uint64_t)rl.rlim_cur : 0;
}

static void process(bx_buf *o)
{
	proc_figures p;
	read_proc(&p);
	if (p.stat_ok) {
		head(o, "process_cpu_seconds_total", "counter",
		     "User and system CPU time spent in seconds.");
		bx_buf_printf(o, "process_cpu_seconds_total %.2f\n", p.cpu_s);
		u64(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
		    p.rss_bytes);
		u64(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
		    p.vsize_bytes);
		head(o, "process_start_time_seconds", "gauge",
		     "Start time of the process since unix epoch in seconds.");
		bx_buf_printf(o, "process_start_time_seconds %.2f\n", p.start_s);
	}
	if (p.fds_ok) {
		u64(o, "process_open_fds", "gauge", "Number of open file descriptors.", p.open_fds);
		u64(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
		    p.max_fds);
	}
}

/*---- All of it ----------------------------------------------------------------------*/

void bx_metrics_format(bx_server *srv, bx_buf *o)
{
	bx_stats *st = &srv->stats;
	bx_metrics *m = &st->m;

	head(o, "bayeux_build_info", "gauge", "Always 1; the version of bayeuxd in a label.");
	bx_buf_printf(o, "bayeux_build_info{version=\"%s\"} 1\n", BX_VERSION_STRING);

	u64(o, "bayeux_sessions", "gauge", "Client sessions (handshaken clients) now.",
	    gauge(&m->sessions));
	head(o, "bayeux_connections", "gauge",
	     "Client connections attached to a session now, by transport: held connects "
	     "(long-polling, callback-polling), event streams (eventsource), sockets "
	     "(websocket).");
	for (int i = 0; i < BX_TR_N; i++)
		bx_buf_printf(o, "bayeux_connections{transport=\"%s\"} %llu\n", bx_tr_names[i],
		              (unsigned long long)gauge(&m->conns[i]));

	u64(o, "bayeux_handshakes_total", "counter", "Handshakes accepted (sessions created).",
	    load(&st->handshakes));
	head(o, "bayeux_handshakes_denied_total", "counter", "Handshakes refused, by reason.");
	for (int i = 0; i < BX_HS_N; i++)
		bx_buf_printf(o, "bayeux_handshakes_denied_total{reason=\"%s\"} %llu\n",
		              bx_hs_deny_names[i], (unsigned long long)load(&m->hs_denied[i]));
	u64(o, "bayeux_sessions_expired_total", "counter",
	    "Sessions removed because their client stopped connecting (--max-interval).",
	    load(&st->expired));

	u64(o, "bayeux_messages_published_total", "counter",
	    "Messages published by clients, backends and the embedding program.",
	    load(&st->publishes));
	u64(o, "bayeux_messages_delivered_total", "counter",
	    "Messages written to subscribers (one per subscriber reached).", load(&st->deliveries));
	u64(o, "bayeux_messages_dropped_total", "counter",
	    "Messages dropped from a full session queue (--max-queue): the oldest goes.",
	    load(&st->dropped));
	u64(o, "bayeux_messages_expired_total", "counter",
	    "Messages still queued, never written, when their session ended.",
	    load(&m->msg_expired));

	u64(o, "bayeux_received_bytes_total", "counter",
	    "Bytes of request bodies received (Bayeux messages, backend publishes).",
	    load(&m->bytes_in));
	u64(o, "bayeux_sent_bytes_total", "counter",
	    "Bytes of Bayeux replies and stream events sent (not headers, not static files).",
	    load(&m->bytes_out));
	head(o, "bayeux_http_requests_total", "counter",
	     "HTTP requests answered, by status class (other: never answered).");
	static const char *const classes[BX_STATUS_CLASSES] = {"other", "1xx", "2xx",
	                                                       "3xx",   "4xx", "5xx"};
	for (int i = 1; i <= BX_STATUS_CLASSES; i++) {
		int c = i % BX_STATUS_CLASSES; /* 1xx..5xx, then other */
		bx_buf_printf(o, "bayeux_http_requests_total{class=\"%s\"} %llu\n", classes[c],
		              (unsigned long long)load(&m->http[c]));
	}
	latency(o, &m->latency);
	/* The engines' figures (history store, cluster bus), then the process. */
	for (size_t i = 0; i < m->nsources; i++)
		m->sources[i].fn(m->sources[i].arg, o);
	process(o);
}

/*---- Access and health ------------------------------------------------------------*/

bool bx_metrics_allowed(bx_server *srv, const struct sockaddr *peer, const char *authorization,
                        bool proxied)
{
	if (authorization && bx_http_bearer_ok(srv, authorization))
		return true;
	return !proxied && bx_http_loopback(peer);
}

bool bx_server_healthy(bx_server *srv, const char **why)
{
	if (atomic_load(&srv->draining) || atomic_load(&srv->stopping)) {
		*why = "stopping";
		return false;
	}
	if (!bx_bus_healthy(srv->bus)) {
		/* Issue 13 says "degraded", issue 14 says 503: both. The node
		 * still serves its own clients; the other nodes are out of reach. */
		*why = "degraded: cluster bus unreachable, local delivery continues";
		return false;
	}
	*why = NULL;
	return true;
}

/*---- HTTP -------------------------------------------------------------------------*/

bool bx_metrics_url(const char *url)
{
	return strcmp(url, BX_METRICS_URL) == 0 || strcmp(url, BX_HEALTH_URL) == 0;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *type,
                              bx_buf *body)
{
	size_t len = 0;
	char *data = bx_buf_steal(body, &len);
	return bx_http_answer(conn, status, type, data ? data : (void *)"", len,
	                      data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT, true);
}

static enum MHD_Result text(struct MHD_Connection *conn, unsigned status, const char *t)
{
	bx_buf b;
	bx_buf_init(&b);
	bx_buf_puts(&b, t);
	return answer(conn, status, "text/plain; charset=utf-8", &b);
}

static bool has_header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name) != NULL;
}

enum MHD_Result bx_metrics_serve(bx_server *srv, struct MHD_Connection *conn, const char *url,
                                 const char *method)
{
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD here\n");
	if (strcmp(url, BX_HEALTH_URL) == 0) {
		/* For load balancers: no secret here, open to anyone. */
		const char *why;
		if (bx_server_healthy(srv, &why))
			return text(conn, MHD_HTTP_OK, "ok\n");
		char msg[128];
		snprintf(msg, sizeof msg, "unavailable: %s\n", why);
		return text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
	}
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	bool proxied = has_header(conn, "X-Forwarded-For") || has_header(conn, "X-Real-IP") ||
	               has_header(conn, "Forwarded");
	const char *authz =
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!bx_metrics_allowed(srv, ci ? ci->client_addr : NULL, authz, proxied))
		return text(conn, MHD_HTTP_FORBIDDEN,
		            "/metrics is for loopback clients and holders of the publish token "
		            "(Authorization: Bearer TOKEN, see --publish-token-file)\n");
	bx_buf b;
	bx_buf_init(&b);
	bx_metrics_format(srv, &b);
	if (b.failed) {
		bx_buf_free(&b);
		return text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
	}
	return answer(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &b);
}

/*---- --metrics-listen ----------------------------------------------------------------*/

struct bx_mlisten {
	struct MHD_Daemon *daemon;
	bx_server *srv;
	unsigned port;
};

static enum MHD_Result on_metrics_request(void *cls, struct MHD_Connection *conn, const char *url,
                                          const char *method, const char *version,
                                          const char *upload_data, size_t *upload_data_size,
                                          void **con_cls)
{
	(void)version;
	(void)upload_data;
	bx_mlisten *ml = cls;
	if (!*con_cls) {
		*con_cls = ml; /* the headers are in; answer once the body (ignored) is read */
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!bx_metrics_url(url))
		return text(conn, MHD_HTTP_NOT_FOUND,
		            "not found: this listener serves /metrics and /healthz\n");
	return bx_metrics_serve(ml->srv, conn, url, method);
}

static void on_metrics_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                                 enum MHD_RequestTerminationCode toe)
{
	(void)toe;
	bx_mlisten *ml = cls;
	if (!*con_cls)
		return;
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
	bx_metrics_status(&ml->srv->stats.m, ci ? ci->http_status : 0);
	*con_cls = NULL;
}

int bx_metrics_listen_start(bx_server *srv, bx_mlisten **out)
{
	*out = NULL;
	const char *host = srv->cfg.metrics_host;
	if (!host)
		return 0;
	char hostbuf[256], portstr[8];
	size_t hl = strlen(host);
	/* Accept [::1] as well as ::1. */
	if (host[0] == '[' && hl < sizeof hostbuf && hl >= 2 && host[hl - 1] == ']') {
		snprintf(hostbuf, sizeof hostbuf, "%.*s", (int)hl - 2, host + 1);
		host = hostbuf;
	}
	snprintf(portstr, sizeof portstr, "%u", srv->cfg.metrics_port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
	struct addrinfo *ai = NULL;
	int gai = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, portstr, &hints, &ai);
	if (gai != 0) {
		bx_error("cannot resolve --metrics-listen host '%s': %s", srv->cfg.metrics_host,
		         gai_strerror(gai));
		return -BX_ELISTEN;
	}
	bx_mlisten *ml = calloc(1, sizeof *ml);
	if (!ml) {
		freeaddrinfo(ai);
		return -BX_ENOMEM;
	}
	ml->srv = srv;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* One thread, few connections: a scraper or two and a load balancer. */
	ml->daemon = MHD_start_daemon(
	        flags, 0, NULL, NULL, on_metrics_request, ml, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	        MHD_OPTION_NOTIFY_COMPLETED, on_metrics_completed, ml, MHD_OPTION_CONNECTION_LIMIT,
	        64u, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!ml->daemon) {
		bx_error("cannot listen on --metrics-listen %s:%u (address in use, or not an "
		         "address "
		         "of this machine?)",
		         srv->cfg.metrics_host, srv->cfg.metrics_port);
		free(ml);
		return -BX_ELISTEN;
	}
	const union MHD_DaemonInfo *info =
	        MHD_get_daemon_info(ml->daemon, MHD_DAEMON_INFO_BIND_PORT);
	ml->port = info ? info->port : srv->cfg.metrics_port;
	*out = ml;
	return 0;
}

unsigned bx_metrics_listen_port(const bx_mlisten *ml)
{
	return ml ? ml->port : 0;
}

void bx_metrics_listen_stop(bx_mlisten *ml)
{
	if (!ml)
		return;
	MHD_stop_daemon(ml->daemon);
	free(ml);
}
