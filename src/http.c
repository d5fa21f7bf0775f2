/*
 * http.c — libmicrohttpd glue and the long-polling transport.
 *
 * Every path under the mount (/cometd, /cometd/connect, …) is the Bayeux
 * endpoint (PROTOCOL.md §1). A request body is read into our own buffer with
 * a cap, handed to the core, and answered at once, or, for a held
 * /meta/connect, suspended with MHD_suspend_connection() and answered when
 * the core resumes it. No thread waits for a held request.
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

#include "core.h"
#include "log.h"

struct bx_http {
	struct MHD_Daemon *daemon;
	bx_server *srv;
	size_t pathlen;
	unsigned port;
	atomic_int held; /* requests parked and not yet completed */
};

/* Per-request state, libmicrohttpd's *con_cls. */
typedef struct req_ctx {
	bx_server *srv;
	struct MHD_Connection *conn;
	bx_buf body;
	bool too_big;
	bool was_held;
	bx_hold *hold; /* set while parked, and after resume until answered */
} req_ctx;

/*---- Responses ---------------------------------------------------------------*/

static enum MHD_Result send_buf(struct MHD_Connection *conn, int status, bx_buf *body,
                                const char *type, const char *set_browser)
{
	size_t len = 0;
	char *data = bx_buf_steal(body, &len);
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
	if (set_browser && set_browser[0]) {
		char cookie[128];
		snprintf(cookie, sizeof cookie, "BAYEUX_BROWSER=%s; Path=/; HttpOnly; SameSite=Lax",
		         set_browser);
		MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
	}
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, int status, const char *text)
{
	bx_buf b;
	bx_buf_init(&b);
	bx_buf_puts(&b, text);
	bx_buf_putc(&b, '\n');
	return send_buf(conn, status, &b, "text/plain; charset=utf-8", NULL);
}

static enum MHD_Result send_bayeux(struct MHD_Connection *conn, bx_response *res)
{
	const char *type = res->status == 200 ? "application/json; charset=utf-8"
	                                      : "text/plain; charset=utf-8";
	enum MHD_Result ret = send_buf(conn, res->status, &res->body, type, res->set_browser);
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

static enum MHD_Result bayeux_post(req_ctx *rc, struct MHD_Connection *conn)
{
	bx_server *srv = rc->srv;
	if (rc->too_big) {
		char msg[96];
		snprintf(msg, sizeof msg, "request body larger than %zu bytes (--max-body)",
		         srv->cfg.max_body);
		return send_text(conn, MHD_HTTP_CONTENT_TOO_LARGE, msg);
	}
	bx_request req = {
	        .body = rc->body.data ? rc->body.data : "",
	        .len = rc->body.len,
	        .browser = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, "BAYEUX_BROWSER"),
	        .transport = BX_CT_LONG_POLLING,
	        .waker = {.suspend = park, .resume = unpark, .arg = rc},
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
	return send_bayeux(conn, &res);
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
		return send_bayeux(conn, &res);
	}
	if (!under_mount(h, url))
		return send_text(conn, MHD_HTTP_NOT_FOUND, "not found");
	if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
		return bayeux_post(rc, conn);
	if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0)
		return send_text(conn, MHD_HTTP_OK, "");
	if (strcmp(method, MHD_HTTP_METHOD_GET) == 0)
		return send_text(conn, MHD_HTTP_BAD_REQUEST,
		                 "a Bayeux GET needs a jsonp callback; use POST for long polling");
	return send_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct bx_http *h = cls;
	req_ctx *rc = *con_cls;
	if (!rc)
		return;
	if (rc->hold)
		bx_hold_abandon(h->srv, rc->hold);
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
	                 MHD_USE_ERROR_LOG | MHD_USE_ITC;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->daemon = MHD_start_daemon(
	        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
	        MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	        MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT,
	        cfg->connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	        cfg->connection_memory, MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096,
	        MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0, MHD_OPTION_END);
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
	for (int i = 0; i < 150 && atomic_load(&h->held) > 0; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	MHD_stop_daemon(h->daemon);
	srv->http = NULL;
	free(h);
}
