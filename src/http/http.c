/*
 * http.c — libmicrohttpd glue and the long-polling transport.
 *
 * Every path under the mount (/cometd, /cometd/connect, …) is the Bayeux
 * endpoint (PROTOCOL.md §1). A request body is read into our own buffer with
 * a cap, handed to the core, and answered at once, or, for a held
 * /meta/connect, suspended with MHD_suspend_connection() and answered when
 * the core resumes it. No thread waits for a held request.
 *
 * Event streams (GET with Accept: text/event-stream, or <mount>/sse) go to
 * transport_sse.c. Also here: the callback-polling (JSONP) wire, GET <mount>?jsonp=CB&
 * message=[...], held the same way (body written by transport_callback.c);
 * CORS headers for the origins the operator allows (cors.c); the
 * BAYEUX_BROWSER cookie's attributes; and static files outside the mount
 * (static.c).
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/server.h"
#include "core/dispatch.h"
#include "core/durable.h"
#include "http.h"
#include "static.h"
#include "backend.h"
#include "core/log.h"
#include "sse.h"
#include "metrics.h"
#include "websocket.h"

struct bx_http {
	struct MHD_Daemon *daemon;
	bx_server *srv;
	size_t pathlen;
	unsigned port;
	atomic_int held; /* requests parked and not yet completed */
	bx_mlisten *metrics; /* --metrics-listen's listener, or NULL */
	bx_ws *ws;       /* the WebSocket loops (websocket.h), or NULL: --websocket 0 */
};

bx_ws *bx_http_ws(bx_server *srv)
{
	return srv->http ? srv->http->ws : NULL;
}

/* Per-request state, libmicrohttpd's *con_cls. */
typedef struct req_ctx {
	bx_server *srv;
	struct MHD_Connection *conn;
	bx_buf body;
	bool too_big;
	bool was_held;
	bx_hold *hold;      /* set while parked, and after resume until answered */
	bx_pending *pending; /* publishes parked until durable (core/durable.h) */
	bool publish_form;   /* pending belongs to POST /publish/ */
	const char *origin; /* an allowed Origin to echo (CORS), or NULL; valid
	                       for the request's life (libmicrohttpd's pool) */
	char jsonp[BX_JSONP_CALLBACK_MAX + 1]; /* callback-polling callback, or "" */
} req_ctx;

/*---- Responses ---------------------------------------------------------------*/

static const char *const samesite_names[] = {"Lax", "Strict", "None"};

/* CORS headers on a Bayeux reply (PROTOCOL.md §6): the allowed origin is
 * echoed with credentials, never "*"; Vary tells caches the answer depends on
 * Origin. */
static void add_cors(const req_ctx *rc, struct MHD_Response *r)
{
	if (!rc->srv->cors)
		return;
	MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Origin");
	if (!rc->origin)
		return;
	MHD_add_response_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, rc->origin);
	MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
}

