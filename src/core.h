/*
 * core.h — the broker's core: sessions, the subscription router, timers and
 * the dispatcher. Nothing here knows HTTP (DESIGN: "the core knows no
 * HTTP"): a transport turns its wire into a bx_request, hands it to
 * bx_dispatch(), and gives the core a bx_waker to park and wake a held
 * /meta/connect.
 *
 * Lock order (outer first): table lock, router lock, session lock, timer
 * lock. No lock is held while calling into libmicrohttpd except a session
 * lock around the transport's suspend/resume (see bx_waker).
 */
#ifndef BX_CORE_H
#define BX_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bayeux.h"
#include "buf.h"

/* A client id: 22 base-62 characters, about 131 random bits (PROTOCOL.md §2). */
#define BX_ID_LEN 22
/* Longest message id we echo (a short string or a number, PROTOCOL.md §1). */
#define BX_MSGID_MAX 64
/* JSON nesting accepted in a request. */
#define BX_JSON_MAX_DEPTH 32

/* Connection types (PROTOCOL.md §2); a server enables a set of them. */
enum bx_conn_type {
	BX_CT_LONG_POLLING = 1 << 0,
	BX_CT_CALLBACK_POLLING = 1 << 1,
	BX_CT_EVENTSOURCE = 1 << 2, /* Server-Sent Events (stream.c, transport_sse.c) */
};

/*---- Shared serialized messages ------------------------------------------*/

/*
 * One published message, serialized once to its delivered JSON form and
 * shared, by reference, by every subscriber queue that holds it.
 */
typedef struct bx_msg {
	atomic_uint refs;
	size_t len;
	char data[];
} bx_msg;

/* A new message with one reference holding a copy of data, or NULL on OOM. */
bx_msg *bx_msg_new(const char *data, size_t len);
void bx_msg_ref(bx_msg *m);
void bx_msg_unref(bx_msg *m);

/*---- Held connects ---------------------------------------------------------*/

/* Why a held connect was released. */
enum bx_wake {
	BX_WAKE_NONE = 0,
	BX_WAKE_MESSAGE,    /* a message was queued */
	BX_WAKE_TIMEOUT,    /* the poll timeout passed */
	BX_WAKE_REPLACED,   /* a newer connect from the same client */
	BX_WAKE_DISCONNECT, /* the session ended (disconnect or removal) */
	BX_WAKE_SHUTDOWN,   /* the server is stopping */
	BX_WAKE_STREAM,     /* the session opened an event stream (a held
	                       connect gets its ordinary empty reply) */
	BX_WAKE_ROLLOVER,   /* a stream reached --sse-max-age or --sse-max-bytes */
};

/*
 * How a transport parks and wakes one request. suspend() is called once,
 * with the session lock held, when the core decides to hold the request;
 * resume() is called once, with the session lock held, when it is released.
 * Neither may call back into the core.
 */
typedef struct bx_waker {
	void (*suspend)(void *arg);
	void (*resume)(void *arg);
	void *arg;
} bx_waker;

typedef struct bx_session bx_session;
typedef struct bx_stream bx_stream;

/* A /meta/connect parked until a wake. Owned by the transport's request. */
typedef struct bx_hold {
	bx_session *session; /* one reference */
	bx_waker waker;
	int reason;                     /* enum bx_wake; set under the session lock */
	bool advise;                    /* the reply carries advice */
	bool browser_counted;           /* counted against the browser (browser.c) */
	int64_t deadline;               /* when the poll timeout releases it */
	char id_json[BX_MSGID_MAX + 8]; /* the request's id as JSON text, or "" */
} bx_hold;

/*---- Sessions --------------------------------------------------------------*/

struct bx_session {
	char id[BX_ID_LEN + 1];
	char browser[BX_ID_LEN + 1]; /* BAYEUX_BROWSER cookie at handshake, or "" */
	char peer[64];               /* client address counted at handshake (limits.c), or "" */
	atomic_uint refs;
	struct bx_server *srv;

