/*
 * session.h — one client's session: its queue of messages, its held
 * /meta/connect and its sink (an attached receiver that takes messages as
 * they come: an event stream today, a WebSocket next). The session table
 * that finds and removes sessions is table.h.
 *
 * A session is reference-counted: the table holds one reference while it is
 * registered, the timer heap one while it is in the heap, a held connect one,
 * and every request or publish that is working with it one.
 */
#ifndef BX_SESSION_H
#define BX_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "msg.h"
#include "timer.h"
#include "timesync.h"
#include "waker.h"

/* A client id: 22 base-62 characters, about 131 random bits (PROTOCOL.md §2). */
#define BX_ID_LEN 22

struct bx_server;
typedef struct bx_session bx_session;

typedef struct bx_gate bx_gate;

/* A /meta/connect parked until a wake, or (gate non-NULL) a complete reply
 * parked until the bus confirmed its subscriptions (gate.c). Owned by the
 * transport's request. */
typedef struct bx_hold {
	bx_session *session; /* one reference */
	bx_waker waker;
	int reason;                     /* enum bx_wake; set under the session lock */
	bool advise;                    /* the reply carries advice */
	bool browser_counted;           /* counted against the browser (browser.c) */
	int tr;                         /* its transport (enum bx_tr), for /metrics */
	int64_t deadline;               /* when the poll timeout releases it */
	char id_json[BX_MSGID_MAX + 8]; /* the request's id as JSON text, or "" */
	bx_timesync timesync;           /* the request's ext.timesync (timesync.h) */
	bx_gate *gate; /* a parked reply: its gate (one reference); session NULL */
	bx_buf body;   /* ... and the reply, complete */
} bx_hold;

/*
 * A sink: something attached to a session that sends its messages as they
 * are queued, with no request per delivery (an event stream, stream.c; a
 * WebSocket). A session has at most one; while it is attached no connect is
 * held and the sink keeps the session alive — unless `connects` is set: the
 * client sends its connects over the sink (a WebSocket), they are held as
 * over long polling (a queued message is pushed, not answered with them),
 * and the session's timer is the held connect's or its expiry, as with no
 * sink (deadline and timer unused). Every op is called with the session lock
 * held and may not take it again.
 */
typedef struct bx_sink bx_sink;
typedef struct bx_sink_ops {
	bool connects;                           /* see above */
	void (*kick)(bx_sink *k);                /* a message was queued */
	void (*end)(bx_sink *k, int reason);     /* detach and finish (enum bx_wake) */
	int64_t (*deadline)(const bx_sink *k);   /* when its timer is next due */
	void (*timer)(bx_sink *k, int64_t now);  /* that time came */
} bx_sink_ops;
struct bx_sink {
	const bx_sink_ops *ops;
};

struct bx_session {
	char id[BX_ID_LEN + 1];
	char browser[BX_ID_LEN + 1]; /* BAYEUX_BROWSER cookie at handshake, or "" */
	char peer[64];               /* client address counted at handshake (limits.c), or "" */
	atomic_uint refs;
	struct bx_server *srv;

	pthread_mutex_t lock; /* guards the fields down to `seq` */
	bx_msg **q;           /* ring of queued messages */
	size_t qhead, qlen, qcap;
	size_t dropped; /* dropped on overflow since the last delivery */
	bx_hold *hold;  /* the held connect, or NULL */
	bool connected; /* a first connect has been answered */
	bool removed;   /* no longer in the session table */
	bool multi;     /* last connect reply was multiple-clients advice (§4) */
	int64_t expiry; /* when the session expires unless a connect comes */
	bx_sink *sink;  /* the attached sink, or NULL */
	bool plain;     /* made by a plain SSE request, not a handshake */
	bx_msg **hist;  /* ring of messages sent on streams, for Last-Event-ID */
	size_t hhead, hlen, hcap;
	uint64_t seq; /* messages ever sent on this session's streams */
	struct bx_ackq *ack; /* the ack extension is on (ackq.h): messages wait
	                        there, not in q, until acknowledged; NULL: off */

	bx_timer_ent timer; /* guarded by the timer lock */

	/* Guarded by the router's write lock. */
	char **subs;
	size_t nsubs, subcap;
	bool unrouted; /* removed from the router for good: no new subscriptions */

	bx_session *next; /* hash chain, guarded by the table lock */
};

/* True when the session acknowledges deliveries (the ack extension,
 * PROTOCOL.md §8): every message then goes out with a /meta/connect reply
 * only. A sink (an event stream, a WebSocket) must not send messages itself
 * in ack mode; bx_session_deliver() wakes the held connect instead of
 * kicking it. Caller holds s->lock. */
static inline bool bx_session_ack_mode(const bx_session *s)
{
	return s->ack != NULL;
}
/* Turns the ack extension on for s (at handshake); false on OOM. */
bool bx_session_ack_enable(bx_session *s);

/* Fills out (size BX_ID_LEN + 1) with a fresh random base-62 id. */
void bx_random_id(char *out);

/* A new session (not registered) with one reference, or NULL on OOM. */
bx_session *bx_session_new(struct bx_server *srv, const char *browser);
void bx_session_ref(bx_session *s);
void bx_session_unref(bx_session *s);
/* Queues a message for s and wakes its sink or its held connect. Takes its
 * own reference to m. */
void bx_session_deliver(bx_session *s, bx_msg *m);
/* Writes every queued message into out, comma-separated with a leading comma
 * when `comma`; returns how many. Caller holds s->lock. */
size_t bx_session_drain_locked(bx_session *s, bx_buf *out, bool comma);
/* The same, stopping once about max bytes are written (at least one message
 * goes, whatever its size). Caller holds s->lock. */
size_t bx_session_drain_some_locked(bx_session *s, bx_buf *out, bool comma, size_t max);
/* Drops every queued and kept message. Caller holds s->lock. */
void bx_session_clear_locked(bx_session *s);
/* Recomputes and arms the session's single timer: the sink's deadline, the
 * held connect's, or the expiry. Caller holds s->lock. */
void bx_session_rearm_locked(bx_session *s);
/* Releases s->hold (if any) with reason. Caller holds s->lock. */
void bx_session_wake_locked(bx_session *s, int reason);
/* Ends s's sink (if any) with reason. Caller holds s->lock. */
void bx_session_end_sink_locked(bx_session *s, int reason);
/* The session's timer came: acts for its sink or held connect. Returns true
 * when the session has expired (the caller removes it). Caller holds no lock. */
bool bx_session_timer_fire(bx_session *s, int64_t now);

#endif