static enum MHD_Result send_buf(req_ctx *rc, int status, bx_buf *body, const char *type,
                                const char *set_browser)
{
	struct MHD_Connection *conn = rc->conn;
	const bx_config *cfg = &rc->srv->cfg;
	size_t len = 0;
	char *data = bx_buf_steal(body, &len);
	bx_metric_add(&rc->srv->stats.m.bytes_out, len);
	struct MHD_Response *r = MHD_create_response_from_buffer(len, data ? data : (void *)"",
	                                                         data ? MHD_RESPMEM_MUST_FREE
	                                                              : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(data);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	/* Proxies must neither cache nor hold Bayeux replies (seed §5.3). */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, no-store");
	/* A reply that starts with bytes from the request must not be sniffed
	 * into another type (JSONP, error texts). */
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	add_cors(rc, r);
	if (set_browser && set_browser[0]) {
		/* Attributes: README, "Browsers". SameSite=None needs Secure. */
		char cookie[160];
		int ss = cfg->cookie_samesite;
		snprintf(cookie, sizeof cookie,
		         "BAYEUX_BROWSER=%s; Path=/; HttpOnly; SameSite=%s%s", set_browser,
		         samesite_names[ss],
		         cfg->cookie_secure || ss == BX_SAMESITE_NONE ? "; Secure" : "");
		MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
	}
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_text(req_ctx *rc, int status, const char *text)
{
	bx_buf b;
	bx_buf_init(&b);
	bx_buf_puts(&b, text);
	bx_buf_putc(&b, '\n');
	return send_buf(rc, status, &b, "text/plain; charset=utf-8", NULL);
}

static enum MHD_Result send_bayeux(req_ctx *rc, bx_response *res)
{
	const char *type = res->status == 200 ? "application/json; charset=utf-8"
	                                      : "text/plain; charset=utf-8";
	if (rc->jsonp[0] && res->status == 200) {
		/* Callback polling: the same array, as a call of the page's callback. */
		bx_buf js;
		bx_buf_init(&js);
		bx_jsonp_wrap(&js, rc->jsonp, res->body.data ? res->body.data : "", res->body.len);
		bx_buf_free(&res->body);
		res->body = js;
		type = "text/javascript; charset=utf-8";
		if (js.failed) {
			res->status = 503;
			bx_buf_free(&res->body);
			bx_buf_puts(&res->body, "out of memory\n");
			type = "text/plain; charset=utf-8";
		}
	}
	enum MHD_Result ret = send_buf(rc, res->status, &res->body, type, res->set_browser);
	bx_response_free(res);
	return ret;
}

/*---- Parking -----------------------------------------------------------------*/

static void park(void *arg)
{
	req_ctx *rc = arg;
	MHD_suspend_connection(rc->conn);
}

static void unpark(void *arg)
{
	req_ctx *rc = arg;
	MHD_resume_connection(rc->conn);
}

/*---- Routing -----------------------------------------------------------------*/

/* True when url is the mount or a path under it. */
static bool under_mount(const struct bx_http *h, const char *url)
{
	const char *p = h->srv->cfg.path;
	if (h->pathlen == 1)
		return url[0] == '/';
	return strncmp(url, p, h->pathlen) == 0 &&
	       (url[h->pathlen] == '\0' || url[h->pathlen] == '/');
}

/* The client's address as text in buf (limits.c counts by it), or NULL. */
const char *bx_http_peer_text(struct MHD_Connection *conn, char *buf, size_t n)
{
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ci || !ci->client_addr)
		return NULL;
	const struct sockaddr *sa = ci->client_addr;
	const void *a = sa->sa_family == AF_INET6
	                        ? (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr
	                        : (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    !inet_ntop(sa->sa_family, a, buf, (socklen_t)n))
		return NULL;
	return buf;
}

/* Hands one batch to the core; answers it, or leaves it parked. */
static enum MHD_Result bayeux_dispatch(req_ctx *rc, const char *body, size_t len,
                                       unsigned transport)
{
	bx_server *srv = rc->srv;
	char peer[INET6_ADDRSTRLEN];
	bx_request req = {
	        .body = body,
	        .len = len,
	        .browser = MHD_lookup_connection_value(rc->conn, MHD_COOKIE_KIND, "BAYEUX_BROWSER"),
	        .transport = transport,
	        .waker = {.suspend = park, .resume = unpark, .arg = rc},
	        .backend = bx_http_backend(srv, rc->conn),
	        .peer = bx_http_peer_text(rc->conn, peer, sizeof peer),
	};
	bx_response res;
	bx_response_init(&res);
	bx_dispatch(srv, &req, &res);
	bx_buf_free(&rc->body);
	if (res.hold) {
		rc->hold = res.hold;
		rc->was_held = true;
		atomic_fetch_add(&srv->http->held, 1);
		bx_response_free(&res);
		return MHD_YES;
	}
	if (res.pending) {
		rc->pending = res.pending;
		rc->was_held = true;
		atomic_fetch_add(&srv->http->held, 1);
		bx_response_free(&res);
		return MHD_YES;
	}
	return send_bayeux(rc, &res);
}

static enum MHD_Result bayeux_post(req_ctx *rc, struct MHD_Connection *conn)
{
	bx_server *srv = rc->srv;
	if (rc->too_big) {
		char msg[96];
		snprintf(msg, sizeof msg, "request body larger than %zu bytes (--max-body)",
		         srv->cfg.max_body);
		return send_text(rc, MHD_HTTP_CONTENT_TOO_LARGE, msg);
	}
	return bayeux_dispatch(rc, rc->body.data ? rc->body.data : "", rc->body.len,
	                       BX_CT_LONG_POLLING);
}

/* Callback polling (PROTOCOL.md §6): GET <mount>?jsonp=CB&message=[...]. */
static enum MHD_Result bayeux_jsonp(req_ctx *rc, struct MHD_Connection *conn, const char *cb)
{
	if (!bx_jsonp_callback_ok(cb))
		return send_text(
		        rc, MHD_HTTP_BAD_REQUEST,
		        "the jsonp callback must be 1 to 64 characters of A-Z a-z 0-9 _ $ . "
		        "and not start with a digit or '.'");
	const char *msg = NULL;
	size_t len = 0;
	if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, "message",
	                                  sizeof "message" - 1, &msg, &len) != MHD_YES ||
	    !msg)
		return send_text(rc, MHD_HTTP_BAD_REQUEST,
		                 "a callback-polling GET needs a message parameter (a JSON array)");
	if (len > rc->srv->cfg.max_body) {
		char text[96];
		snprintf(text, sizeof text, "message larger than %zu bytes (--max-body)",
		         rc->srv->cfg.max_body);
		return send_text(rc, MHD_HTTP_CONTENT_TOO_LARGE, text);
	}
	/* Checked above: fits, and holds only safe characters. */
	memcpy(rc->jsonp, cb, strlen(cb) + 1);
	bx_metric_add(&rc->srv->stats.m.bytes_in, len);
	return bayeux_dispatch(rc, msg, len, BX_CT_CALLBACK_POLLING);
}