	pthread_mutex_t lock; /* guards the fields down to `expiry` */
	bx_msg **q;           /* ring of queued messages */
	size_t qhead, qlen, qcap;
	size_t dropped; /* dropped on overflow since the last delivery */
	bx_hold *hold;  /* the held connect, or NULL */
	bool connected; /* a first connect has been answered */
	bool removed;   /* no longer in the session table */
	bool multi;     /* last connect reply was multiple-clients advice (§4) */
	int64_t expiry; /* when the session expires unless a connect comes */
	bx_stream *stream; /* the open event stream, or NULL (stream.c) */
	bool plain;        /* made by a plain SSE request, not a handshake */
	bx_msg **hist;     /* ring of messages sent on streams, for Last-Event-ID */
	size_t hhead, hlen, hcap;
	uint64_t seq; /* messages ever sent on this session's streams */

	/* Guarded by the timer lock. */
	size_t heap_idx; /* position in the timer heap, or SIZE_MAX */
	int64_t deadline;

	/* Guarded by the router's write lock. */
	char **subs;
	size_t nsubs, subcap;
	bool unrouted; /* removed from the router for good: no new subscriptions */

	bx_session *next; /* hash chain, guarded by the table lock */
};

void bx_session_ref(bx_session *s);
void bx_session_unref(bx_session *s);

typedef struct bx_table {
	pthread_rwlock_t lock;
	bx_session **buckets;
	size_t nbuckets, count;
} bx_table;

/* Creates and registers a session; NULL on OOM or when the limit is reached
 * (*full is then set). The result carries one reference for the caller. */
bx_session *bx_session_create(struct bx_server *srv, const char *browser, bool *full);
/* Finds a session by client id and takes a reference, or NULL. */
bx_session *bx_session_find(struct bx_server *srv, const char *id, size_t len);
/* Unregisters a session: unsubscribes it, drops its queue, releases its held
 * connect with `reason`. Safe to call twice. */
void bx_session_remove(struct bx_server *srv, bx_session *s, int reason);
/* Queues a message for s and wakes its held connect. Takes its own reference
 * to m. */
void bx_session_deliver(bx_session *s, bx_msg *m);
/* Writes every queued message into out, comma-separated with a leading comma
 * when `comma`; returns how many. Caller holds s->lock. */
size_t bx_session_drain_locked(bx_session *s, bx_buf *out, bool comma);
/* Recomputes and arms the session's single timer. Caller holds s->lock. */
void bx_session_rearm_locked(bx_session *s);
/* Releases s->hold (if any) with reason. Caller holds s->lock. */
void bx_session_wake_locked(bx_session *s, int reason);
/* Calls fn on every session (holding a reference), e.g. at shutdown. */
void bx_session_foreach(struct bx_server *srv, void (*fn)(bx_session *, void *), void *arg);
void bx_table_init(bx_table *t);
void bx_table_destroy(struct bx_server *srv);
size_t bx_session_count(struct bx_server *srv);

/*---- Event streams (stream.c) -----------------------------------------------*/

/*
 * A Server-Sent Events stream: one response that stays open and carries many
 * events (seed §3, §4.3). A session has at most one; while it is open,
 * bx_session_deliver() queues as always and wakes the stream instead of a
 * held connect, and no connect is held. The transport's content reader calls
 * bx_stream_fill() and sends what it wrote into `out`; when there is nothing
 * to send the stream suspends (waker) until a message, a heartbeat or its end.
 * Each message gets the next number of the session's `seq`; a stream sent
 * to a client keeps the last --sse-replay of them so that a reconnecting
 * client's Last-Event-ID gets what it missed.
 */
