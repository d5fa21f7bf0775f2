/*
 * bayeux.h — public API of libbayeux, the Bayeux (CometD) message broker.
 *
 * A program creates a server from a configuration, starts it (it then
 * listens on its own port with libmicrohttpd's epoll thread pool), may
 * publish from any thread, and stops and frees it.
 *
 * Thread safety: every function may be called from any thread, except that
 * bx_server_free() must not race with any other call on the same server.
 *
 * Errors are values: functions that can fail return 0 on success and a
 * negative BX_E* code on failure; bx_strerror() names the code.
 *
 * Ownership: strings passed in are copied before the call returns unless
 * stated otherwise; nothing returned must be freed by the caller unless
 * stated otherwise.
 */
#ifndef BAYEUX_H
#define BAYEUX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BX_VERSION_STRING "0.1.0"

/* Error codes returned (negated) by the functions below. */
enum bx_error {
	BX_OK = 0,
	BX_EINVAL = 1,   /* an argument or configuration value is out of range */
	BX_ENOMEM = 2,   /* an allocation failed */
	BX_ELISTEN = 3,  /* the listening socket could not be opened */
	BX_ESTATE = 4,   /* the server is not in a state that allows the call */
	BX_ECHANNEL = 5, /* a channel name is not valid for the call */
	BX_EJSON = 6,    /* a JSON text did not parse */
};

/* Log levels, from quiet to verbose. */
enum bx_log_level {
	BX_LOG_ERROR = 0,
	BX_LOG_WARN = 1,
	BX_LOG_INFO = 2,
	BX_LOG_DEBUG = 3,
};

/* SameSite attribute of the BAYEUX_BROWSER cookie (README, "Browsers"). */
enum bx_samesite {
	BX_SAMESITE_LAX = 0,    /* default: sent on same-site requests and top-level navigation */
	BX_SAMESITE_STRICT = 1, /* sent on same-site requests only */
	BX_SAMESITE_NONE = 2,   /* sent cross-site too; implies Secure (HTTPS only) */
};

/* A folder served under a URL prefix (bx_config.web_mounts). */
typedef struct bx_web_mount {
	const char *prefix; /* URL path starting with '/', e.g. "/vendor/cometd" */
	const char *dir;    /* folder whose files are served below prefix */
} bx_web_mount;

/*
 * Server configuration. Initialise with bx_config_init(), which fills every
 * field with its documented default, then change what you need.
 * String fields are borrowed until bx_server_new() returns (it copies them).
 */
typedef struct bx_config {
	const char *listen_host;       /* default "127.0.0.1"; a name or address */
	unsigned listen_port;          /* default 8080; 0 picks a free port */
	const char *path;              /* Bayeux mount, default "/cometd" */
	int64_t timeout_ms;            /* long-poll hold, default 30000 */
	int64_t interval_ms;           /* advised pause between connects, default 0 */
	int64_t max_interval_ms;       /* session lifetime without a connect, default 10000 */
	size_t max_body;               /* request body cap in bytes, default 512 KiB */
	size_t max_batch;              /* messages per request, default 4096 */
	size_t max_queue;              /* queued messages per session, default 10000 */
	size_t max_sessions;           /* sessions in total, default 100000 */
	unsigned threads;              /* HTTP threads, default 0 = number of cores */
	unsigned connection_timeout_s; /* idle keep-alive / slow client, default 60 */
	size_t connection_memory;      /* libmicrohttpd per-connection pool, default 8 KiB */
	int log_level;                 /* enum bx_log_level, default BX_LOG_INFO */

	/* Browsers (PROTOCOL.md §4, §6). */
	unsigned max_sessions_per_browser; /* held connects per BAYEUX_BROWSER cookie,
	                                      default 1; 0 = no limit */
	int64_t multi_session_interval_ms; /* interval advised to a browser's extra
	                                      tabs, default 2000 */
	unsigned cors_max_age_s;           /* how long a browser may cache a CORS
	                                      preflight, default 1800 */
	/* Origins ("https://example.com:8443", no path) whose pages may use the
	 * Bayeux endpoint cross-origin (CORS, with credentials): the origin is
	 * echoed in Access-Control-Allow-Origin. "*" allows every origin except
	 * "null". Default: none (same origin only). The array and strings are
	 * copied by bx_server_new(). */
	const char *const *allow_origins;
	size_t n_allow_origins;
	int cookie_samesite; /* enum bx_samesite, default BX_SAMESITE_LAX */
	int cookie_secure;   /* nonzero adds Secure to the cookie, default 0;
	                        BX_SAMESITE_NONE adds it anyway */

	/* Static files (GET and HEAD only; no directory listings). */
	const char *web_root;           /* folder served at "/", default NULL = none */
	const bx_web_mount *web_mounts; /* more folders under URL prefixes (the
	                                   longest prefix wins), default none;
	                                   copied by bx_server_new() */
	size_t n_web_mounts;
} bx_config;

typedef struct bx_server bx_server;

/* Fills *cfg with the defaults listed in struct bx_config. */
void bx_config_init(bx_config *cfg);

/*
 * Creates a server from cfg (copied). Does not open any socket.
 * Returns 0 and sets *out, or -BX_EINVAL when a value is out of range
 * (the reason is logged), -BX_ENOMEM.
 */
int bx_server_new(const bx_config *cfg, bx_server **out);

/*
 * Opens the listening socket and starts the HTTP and timer threads.
 * Returns 0, -BX_ELISTEN (reason logged), or -BX_ESTATE if already started.
 */
int bx_server_start(bx_server *srv);

/* The port the server listens on (useful after listen_port 0), or 0. */
unsigned bx_server_port(const bx_server *srv);

/*
 * Publishes data (a JSON text of len bytes) on channel to every matching
 * subscriber, as if a client had published it. Callable from any thread.
 * Returns the number of subscribers it was queued for (>= 0), -BX_ECHANNEL
 * for a meta, service or wildcard channel or a malformed name, or -BX_EJSON
 * when data does not parse.
 */
int bx_publish(bx_server *srv, const char *channel, const char *data, size_t len);

/*
 * Stops the server: answers every held connect with advice
 * reconnect:"retry", stops accepting, and closes connections, waiting at
 * most about 1.5 s for held replies to be sent. Idempotent.
 */
void bx_server_stop(bx_server *srv);

/* Stops (if needed) and frees the server and every session. NULL is ignored. */
void bx_server_free(bx_server *srv);

/* A static English text for an error code (positive or negative). */
const char *bx_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* BAYEUX_H */