/* CORS preflight (PROTOCOL.md §6): allowed origins get the methods and
 * headers the CometD client uses; others 403; no Origin: plain 200. */
static enum MHD_Result bayeux_options(req_ctx *rc, struct MHD_Connection *conn)
{
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	if (!origin)
		return send_text(rc, MHD_HTTP_OK, "");
	if (!rc->origin)
		return send_text(
		        rc, MHD_HTTP_FORBIDDEN,
		        "this origin may not use the Bayeux endpoint (see --allow-origin)");
	struct MHD_Response *r =
	        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	char age[24];
	snprintf(age, sizeof age, "%u", rc->srv->cfg.cors_max_age_s);
	add_cors(rc, r);
	MHD_add_response_header(r, "Access-Control-Allow-Methods", "POST, GET, OPTIONS");
	MHD_add_response_header(r, "Access-Control-Allow-Headers",
	                        "Content-Type, Authorization, X-Requested-With");
	MHD_add_response_header(r, "Access-Control-Max-Age", age);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, no-store");
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result bx_http_answer(struct MHD_Connection *conn, unsigned status, const char *type,
                               void *data, size_t len, enum MHD_ResponseMemoryMode mode,
                               bool no_cache)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, data, mode);
	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(data);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (no_cache)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct bx_http *h = cls;
	req_ctx *rc = *con_cls;
	if (!rc) {
		rc = calloc(1, sizeof *rc);
		if (!rc)
			return MHD_NO;
		rc->srv = h->srv;
		rc->conn = conn;
		bx_buf_init(&rc->body);
		*con_cls = rc;
		return MHD_YES;
	}
	if (*upload_data_size) {
		bx_metric_add(&h->srv->stats.m.bytes_in, *upload_data_size);
		/* Keep reading past the cap so the 413 reaches the client. */
		if (!rc->too_big && rc->body.len + *upload_data_size > h->srv->cfg.max_body) {
			rc->too_big = true;
			bx_buf_free(&rc->body);
		}
		if (!rc->too_big)
			bx_buf_append(&rc->body, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rc->hold) {
		/* Resumed: answer the held connect. */
		bx_response res;
		bx_response_init(&res);
		bx_hold_finish(h->srv, rc->hold, &res);
		rc->hold = NULL;
		return send_bayeux(rc, &res);
	}
	if (rc->pending) {
		/* Resumed: the publishes it waited for are durable (or failed). */
		bx_response res;
		bx_response_init(&res);
		bx_pending_finish(rc->pending, &res);
		rc->pending = NULL;
		if (rc->publish_form)
			return bx_http_publish_answer(conn, &res);
		return send_bayeux(rc, &res);
	}
	if (bx_metrics_url(url))
		return bx_metrics_serve(h->srv, conn, url, method);
	if (bx_http_is_publish_url(url)) {
		bx_waker w = {.suspend = park, .resume = unpark, .arg = rc};
		enum MHD_Result r = bx_http_publish(h->srv, conn, method, url, rc->body.data,
		                                    rc->body.len, rc->too_big, w, &rc->pending);
		if (rc->pending) {
			rc->publish_form = true;
			rc->was_held = true;
			atomic_fetch_add(&h->held, 1);
		}
		return r;
	}
	if (bx_http_is_history_url(url))
		return bx_http_history(h->srv, conn, method, url);
	if (!under_mount(h, url)) {
		if (bx_static_enabled(h->srv))
			return bx_static_serve(h->srv, conn, url, method);
		return send_text(rc, MHD_HTTP_NOT_FOUND, "not found");
	}
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	if (bx_cors_allowed(h->srv, origin))
		rc->origin = origin;
	if (bx_ws_wanted(conn))
		return bx_ws_serve(h->srv, conn, method, version);
	if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
		return bayeux_post(rc, conn);
	if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0)
		return bayeux_options(rc, conn);
	if (strcmp(method, MHD_HTTP_METHOD_GET) == 0) {
		if (bx_sse_wanted(h->srv, conn, url))
			return bx_sse_serve(h->srv, conn, url, rc->origin);
		const char *cb = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "jsonp");
		if (cb)
			return bayeux_jsonp(rc, conn, cb);
		return send_text(rc, MHD_HTTP_BAD_REQUEST,
		                 "a Bayeux GET needs a jsonp callback; use POST for long polling");
	}
	return send_text(rc, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct bx_http *h = cls;
	req_ctx *rc = *con_cls;
	if (!rc)
		return;
	/* Counted here, once for every request, whoever answered it. */
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
	bx_metrics_status(&h->srv->stats.m, ci ? ci->http_status : 0);
	if (rc->hold)
		bx_hold_abandon(h->srv, rc->hold);
	if (rc->pending)
		bx_pending_abandon(rc->pending);
	if (rc->was_held)
		atomic_fetch_sub(&h->held, 1);
	bx_buf_free(&rc->body);
	free(rc);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	bx_warn("libmicrohttpd: %s", line);
}