struct bx_stream {
	bx_session *session; /* one reference */
	bx_waker waker;
	bool plain; /* one event per message, ids "<clientId>-<n>"; else one
	               event per batch, data a JSON array, ids "<n>" (Faye) */
	/* Guarded by the session lock. */
	bool parked;          /* suspended: resume on a message, a beat, the end */
	bool beat_due;        /* the timer asks for a heartbeat */
	bool browser_counted; /* counted against the browser (browser.c) */
	int reason;           /* enum bx_wake: why it ends; BX_WAKE_NONE while open */
	int64_t next_beat;    /* when a heartbeat is due unless an event goes first */
	int64_t end_at;       /* --sse-max-age; INT64_MAX: never */
	/* Only the transport's thread (the content reader) touches these. */
	bool started;      /* the opening retry: field was written */
	bool resume;       /* replay what came after resume_after first */
	uint64_t resume_after;
	size_t sent;       /* bytes of events written, for --sse-max-bytes */
	bx_buf out;        /* written by bx_stream_fill(), sent from `off` on */
	size_t off;
};

enum bx_stream_fill_result {
	BX_STREAM_DATA, /* out holds bytes to send */
	BX_STREAM_WAIT, /* nothing now: the stream suspended itself */
	BX_STREAM_END,  /* the stream is over: end the response */
};

enum bx_stream_open_result {
	BX_STREAM_OPENED = 0,
	BX_STREAM_GONE,  /* the session ended meanwhile */
	BX_STREAM_BUSY,  /* the browser holds --max-sessions-per-browser already */
	BX_STREAM_NOMEM,
};

/* Opens a stream for s (the caller keeps its own reference) and makes it the
 * session's stream: a held connect is released (BX_WAKE_STREAM), an older
 * stream ends (BX_WAKE_REPLACED). last_id is the client's Last-Event-ID
 * number (has_last_id false: none). Returns enum bx_stream_open_result and
 * sets *out on BX_STREAM_OPENED. */
int bx_stream_open(struct bx_server *srv, bx_session *s, bool plain, bool has_last_id,
                   uint64_t last_id, bx_waker waker, bx_stream **out);
/* Writes what is due into st->out (after the unsent rest, if any). Returns
 * enum bx_stream_fill_result; on BX_STREAM_WAIT it called waker.suspend(). */
int bx_stream_fill(struct bx_server *srv, bx_stream *st);
/* The transport is done with st (response freed): detaches and frees it. */
void bx_stream_close(struct bx_server *srv, bx_stream *st);
/* Ends s's stream (if any) with reason, waking it to finish. Caller holds
 * s->lock. */
void bx_stream_end_locked(bx_session *s, int reason);
/* Wakes s's stream if it is parked: a message was queued. Caller holds
 * s->lock. */
void bx_stream_kick_locked(bx_session *s);
/* The timer's due time for an open stream: its next heartbeat or its end. */
int64_t bx_stream_deadline(const bx_stream *st);
/* The timer came for s's stream: asks for a heartbeat or ends it (age).
 * Caller holds s->lock. */
void bx_stream_timer_locked(bx_session *s, int64_t now);
/* Frees the session's replay ring. Caller holds s->lock (or the last
 * reference). */
void bx_stream_history_free(bx_session *s);

/*---- Router ----------------------------------------------------------------*/

typedef struct bx_rnode bx_rnode;

typedef struct bx_router {
	pthread_rwlock_t lock;
	bx_rnode *root;
} bx_router;

/* A set of sessions collected by a match, each with one reference. */
typedef struct bx_sessvec {
	bx_session **v;
	size_t n, cap;
} bx_sessvec;

int bx_router_init(bx_router *r);
void bx_router_destroy(bx_router *r);
/* Subscribes s to pattern (a valid channel name or wildcard). Returns 0,
 * -BX_ENOMEM, -BX_ESTATE when s was removed meanwhile, or -BX_EREJECTED
 * when s holds --max-subscriptions already. Subscribing twice is a no-op. */
int bx_router_subscribe(bx_router *r, bx_session *s, const char *pattern, size_t len);
/* Removes one subscription; returns true when s had it. */
bool bx_router_unsubscribe(bx_router *r, bx_session *s, const char *pattern, size_t len);
/* Removes all of s's subscriptions and refuses any later one (removal). */
void bx_router_unsubscribe_all(bx_router *r, bx_session *s);
/* Collects every session subscribed to a pattern matching channel, once each,
 * into out (each with a reference; free with bx_sessvec_release). */
