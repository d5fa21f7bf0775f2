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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BX_VERSION_STRING "0.1.0"

/* Error codes returned (negated) by the functions below. */
enum bx_error {
	BX_OK = 0,
	BX_EINVAL = 1,    /* an argument or configuration value is out of range */
	BX_ENOMEM = 2,    /* an allocation failed */
	BX_ELISTEN = 3,   /* the listening socket could not be opened */
	BX_ESTATE = 4,    /* the server is not in a state that allows the call */
	BX_ECHANNEL = 5,  /* a channel name is not valid for the call */
	BX_EJSON = 6,     /* a JSON text did not parse */
	BX_EREJECTED = 7, /* an extension rejected the message */
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
	size_t max_sessions_per_ip;    /* sessions per client address, default 1000;
	                                  0 = no limit (docs/SECURITY.md) */
	unsigned max_handshakes_per_ip; /* handshakes per client address per second,
	                                   default 20; 0 = no limit */
	size_t max_subscriptions;       /* subscriptions per session, default 1000 */
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

	/* Backend publishing over HTTP: a publish with no clientId and no
	 * handshake, on POST <path> or POST /publish/<channel>. */
	const char *publish_token; /* the bearer token a backend sends as
	                              "Authorization: Bearer <token>" (compared in
	                              constant time), default NULL = none */
	bool allow_local_publish;  /* also accept them without a token from a
	                              loopback address, default false. Without
	                              either: 403::publish_denied */

	/* Server-Sent Events: the eventsource connection type (Faye's browser
	 * client) and plain streams at <path>/sse?subscribe=CHANNEL. */
	unsigned sse;             /* 1 = offered (default), 0 = off */
	int64_t sse_heartbeat_ms; /* a comment line after this long without an
	                             event, default 15000 */
	int64_t sse_max_age_ms;   /* a stream ends after this long and the client
	                             reconnects, default 300000; 0 = never */
	size_t sse_max_bytes;     /* ... or after this many bytes, default 4 MiB;
	                             0 = no limit */
	int64_t sse_retry_ms;     /* the stream's retry: field, the client's
	                             reconnection delay, default 1000 */
	size_t sse_replay;        /* messages a session keeps for a reconnecting
	                             stream's Last-Event-ID, default 256 */

	/* Operations: GET /metrics and GET /healthz are served on the main
	 * listener; these serve them on an address of their own as well. */
	const char *metrics_host; /* a name or address (or "*"), default NULL =
	                             no second listener; copied */
	unsigned metrics_port;    /* its port; 0 picks a free one */
	int64_t shutdown_delay_ms; /* bx_server_stop() first turns /healthz to 503
	                              and keeps serving this long, so a load
	                              balancer stops sending clients; default 0 */
	/* History and replay (README "History and replay"): channels matched by
	 * a rule keep their last messages, which a subscribe's ext.replay and
	 * GET /history/<channel> read back. */
	const char *const *retain; /* rules "PATTERN=COUNT[,AGE]" (e.g.
	                              "/chat/**=1000,24h"; the first that matches a
	                              channel wins), default none; copied */
	size_t n_retain;
	const char *store_dir; /* keep history in LMDB in this folder (created if
	                          missing): a publish is acknowledged once it is
	                          on disk; default NULL = in memory */
	unsigned store_sync;   /* 1 (default): each write syncs data and LMDB's
	                          meta page; 0: not the meta page (the last writes
	                          may be lost to a power loss or OS crash, never
	                          to the process dying) */
	/* Clustering (README "Clustering"): nodes sharing one Redis deliver
	 * each other's publishes to their subscribers. */
	const char *redis;        /* "redis://HOST[:PORT][/DB]" or "unix:/PATH",
	                             default NULL = one node, no Redis */
	const char *redis_prefix; /* prefix of every Redis channel and key,
	                             default NULL = "bayeux" */
	const char *node_id;      /* this node's name in Redis, default NULL =
	                             "<hostname>-<pid>" */

