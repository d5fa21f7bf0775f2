/*
 * stream.h — Server-Sent Events streams in the core: a session sink that
 * frames what the session is sent as events (stream.c). transport: src/http/sse.c.
 */
#ifndef BX_STREAM_H
#define BX_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "session.h"
#include "waker.h"

struct bx_server;
typedef struct bx_stream bx_stream;

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
	bx_sink sink;        /* first: the session's s->sink points here */
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

#endif