/*---- Lifecycle ---------------------------------------------------------------*/

/* Raises the soft descriptor limit to the hard one; returns the soft limit. */
static rlim_t raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	rlim_t before = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			rl.rlim_cur = before;
	}
	bx_info("file descriptors: soft limit %llu (was %llu), hard limit %llu",
	        (unsigned long long)rl.rlim_cur, (unsigned long long)before,
	        (unsigned long long)rl.rlim_max);
	return rl.rlim_cur;
}

int bx_http_start(bx_server *srv)
{
	const bx_config *cfg = &srv->cfg;
	struct bx_http *h = calloc(1, sizeof *h);
	if (!h)
		return -BX_ENOMEM;
	h->srv = srv;
	h->pathlen = strlen(cfg->path);

	char portstr[8];
	snprintf(portstr, sizeof portstr, "%u", cfg->listen_port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
	struct addrinfo *ai = NULL;
	const char *host = cfg->listen_host;
	char hostbuf[256];
	/* Accept [::1] as well as ::1. */
	if (host[0] == '[' && strlen(host) < sizeof hostbuf && host[strlen(host) - 1] == ']') {
		snprintf(hostbuf, sizeof hostbuf, "%.*s", (int)strlen(host) - 2, host + 1);
		host = hostbuf;
	}
	int gai = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, portstr, &hints, &ai);
	if (gai != 0) {
		bx_error("cannot resolve --listen host '%s': %s", cfg->listen_host,
		         gai_strerror(gai));
		free(h);
		return -BX_ELISTEN;
	}

	unsigned threads = cfg->threads;
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (unsigned)n : 1;
	}
	rlim_t nofile = raise_nofile();
	unsigned limit = nofile > 128 ? (unsigned)(nofile - 64) : 64;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
	                 MHD_USE_ERROR_LOG | MHD_USE_ITC | MHD_ALLOW_UPGRADE;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->daemon = MHD_start_daemon(
	        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
	        MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	        MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT,
	        cfg->connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	        cfg->connection_memory, MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096,
	        /* One thread: no pool (libmicrohttpd warns about a pool of 0). */
	        threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads,
	        MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!h->daemon) {
		bx_error("cannot listen on %s:%u (address in use, or not an address of this "
		         "machine?)",
		         cfg->listen_host, cfg->listen_port);
		free(h);
		return -BX_ELISTEN;
	}
	const union MHD_DaemonInfo *info =
	        MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : cfg->listen_port;
	int mrc = bx_metrics_listen_start(srv, &h->metrics);
	if (mrc != 0) {
		MHD_stop_daemon(h->daemon);
		free(h);
		return mrc;
	}
	if (h->metrics) {
		bool bare6 = strchr(cfg->metrics_host, ':') && cfg->metrics_host[0] != '[';
		bx_info("metrics on http://%s%s%s:%u/metrics", bare6 ? "[" : "", cfg->metrics_host,
		        bare6 ? "]" : "", bx_metrics_listen_port(h->metrics));
	}
	/* Upgraded sockets are served by loops of their own, as many as the
	 * HTTP threads (websocket.h). */
	if (cfg->websocket && !(h->ws = bx_ws_new(srv, threads))) {
		MHD_stop_daemon(h->daemon);
		bx_metrics_listen_stop(h->metrics);
		free(h);
		return -BX_ENOMEM;
	}
	srv->http = h;
	bx_info("%u HTTP threads, up to %u connections, %zu bytes of memory pool each", threads,
	        limit, cfg->connection_memory);
	return 0;
}

unsigned bx_http_port(bx_server *srv)
{
	return srv->http ? srv->http->port : 0;
}

void bx_http_quiesce(bx_server *srv)
{
	struct bx_http *h = srv->http;
	if (!h)
		return;
	MHD_socket fd = MHD_quiesce_daemon(h->daemon);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
}

void bx_http_stop(bx_server *srv)
{
	struct bx_http *h = srv->http;
	if (!h)
		return;
	/* Give held replies (just resumed) time to be written: at most ~1.5 s. */
	for (int i = 0; i < 150 && (atomic_load(&h->held) > 0 ||
	                            atomic_load(&srv->stats.streams_now) > 0);
	     i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	/* Sockets get their held connects' replies and a close (1001), then go
	 * back to libmicrohttpd before it stops. */
	bx_ws_shutdown(h->ws, 1000);
	bx_ws_free(h->ws);
	h->ws = NULL;
	MHD_stop_daemon(h->daemon);
	bx_metrics_listen_stop(h->metrics); /* last: /healthz says 503 until the end */
	srv->http = NULL;
	free(h);
}