	/* WebSocket: the websocket connection type (CometD's and Faye's
	 * clients try it first), upgraded on <path> and any path under it. */
	unsigned websocket;    /* 1 = offered (default), 0 = off (upgrades get 400) */
	size_t ws_max_pending; /* unsent bytes a socket may have; past it the socket
	                          is closed (1008) and the session queues for the
	                          client's reconnect; default 1 MiB */
	int64_t ws_ping_ms;    /* a ping after this long with nothing received; no
	                          traffic for as long again closes it; default 25000,
	                          0 = never */
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
 * The message passes through the outgoing extensions, not through channel
 * listeners or the policy. Returns the number of subscribers it was queued
 * for (>= 0; 0 on a channel a `retain` rule keeps: it is written to the
 * history store and delivered, with its replay id, once durable; a failed
 * write is logged), -BX_ECHANNEL for a meta, service or wildcard channel or a
 * malformed name, -BX_EJSON when data does not parse, -BX_EREJECTED when an
 * outgoing extension rejected it, or -BX_ENOMEM.
 */
int bx_publish(bx_server *srv, const char *channel, const char *data, size_t len);

/*
 * Stops the server: answers every held connect with advice
 * reconnect:"retry", stops accepting, and closes connections, waiting at
 * most about 1.5 s for held replies to be sent (after shutdown_delay_ms, during
 * which /healthz answers 503 and everything else is served). Idempotent.
 */
void bx_server_stop(bx_server *srv);

/*
 * Replaces the backend publish token (bx_config.publish_token) while the
 * server runs, or removes it when token is NULL (then only
 * allow_local_publish, if set, lets backends publish). token is copied; it
 * must be 16 to 4096 characters with no white space. Requests being
 * authorized at the moment finish with the old token; no request waits for
 * the swap. Callable from any thread, before or after bx_server_start().
 * Returns 0, -BX_EINVAL (the token's length or characters), -BX_ENOMEM.
 */
int bx_server_set_publish_token(bx_server *srv, const char *token);

/* Stops (if needed) and frees the server and every session. NULL is ignored. */
void bx_server_free(bx_server *srv);

/* A static English text for an error code (positive or negative). */
const char *bx_strerror(int err);

/*---- Embedding: sessions, messages, hooks -----------------------------------
 *
 * Hooks (listeners, extensions, the session listener, the policy) are
 * registered after bx_server_new() and before bx_server_start(); registering
 * later returns -BX_ESTATE. They are never removed: they live until
 * bx_server_free(). Being fixed while the server runs, they are read with no
 * lock, and a server with no hook pays one pointer test per message.
 *
 * Every hook runs on the thread that handles the triggering request (one of
 * the HTTP threads), or on the timer thread (a session expiring) or in
 * bx_server_stop()/bx_server_free() (sessions removed at shutdown). Hooks may
 * run on several threads at once, so what they share needs a lock. Within a
 * hook you may call any function of this header except bx_server_stop(),
 * bx_server_free() and the registration functions. Keep hooks short: the
 * thread serves other connections while the hook does not return.
 *
 * A bx_message and the strings read from it are valid only until the hook
 * that received it returns.
 */

/* A client session: one handshaken client. */
typedef struct bx_session bx_session;
/* One Bayeux message passed to a hook; see the accessors below. */
typedef struct bx_message bx_message;

/* The session's client id (22 alphanumeric characters). It is a bearer
 * secret: do not log or forward it. Valid while you hold a reference. */
const char *bx_session_id(const bx_session *s);

/* Takes a reference to s, so that it stays valid after the hook that gave it
 * returns (e.g. to bx_deliver() to it later from another thread). */
void bx_session_ref(bx_session *s);

/* Drops a reference taken with bx_session_ref(). Every reference must be
 * dropped before bx_server_free(). NULL is ignored. */
void bx_session_unref(bx_session *s);

/*
 * Queues {"channel":channel,"data":data[,"id":id_json]} for session `to`
 * only, as a delivery, passing it through the outgoing extensions. data is
 * a JSON text of len bytes; id_json is NULL or an id as bx_message_id()
 * returns it. The message reaches the client with its next /meta/connect
 * reply (a held one is answered at once). Callable from any thread.
 * Returns 0, -BX_ESTATE when the session has ended, -BX_ECHANNEL for a meta
 * or wildcard channel, -BX_EJSON when data or id_json does not parse,
 * -BX_EREJECTED when an outgoing extension rejected it, -BX_ENOMEM.
 */
int bx_deliver(bx_session *to, const char *channel, const char *data, size_t len,
               const char *id_json);

/* The message's channel (NUL-terminated, validated). */
const char *bx_message_channel(const bx_message *m);

/* The sending session, or NULL when the message has none: a backend
 * publish over HTTP, a handshake, or a message the server itself sends. */
bx_session *bx_message_session(const bx_message *m);

/* The message's id as JSON text (e.g. "\"7\"" or "7"), or NULL. */
const char *bx_message_id(const bx_message *m);

/* The message's `data` as compact JSON text, its length in *len (len may be
 * NULL; the text may hold U+0000 escaped, never a raw NUL), or NULL when
 * there is no data. */
const char *bx_message_data(const bx_message *m, size_t *len);

/* Replaces the message's `data` with the JSON text json (len bytes). Returns
 * 0, -BX_EJSON, or -BX_ENOMEM; the message is unchanged on failure. */
int bx_message_set_data(bx_message *m, const char *json, size_t len);

/* The message's `ext` object as JSON text (and its length), or NULL. */
const char *bx_message_ext(const bx_message *m, size_t *len);

/* Replaces the message's `ext` with the JSON object text json (len bytes),
 * or removes it when json is NULL. Returns 0, -BX_EJSON (not an object),
 * -BX_ENOMEM. */
int bx_message_set_ext(bx_message *m, const char *json, size_t len);

/*
 * A channel listener: called for each message a client or a backend
 * publishes on a channel matching its pattern, before it is broadcast
 * (listeners may change its data with bx_message_set_data()), in
 * registration order. Return true to let it go on, false to delete it:
 * it is not broadcast and the publisher gets 404::message_deleted.
 * Messages from bx_publish() and bx_deliver() are not passed to listeners.
 */
typedef bool (*bx_listener_fn)(void *arg, bx_message *m);

/*
 * Registers fn for channels matching pattern (a channel name, or a name whose
 * last segment is the wildcard * or **). On /service/... channels (never
 * broadcast), a listener is the service: it answers the sender only with
 * bx_reply(). arg is passed back as is and is yours to free after
 * bx_server_free(). Returns 0, -BX_ECHANNEL
 * (a malformed or /meta pattern), -BX_ESTATE (server started), -BX_ENOMEM.
 */
int bx_server_add_listener(bx_server *srv, const char *pattern, bx_listener_fn fn, void *arg);

/*
 * From a listener: answers the message's sender only, on the message's own
 * channel and with its id, with data (a JSON text of len bytes): CometD's
 * service request/reply. The reply reaches the sender with its next
 * /meta/connect reply (a held one is answered at once). Returns as
 * bx_deliver(), or -BX_ESTATE when the message has no session (a backend's).
 */
int bx_reply(const bx_message *request, const char *data, size_t len);

/*
 * An extension hook. Incoming hooks see every message a client sends (meta
 * messages included) after its channel is validated and before it is
 * handled; outgoing hooks see every message delivered to clients (published
 * by a client, a backend or bx_publish(), or sent with bx_deliver() or
 * bx_reply()) once, before it is serialized and copied to each recipient, so
 * what a hook writes is what every recipient gets. Replies to meta messages
 * do not pass through outgoing hooks. bx_message_session() of an outgoing
 * message is its sender (NULL for the server and backends).
 *
 * Return NULL to let the message go on (changed or not), or an error text
 * such as "403::forbidden" to reject it; the text is copied before the
 * hook's caller returns. A rejected incoming message is not handled and its
 * sender gets {"successful":false,"error":<text>}; a rejected outgoing one
 * is delivered to nobody, a publishing client gets the error in its publish
 * reply, and bx_publish()/bx_deliver() return -BX_EREJECTED.
 */
typedef const char *(*bx_ext_fn)(void *arg, bx_message *m);

/* Registers an extension: either hook may be NULL. Extensions run in
 * registration order. Returns 0, -BX_EINVAL (both NULL), -BX_ESTATE,
 * -BX_ENOMEM. */
int bx_server_add_extension(bx_server *srv, bx_ext_fn incoming, bx_ext_fn outgoing, void *arg);

/*
 * A session listener: called with added true when a handshake creates a
 * session (before the handshake reply is sent), and with added false when
 * it ends (disconnect, expiry, or shutdown in bx_server_stop()/free()). s is
 * valid during the call; take a reference to keep it.
 */
typedef void (*bx_session_fn)(void *arg, bx_session *s, bool added);

/* Registers a session listener. Returns 0, -BX_ESTATE, -BX_ENOMEM. */
int bx_server_add_session_listener(bx_server *srv, bx_session_fn fn, void *arg);

/* What the policy is asked about. */
enum bx_policy_op {
	BX_POLICY_HANDSHAKE = 0, /* s is NULL; channel "/meta/handshake" */
	BX_POLICY_SUBSCRIBE = 1, /* channel is one pattern of the subscription */
	BX_POLICY_PUBLISH = 2,   /* s is NULL for a backend's publish */
};

/*
 * The security policy: return true to allow. m is the handshake, subscribe
 * or publish message (read its ext for credentials). Called after incoming
 * extensions. Refusals answer 403::handshake_denied (advice
 * reconnect:"none"), 403:denied_by_security_policy:subscribe_denied or
 * 403:denied_by_security_policy:publish_denied. bx_publish() and
 * bx_deliver() are not checked.
 */
typedef bool (*bx_policy_fn)(void *arg, enum bx_policy_op op, bx_session *s, const char *channel,
                             const bx_message *m);

/* Sets the policy (one per server; a second call replaces the first).
 * Returns 0 or -BX_ESTATE. */
int bx_server_set_policy(bx_server *srv, bx_policy_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* BAYEUX_H */