void bx_router_match(bx_router *r, const char *channel, size_t len, bx_sessvec *out);
void bx_sessvec_release(bx_sessvec *v);
/* True when no subscription is left and every branch was freed. */
bool bx_router_is_empty(bx_router *r);

/*---- Timers ----------------------------------------------------------------*/

/* One min-heap of sessions ordered by their deadline: a session is in it at
 * most once, for its held connect's timeout or else its expiry. */
typedef struct bx_timer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bx_session **heap;
	size_t n, cap;
	bool stop;
} bx_timer;

void bx_timer_init(bx_timer *t);
void bx_timer_destroy(bx_timer *t);
/* Puts s in the heap at deadline (or moves it there). Takes a reference the
 * first time. */
void bx_timer_set(struct bx_server *srv, bx_session *s, int64_t deadline);
void bx_timer_cancel(struct bx_server *srv, bx_session *s);
/* Handles every entry due at or before now; returns the next deadline, or
 * INT64_MAX when none. The timer thread calls this; unit tests call it
 * with a fake clock. */
int64_t bx_timer_run(struct bx_server *srv, int64_t now);
int bx_timer_start(struct bx_server *srv);
void bx_timer_join(struct bx_server *srv);

/*---- Held connects per browser (browser.c, PROTOCOL.md §4) -----------------*/

struct bx_browser_ent;

/* Held connects per BAYEUX_BROWSER id; its lock is taken after a session's. */
typedef struct bx_browsers {
	pthread_mutex_t lock;
	struct bx_browser_ent **buckets;
	size_t nbuckets, count;
} bx_browsers;

enum bx_browser_hold_result {
	BX_BROWSER_UNCOUNTED = 0, /* no browser id, no limit, or OOM: hold uncounted */
	BX_BROWSER_COUNTED,       /* counted: call bx_browser_release() when it ends */
	BX_BROWSER_FULL,          /* the browser holds its limit already: do not hold */
};

void bx_browsers_init(bx_browsers *b);
void bx_browsers_destroy(bx_browsers *b);
/* Counts one more held connect for browser unless it is at the limit
 * (cfg.max_sessions_per_browser; 0 = no limit). Returns enum
 * bx_browser_hold_result. */
int bx_browser_hold(struct bx_server *srv, const char *browser);
/* Uncounts a held connect counted by bx_browser_hold(). */
void bx_browser_release(struct bx_server *srv, const char *browser);
/* Held connects counted for browser now (for tests and stats). */
unsigned bx_browser_held(struct bx_server *srv, const char *browser);

/*---- The server ------------------------------------------------------------*/

struct bx_http;

typedef struct bx_stats {
	atomic_uint_fast64_t handshakes, publishes, deliveries, dropped, expired;
	atomic_uint_fast64_t held_now;
	atomic_uint_fast64_t streams_now; /* event streams whose response is alive */
} bx_stats;

struct bx_server {
	bx_config cfg; /* string fields point at our copies below */
	char *host, *path;
	unsigned conn_types; /* enabled enum bx_conn_type bits */

	int64_t (*now)(void *arg); /* milliseconds on a monotonic clock */
	void *now_arg;

	bx_table sessions;
	bx_router router;
	bx_timer timer;
	bx_browsers browsers;
	pthread_t timer_thread;
	bool timer_started;

	atomic_bool stopping;
	atomic_bool stopped;
	struct bx_http *http;
	struct bx_cors *cors;  /* allowed origins (cors.c), or NULL: none */
	struct bx_static *web; /* static file folders (static.c), or NULL: none */
	bx_stats stats;

	char *publish_token; /* our copy of cfg.publish_token, or NULL */
	struct bx_api *api;  /* hooks of the embedding program (api.h), or NULL */
	struct bx_peers *peers; /* limits per client address (limits.c) */
};

/* Milliseconds on CLOCK_MONOTONIC: the default clock. */
int64_t bx_clock_monotonic(void *arg);
static inline int64_t bx_now(struct bx_server *srv)
{
	return srv->now(srv->now_arg);
}

/* Fills out (size BX_ID_LEN + 1) with a fresh random base-62 id. */
void bx_random_id(char *out);

/*---- Dispatch: one request's batch of messages ------------------------------*/

typedef struct bx_request {
	const char *body; /* the JSON text (not necessarily NUL-terminated) */
	size_t len;
	const char *browser; /* BAYEUX_BROWSER cookie value, or NULL */
	unsigned transport;  /* enum bx_conn_type of the wire it came on */
	bx_waker waker;      /* how to hold it; suspend NULL = never hold */
	/* The transport authorized this request to publish with no clientId
	 * (a backend: bearer token or allowed loopback; PROTOCOL.md §5). */
	bool backend;
	const char *peer; /* the client's address as text, or NULL: no limits per
	                     address (limits.c) */
} bx_request;

typedef struct bx_response {
	int status;                      /* HTTP status */
	bx_buf body;                     /* a JSON array for 200; a short text otherwise */
	bx_hold *hold;                   /* non-NULL: held; call bx_hold_finish once resumed */
	char set_browser[BX_ID_LEN + 1]; /* non-empty: set this BAYEUX_BROWSER cookie */
} bx_response;

void bx_response_init(bx_response *res);
void bx_response_free(bx_response *res);

/* Processes one request. On return res is either complete (hold NULL) or
 * the request was parked (hold non-NULL, transport suspended). */
void bx_dispatch(struct bx_server *srv, const bx_request *req, bx_response *res);
/* Builds the reply of a released hold into res and frees the hold. */
void bx_hold_finish(struct bx_server *srv, bx_hold *hold, bx_response *res);
/* Frees a hold whose transport went away (released or never resumed). */
void bx_hold_abandon(struct bx_server *srv, bx_hold *hold);

/* Publishes a serialized message to every subscriber of channel; returns the
 * number of sessions it was queued for. */
size_t bx_broadcast(struct bx_server *srv, const char *channel, size_t len, bx_msg *m);

/*---- The HTTP transports (http.c) ------------------------------------------*/

/* Longest JSONP callback name accepted (PROTOCOL.md §6). */
#define BX_JSONP_CALLBACK_MAX 64

/* True when name is a JSONP callback we call: at most 64 characters of
 * [A-Za-z0-9_$.], not starting with a digit or '.'. */
bool bx_jsonp_callback_ok(const char *name);
/* Appends the callback-polling body (a comment, then name(json);) to out,
 * with U+2028 and U+2029 escaped (transport_callback.c). */
void bx_jsonp_wrap(bx_buf *out, const char *name, const char *json, size_t len);

/* Copies and checks cfg's allowed origins into srv->cors; 0, -BX_EINVAL
 * (logged) or -BX_ENOMEM. bx_cors_free() undoes it, also after a failure. */
int bx_cors_init(struct bx_server *srv, const bx_config *cfg);
void bx_cors_free(struct bx_server *srv);
/* True when a page of origin (the request's Origin header) may read our
 * replies cross-origin. */
bool bx_cors_allowed(const struct bx_server *srv, const char *origin);

/* Resolves and copies cfg's web root and mounts into srv->web; 0,
 * -BX_EINVAL (logged: not a folder) or -BX_ENOMEM. bx_static_free() undoes
 * it, also after a failure. */
int bx_static_init(struct bx_server *srv, const bx_config *cfg);
void bx_static_free(struct bx_server *srv);

int bx_http_start(struct bx_server *srv);
unsigned bx_http_port(struct bx_server *srv);
/* Stops accepting; returns once held replies were sent or ~1.5 s passed. */
void bx_http_quiesce(struct bx_server *srv);
void bx_http_stop(struct bx_server *srv);

#endif
