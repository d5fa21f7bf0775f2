/*
 * ws_loop.c — upgraded WebSocket sockets: a few epoll loops (no thread per
 * socket), RFC 6455 framing by wslay, and the glue to the core.
 *
 * A socket (ws_conn) belongs to one loop and is only touched by that loop's
 * thread, except for `rflags`/`queued`/`rnext`, which other threads set under
 * the loop's lock to ask for work: a message was queued for the session the
 * socket is the sink of (kick), a held /meta/connect of the socket was
 * released (hold), the session ended (end). They are called under a
 * session lock, so the loop never takes a session lock while holding its
 * own lock (order: session, then loop).
 *
 * Each text frame is one batch for bx_dispatch() (transport
 * BX_CT_WEBSOCKET); its replies go back as one text frame. A held connect is
 * a bx_hold whose waker marks it released and wakes the loop, which then
 * builds its reply with bx_hold_finish(). While the socket is its session's
 * sink, a queued message is pushed at once: everything queued goes in one
 * frame, a JSON array. Unsent bytes are capped (--ws-max-pending): past the
 * cap the socket is closed with 1008 and the session keeps queueing for the
 * client's reconnect. Idle sockets get a ping after --ws-ping; one with no
 * traffic for another --ws-ping is dropped.
 *
 * Memory: wslay's context is ~9 KiB (two 4 KiB buffers), more than all the
 * rest of an idle socket and its session; a socket idle for a second at a
 * frame boundary (every byte given to wslay belongs to a complete frame,
 * counted with wslay's frame callbacks, no fragmented message open, nothing
 * queued, not closing) frees it, and the next byte in or out makes a new one.
 *
 * Closing: after a close frame is sent (ours or the echo of the peer's) the
 * write side is shut down and the socket lingers (reading and discarding)
 * until the peer's EOF or a second, so that the peer reads our close frame
 * rather than a reset.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <json-c/json.h>
#include <wslay/wslay.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "core/dispatch.h"
#include "core/json.h"
#include "core/log.h"
#include "core/server.h"
#include "core/session.h"
#include "core/stats.h"
#include "core/table.h"
#include "http/websocket.h"

/* Requests for the loop, set in rflags under the loop's lock. */
enum {
	F_NEW = 1 << 0,  /* adopted: register with epoll, read the extra bytes */
	F_KICK = 1 << 1, /* messages were queued for the session */
	F_HOLD = 1 << 2, /* a held connect was released */
	F_END = 1 << 3,  /* the session ended: unbind (shutdown: close) */
	F_DEAD = 1 << 4, /* freed while queued: free when popped */
};

#define LINGER_MS    1000
#define CLOSE_WAIT_MS 2000
#define FRAME_MAX    (256 * 1024) /* most bytes of queued messages per pushed frame */

typedef struct ws_loop ws_loop;
typedef struct ws_conn ws_conn;

/* One /meta/connect of this socket held by the core. */
typedef struct ws_hold {
	ws_conn *conn;
	bx_hold *hold;        /* set when bx_dispatch returns it */
	atomic_bool released; /* set by the waker (any thread, session lock) */
	struct ws_hold *next;
} ws_hold;

struct ws_conn {
	ws_loop *loop;
	int fd;
	wslay_event_context_ptr ctx; /* NULL while idle (shed: see ctx_shed) */
	uint64_t bytes_in;   /* bytes handed to wslay */
	uint64_t bytes_done; /* bytes of the complete frames it parsed */
	uint64_t frame_len;  /* header + payload of the frame being read */
	bool in_msg;         /* a fragmented message is not complete */
	int64_t last_io;     /* last byte in or out */
	uint8_t stash[16];   /* a frame header wslay sent with "more" to come: it */
	uint8_t stash_len;   /* goes out in one sendmsg() with the payload */
	bx_ws_peer peer; /* strings point into the fields below */
	char browser[BX_ID_LEN + 1];
	char addr[64];
	unsigned char *extra; /* bytes read by libmicrohttpd after the header */
	size_t extra_len, extra_off;

	bx_session *session; /* bound session (a reference), or NULL */
	bx_sink sink;        /* our sink, attached to `session` while bound */
	int end_reason;      /* enum bx_wake from the sink's end (loop lock) */
	ws_hold *holds;

	/* Guarded by the loop's lock. */
	unsigned rflags;
	bool queued;
	ws_conn *rnext;

	/* Loop thread only. */
	ws_conn *prev, *next;
	uint32_t events; /* epoll interest registered */
	int64_t last_rx, ping_at;
	bool ping_out;
	bool closing;  /* a close frame is queued: the socket goes once it is sent */
	int64_t close_deadline;
	bool lingering;
	int64_t linger_deadline;
	bool eof;
};

struct ws_loop {
	bx_ws *ws;
	int epfd, evfd;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	ws_conn *ready; /* conns with rflags, newest first */
	bool stop;
	bool close_all; /* shutdown: close every socket (1001) */
	/* Loop thread only. */
	ws_conn *all;
	size_t count;
	bx_buf out;
	int64_t next_scan;
};

struct bx_ws {
	bx_server *srv;
	unsigned nloops;
	atomic_uint next;
	atomic_size_t count;
	atomic_size_t contexts; /* wslay contexts alive (the others were shed) */
	atomic_bool closing_all;
	ws_loop loops[];
};

static void conn_free(ws_conn *c);
static void conn_flush(ws_conn *c);
static void conn_push(ws_conn *c);
static wslay_event_context_ptr ctx_get(ws_conn *c);

/*---- Cross-thread requests ------------------------------------------------------*/

static void loop_wake(ws_loop *l)
{
	uint64_t one = 1;
	ssize_t r = write(l->evfd, &one, sizeof one);
	(void)r; /* the counter only saturates; the loop wakes either way */
}

static void loop_post(ws_conn *c, unsigned flags)
{
	ws_loop *l = c->loop;
	pthread_mutex_lock(&l->lock);
	c->rflags |= flags;
	bool wake = false;
	if (!c->queued) {
		c->queued = true;
		wake = l->ready == NULL;
		c->rnext = l->ready;
		l->ready = c;
	}
	pthread_mutex_unlock(&l->lock);
	if (wake)
		loop_wake(l);
}

/*---- The core's side: our sink and the waker of held connects ------------------*/

#define CONN_OF_SINK(sk) ((ws_conn *)(void *)((char *)(sk) - offsetof(ws_conn, sink)))

static void sink_kick(bx_sink *sk)
{
	loop_post(CONN_OF_SINK(sk), F_KICK);
}

/* Detach (the session's lock is held) and let the loop unbind. */
static void sink_end(bx_sink *sk, int reason)
{
	ws_conn *c = CONN_OF_SINK(sk);
	ws_loop *l = c->loop;
	if (c->session && c->session->sink == sk)
		c->session->sink = NULL;
	pthread_mutex_lock(&l->lock);
	c->end_reason = reason;
	pthread_mutex_unlock(&l->lock);
	loop_post(c, F_END);
}

/* Connects come over the socket and are held as over long polling: the
 * session's timer stays the held connect's or its expiry (session.h). */
static const bx_sink_ops ws_sink_ops = {
        .connects = true,
        .kick = sink_kick,
        .end = sink_end,
};

static bool bx_sink_attached_locked(const bx_session *s, const bx_sink *k)
{
	return s->sink == k;
}

/* One sink a session: an older one (a stream, another socket) ends. */
static void bx_sink_attach_locked(bx_session *s, bx_sink *k)
{
	if (s->sink && s->sink != k)
		bx_session_end_sink_locked(s, BX_WAKE_REPLACED);
	s->sink = k;
}

static void bx_sink_detach_locked(bx_session *s, bx_sink *k)
{
	if (s->sink == k)
		s->sink = NULL;
}

static void hold_suspend(void *arg)
{
	(void)arg; /* nothing to do: the socket keeps being served */
}

static void hold_resume(void *arg)
{
	ws_hold *wh = arg;
	atomic_store(&wh->released, true);
	loop_post(wh->conn, F_HOLD);
}

/* Makes the socket the sink of s (taking a reference), after unbinding
 * from its previous session. Queued messages are pushed at once. */
static void conn_bind(ws_conn *c, bx_session *s)
{
	if (c->session == s)
		return;
	if (c->session) {
		bx_session *old = c->session;
		pthread_mutex_lock(&old->lock);
		bx_sink_detach_locked(old, &c->sink);
		pthread_mutex_unlock(&old->lock);
		bx_session_unref(old);
		c->session = NULL;
	}
	pthread_mutex_lock(&s->lock);
	if (s->removed) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	bx_session_ref(s);
	c->session = s;
	bx_sink_attach_locked(s, &c->sink);
	bool queued = s->qlen > 0;
	pthread_mutex_unlock(&s->lock);
	bx_debug("session %.6s…: bound to a WebSocket", s->id);
	if (queued) /* now: before the reply of the batch that bound it */
		conn_push(c);
}

static void conn_unbind(ws_conn *c)
{
	bx_session *s = c->session;
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	bx_sink_detach_locked(s, &c->sink);
	pthread_mutex_unlock(&s->lock);
	bx_session_unref(s);
	c->session = NULL;
}

/*---- Output ---------------------------------------------------------------------*/

static void conn_queue_text(ws_conn *c, const char *p, size_t len)
{
	struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)p, len};
	if (!ctx_get(c) || wslay_event_queue_msg(c->ctx, &m) != 0)
		bx_debug("WebSocket: a frame could not be queued (closing)");
}

static void conn_close_with(ws_conn *c, uint16_t code, const char *reason)
{
	if (c->closing)
		return;
	c->closing = true;
	c->close_deadline = bx_now(c->loop->ws->srv) + CLOSE_WAIT_MS;
	if (!ctx_get(c)) {
		c->eof = true; /* no memory for a close frame: just go */
		return;
	}
	wslay_event_queue_close(c->ctx, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
	wslay_event_shutdown_read(c->ctx);
}

/* Pushes what is queued for the bound session, unless too much is unsent. */
static void conn_push(ws_conn *c)
{
	bx_session *s = c->session;
	bx_server *srv = c->loop->ws->srv;
	if (!s || c->closing)
		return;
	size_t pending = c->ctx ? wslay_event_get_queued_msg_length(c->ctx) : 0;
	bx_buf *o = &c->loop->out;
	o->len = 0;
	bool more = false;
	pthread_mutex_lock(&s->lock);
	if (!bx_sink_attached_locked(s, &c->sink) || s->qlen == 0) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	if (pending >= srv->cfg.ws_max_pending) {
		/* The client does not read: keep the rest for its reconnect. */
		bx_sink_detach_locked(s, &c->sink);
		pthread_mutex_unlock(&s->lock);
		bx_info("session %.6s…: %zu bytes unsent on its WebSocket (--ws-max-pending): "
		        "closing it (1008)",
		        s->id, pending);
		conn_close_with(c, 1008, "too many unsent bytes");
		return;
	}
	bx_buf_putc(o, '[');
	size_t n = bx_session_drain_some_locked(s, o, false, FRAME_MAX);
	more = s->qlen > 0;
	pthread_mutex_unlock(&s->lock);
	bx_buf_putc(o, ']');
	if (n && !o->failed)
		conn_queue_text(c, o->data, o->len);
	if (o->cap > 4 * FRAME_MAX) {
		bx_buf_free(o);
		bx_buf_init(o);
	}
	if (more)
		loop_post(c, F_KICK); /* after what is ready on other sockets */
}

/* Sends the replies of released holds. */
static void conn_finish_holds(ws_conn *c)
{
	bx_server *srv = c->loop->ws->srv;
	ws_hold **pp = &c->holds;
	while (*pp) {
		ws_hold *wh = *pp;
		if (!wh->hold || !atomic_load(&wh->released)) {
			pp = &wh->next;
			continue;
		}
		*pp = wh->next;
		bx_response res;
		bx_response_init(&res);
		bx_hold_finish(srv, wh->hold, &res);
		/* A replaced connect gets nothing: the newer one answers (its
		 * HTTP 500 is for long polling). */
		if (res.status == 200 && !c->closing)
			conn_queue_text(c, res.body.data, res.body.len);
		bx_response_free(&res);
		free(wh);
	}
}

/*---- Input ----------------------------------------------------------------------*/

/* The clientId of the first message of a batch, or NULL. Points into obj. */
static const char *first_client_id(json_object *obj, bool *handshake)
{
	json_object *m = obj;
	*handshake = false;
	if (json_object_is_type(obj, json_type_array)) {
		size_t n = json_object_array_length(obj);
		const char *id = NULL;
		for (size_t i = 0; i < n; i++) {
			json_object *e = json_object_array_get_idx(obj, i), *v;
			if (!json_object_is_type(e, json_type_object))
				continue;
			if (json_object_object_get_ex(e, "channel", &v) &&
			    json_object_is_type(v, json_type_string) &&
			    strcmp(json_object_get_string(v), "/meta/handshake") == 0)
				*handshake = true;
			if (!id && json_object_object_get_ex(e, "clientId", &v) &&
			    json_object_is_type(v, json_type_string))
				id = json_object_get_string(v);
		}
		return id;
	}
	json_object *v;
	if (!json_object_is_type(m, json_type_object))
		return NULL;
	if (json_object_object_get_ex(m, "channel", &v) && json_object_is_type(v, json_type_string) &&
	    strcmp(json_object_get_string(v), "/meta/handshake") == 0)
		*handshake = true;
	if (json_object_object_get_ex(m, "clientId", &v) && json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

/* The clientId of a successful handshake reply in a reply array, or NULL. */
static bx_session *handshake_session(bx_server *srv, const char *body, size_t len)
{
	size_t end;
	enum json_tokener_error err;
	json_object *arr = bx_json_parse(body, len, &end, &err);
	bx_session *s = NULL;
	if (arr && json_object_is_type(arr, json_type_array)) {
		size_t n = json_object_array_length(arr);
		for (size_t i = 0; i < n && !s; i++) {
			json_object *e = json_object_array_get_idx(arr, i), *ch, *ok, *id;
			if (json_object_object_get_ex(e, "channel", &ch) &&
			    json_object_is_type(ch, json_type_string) &&
			    strcmp(json_object_get_string(ch), "/meta/handshake") == 0 &&
			    json_object_object_get_ex(e, "successful", &ok) &&
			    json_object_get_boolean(ok) &&
			    json_object_object_get_ex(e, "clientId", &id) &&
			    json_object_is_type(id, json_type_string))
				s = bx_session_find(srv, json_object_get_string(id),
				                    (size_t)json_object_get_string_len(id));
		}
	}
	json_object_put(arr);
	return s;
}

/* One text message: a batch for the core. */
static void conn_text(ws_conn *c, const uint8_t *msg, size_t len)
{
	bx_server *srv = c->loop->ws->srv;
	bool handshake = false;
	bool unbound = !c->session;
	if (c->session) {
		pthread_mutex_lock(&c->session->lock);
		unbound = c->session->removed || !bx_sink_attached_locked(c->session, &c->sink);
		pthread_mutex_unlock(&c->session->lock);
	}
	/* Until bound (a reconnect's first message), and for handshakes, find
	 * out which session the batch is for. */
	if (unbound || memmem(msg, len, "/meta/handshake", 15)) {
		size_t end;
		enum json_tokener_error err;
		json_object *obj = bx_json_parse((const char *)msg, len, &end, &err);
		if (obj) {
			const char *id = first_client_id(obj, &handshake);
			if (id && !handshake) {
				bx_session *s = bx_session_find(srv, id, strlen(id));
				if (s) {
					conn_bind(c, s);
					bx_session_unref(s);
				}
			}
			json_object_put(obj);
		}
	}

	ws_hold *wh = calloc(1, sizeof *wh);
	if (!wh) {
		conn_close_with(c, 1011, "out of memory");
		return;
	}
	wh->conn = c;
	bx_request req = {
	        .body = (const char *)msg,
	        .len = len,
	        .browser = c->peer.browser,
	        .transport = BX_CT_WEBSOCKET,
	        .waker = {.suspend = hold_suspend, .resume = hold_resume, .arg = wh},
	        .backend = c->peer.backend,
	        .peer = c->peer.addr,
	};
	bx_response res;
	bx_response_init(&res);
	bx_dispatch(srv, &req, &res);
	if (res.hold) {
		wh->hold = res.hold;
		wh->next = c->holds;
		c->holds = wh;
		wh = NULL;
	} else {
		free(wh);
	}
	if (res.status == 200) {
		if (res.body.len > 2 && !c->closing)
			conn_queue_text(c, res.body.data, res.body.len);
		if (handshake) {
			bx_session *s = handshake_session(srv, res.body.data, res.body.len);
			if (s) {
				conn_bind(c, s);
				bx_session_unref(s);
			}
		}
	} else {
		/* What HTTP answers with a status and a text (malformed JSON, a
		 * batch too large): the same text as an error, the socket stays. */
		bx_buf e;
		bx_buf_init(&e);
		size_t tl = res.body.len;
		while (tl && (res.body.data[tl - 1] == '\n' || res.body.data[tl - 1] == '\r'))
			tl--;
		bx_buf_printf(&e, "[{\"successful\":false,\"error\":");
		bx_buf tmp;
		bx_buf_init(&tmp);
		bx_buf_printf(&tmp, "%d::", res.status);
		bx_buf_append(&tmp, res.body.data ? res.body.data : "", tl);
		bx_buf_json_str(&e, tmp.data ? tmp.data : "", tmp.len);
		bx_buf_puts(&e, "}]");
		if (!e.failed && !c->closing)
			conn_queue_text(c, e.data, e.len);
		bx_buf_free(&tmp);
		bx_buf_free(&e);
	}
	bx_response_free(&res);
	/* A connect may have replaced one of ours: its reply is ready. */
	conn_finish_holds(c);
}

/*---- wslay callbacks ------------------------------------------------------------*/

static ssize_t cb_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
	(void)flags;
	ws_conn *c = user;
	if (c->extra_off < c->extra_len) {
		size_t n = c->extra_len - c->extra_off;
		if (n > len)
			n = len;
		memcpy(buf, c->extra + c->extra_off, n);
		c->extra_off += n;
		if (c->extra_off == c->extra_len) {
			free(c->extra);
			c->extra = NULL;
			c->extra_len = c->extra_off = 0;
		}
		c->bytes_in += n;
		return (ssize_t)n;
	}
	ssize_t r = recv(c->fd, buf, len, 0);
	if (r > 0) {
		c->bytes_in += (uint64_t)r;
		bx_metric_add(&c->loop->ws->srv->stats.m.bytes_in, (uint64_t)r);
		return r;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	c->eof = true;
	wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static ssize_t cb_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
	ws_conn *c = user;
	/* wslay sends a frame's header, then its payload: one system call for
	 * both (the header is kept and reported sent; it goes first). */
	if (c->stash_len == 0 && (flags & WSLAY_MSG_MORE) && len <= sizeof c->stash) {
		memcpy(c->stash, data, len);
		c->stash_len = (uint8_t)len;
		return (ssize_t)len;
	}
	struct iovec iov[2];
	int n = 0;
	if (c->stash_len)
		iov[n++] = (struct iovec){c->stash, c->stash_len};
	iov[n++] = (struct iovec){(void *)data, len};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	ssize_t r = sendmsg(c->fd, &mh,
	                    MSG_NOSIGNAL | MSG_DONTWAIT | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0));
	if (r < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		else {
			c->eof = true;
			wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		}
		return -1;
	}
	if ((size_t)r < c->stash_len) {
		bx_metric_add(&c->loop->ws->srv->stats.m.bytes_out, (uint64_t)r);
		memmove(c->stash, c->stash + r, c->stash_len - (size_t)r);
		c->stash_len = (uint8_t)(c->stash_len - r);
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	bx_metric_add(&c->loop->ws->srv->stats.m.bytes_out, (uint64_t)r);
	r -= c->stash_len;
	c->stash_len = 0;
	if (r == 0 && len > 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	return r;
}

/* Sends a kept header that no payload followed; false when the socket
 * failed. */
static bool stash_flush(ws_conn *c)
{
	while (c->stash_len) {
		ssize_t r = send(c->fd, c->stash, c->stash_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		memmove(c->stash, c->stash + r, c->stash_len - (size_t)r);
		c->stash_len = (uint8_t)(c->stash_len - r);
	}
	return true;
}

static void cb_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
	(void)ctx;
	ws_conn *c = user;
	switch (arg->opcode) {
	case WSLAY_TEXT_FRAME:
		if (!c->closing)
			conn_text(c, arg->msg, arg->msg_length);
		break;
	case WSLAY_BINARY_FRAME:
		conn_close_with(c, 1003, "binary frames are not accepted: send JSON text");
		break;
	case WSLAY_CONNECTION_CLOSE:
		/* wslay queued the echo; the socket goes once it is sent. */
		if (!c->closing) {
			c->closing = true;
			c->close_deadline = bx_now(c->loop->ws->srv) + CLOSE_WAIT_MS;
		}
		break;
	default:
		break; /* ping answered by wslay; pong: liveness noted below */
	}
}

/* Frame accounting for ctx_shed(): the header's length as the client must
 * encode it (shortest form, masked); a longer encoding only makes us count
 * fewer bytes done, never more. */
static void cb_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
	(void)ctx;
	ws_conn *c = user;
	uint64_t n = arg->payload_length;
	c->frame_len = 2 + (n < 126 ? 0 : n <= 0xffff ? 2 : 8) + 4 + n;
	if (!(arg->opcode & 0x8)) /* data frames: a message ends with FIN */
		c->in_msg = !arg->fin;
}

static void cb_frame_end(wslay_event_context_ptr ctx, void *user)
{
	(void)ctx;
	ws_conn *c = user;
	c->bytes_done += c->frame_len;
	c->frame_len = 0;
}

static const struct wslay_event_callbacks ws_callbacks = {
        .recv_callback = cb_recv,
        .send_callback = cb_send,
        .on_frame_recv_start_callback = cb_frame_start,
        .on_frame_recv_end_callback = cb_frame_end,
        .on_msg_recv_callback = cb_msg,
};

/* The socket's wslay context, made if it was shed; NULL on OOM. */
static wslay_event_context_ptr ctx_get(ws_conn *c)
{
	if (c->ctx)
		return c->ctx;
	if (wslay_event_context_server_init(&c->ctx, &ws_callbacks, c) != 0) {
		c->ctx = NULL;
		return NULL;
	}
	wslay_event_config_set_max_recv_msg_length(c->ctx, c->loop->ws->srv->cfg.max_body);
	atomic_fetch_add(&c->loop->ws->contexts, 1);
	c->bytes_in = c->bytes_done = c->frame_len = 0;
	c->in_msg = false;
	return c->ctx;
}

/* Frees the context of a socket idle at a frame boundary (see the top);
 * true when it did. */
static bool ctx_shed(ws_conn *c, int64_t now)
{
	if (!c->ctx || c->closing || c->lingering || c->eof || c->in_msg || c->stash_len ||
	    c->bytes_in != c->bytes_done || c->extra_len || now - c->last_io < 1000 ||
	    wslay_event_want_write(c->ctx) || !wslay_event_want_read(c->ctx) ||
	    wslay_event_get_close_received(c->ctx) || wslay_event_get_close_sent(c->ctx))
		return false;
	wslay_event_context_free(c->ctx);
	c->ctx = NULL;
	atomic_fetch_sub(&c->loop->ws->contexts, 1);
	return true;
}

/*---- The loop -------------------------------------------------------------------*/

static void conn_interest(ws_conn *c)
{
	uint32_t ev = 0;
	if (c->lingering || !c->ctx)
		ev = EPOLLIN;
	else {
		if (wslay_event_want_read(c->ctx))
			ev |= EPOLLIN;
		if (wslay_event_want_write(c->ctx) || c->stash_len)
			ev |= EPOLLOUT;
	}
	if (ev == c->events)
		return;
	struct epoll_event e = {.events = ev | EPOLLRDHUP, .data.ptr = c};
	if (epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &e) == 0)
		c->events = ev;
}

/* Discards what the peer still sends; true when it is gone. */
static bool conn_drain_linger(ws_conn *c)
{
	char buf[4096];
	for (int i = 0; i < 64; i++) {
		ssize_t r = recv(c->fd, buf, sizeof buf, 0);
		if (r > 0)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return false;
		return true;
	}
	return false;
}

/* Sends what wslay has queued and decides whether the socket is over. */
static void conn_flush(ws_conn *c)
{
	if (c->lingering)
		return;
	if (!c->eof && c->ctx && (wslay_event_want_write(c->ctx) || c->stash_len)) {
		c->last_io = bx_now(c->loop->ws->srv);
		if (!stash_flush(c))
			c->eof = true;
		if (!c->eof && !c->stash_len && wslay_event_want_write(c->ctx) &&
		    wslay_event_send(c->ctx) != 0)
			c->eof = true;
		if (!c->eof && !stash_flush(c))
			c->eof = true;
	}
	if (c->eof) {
		conn_free(c);
		return;
	}
	if (!c->ctx) {
		conn_interest(c);
		return;
	}
	bool sent_all = !wslay_event_want_write(c->ctx) && !c->stash_len;
	if (wslay_event_get_close_sent(c->ctx) && sent_all) {
		/* Our close frame is out: stop writing, wait for the peer's EOF. */
		shutdown(c->fd, SHUT_WR);
		c->lingering = true;
		c->linger_deadline = bx_now(c->loop->ws->srv) + LINGER_MS;
		if (conn_drain_linger(c)) {
			conn_free(c);
			return;
		}
	} else if (!wslay_event_want_read(c->ctx) && sent_all && !c->closing) {
		conn_free(c);
		return;
	}
	conn_interest(c);
}

static void conn_io(ws_conn *c, uint32_t ev)
{
	bx_server *srv = c->loop->ws->srv;
	if (c->lingering) {
		if (conn_drain_linger(c) || (ev & (EPOLLERR | EPOLLHUP)))
			conn_free(c);
		return;
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
		c->last_rx = c->last_io = bx_now(srv);
		c->ping_out = false;
		if (!ctx_get(c))
			c->eof = true; /* out of memory: drop the socket */
		else if (wslay_event_want_read(c->ctx) && wslay_event_recv(c->ctx) != 0)
			c->eof = true;
		else if (!wslay_event_want_read(c->ctx) && (ev & (EPOLLERR | EPOLLHUP)))
			c->eof = true;
	}
	conn_flush(c);
}

static void conn_free(ws_conn *c)
{
	ws_loop *l = c->loop;
	conn_unbind(c);
	while (c->holds) {
		ws_hold *wh = c->holds;
		c->holds = wh->next;
		if (wh->hold)
			bx_hold_abandon(l->ws->srv, wh->hold);
		free(wh);
	}
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->ctx) {
		wslay_event_context_free(c->ctx);
		atomic_fetch_sub(&l->ws->contexts, 1);
	}
	c->ctx = NULL;
	c->peer.done(c->peer.done_arg, c->fd);
	c->fd = -1;
	free(c->extra);
	c->extra = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else if (l->all == c)
		l->all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	l->count--;
	atomic_fetch_sub(&l->ws->count, 1);
	pthread_mutex_lock(&l->lock);
	bool queued = c->queued;
	if (queued)
		c->rflags = F_DEAD;
	pthread_mutex_unlock(&l->lock);
	if (!queued)
		free(c);
}

/* A newly adopted socket: epoll, then whatever libmicrohttpd read already. */
static void conn_start(ws_conn *c)
{
	ws_loop *l = c->loop;
	struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
	c->events = EPOLLIN;
	c->next = l->all;
	if (l->all)
		l->all->prev = c;
	l->all = c;
	l->count++;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->fd, &e) != 0) {
		bx_warn("WebSocket: epoll_ctl: %s", strerror(errno));
		c->eof = true;
		conn_free(c);
		return;
	}
	conn_io(c, EPOLLIN);
}

static void loop_ready(ws_loop *l)
{
	pthread_mutex_lock(&l->lock);
	ws_conn *list = l->ready;
	l->ready = NULL;
	pthread_mutex_unlock(&l->lock);
	/* Oldest first. */
	ws_conn *rev = NULL;
	while (list) {
		ws_conn *n = list->rnext;
		list->rnext = rev;
		rev = list;
		list = n;
	}
	while (rev) {
		ws_conn *c = rev;
		rev = c->rnext;
		pthread_mutex_lock(&l->lock);
		unsigned f = c->rflags;
		int reason = c->end_reason;
		c->rflags = 0;
		c->queued = false;
		c->rnext = NULL;
		pthread_mutex_unlock(&l->lock);
		if (f & F_DEAD) {
			free(c);
			continue;
		}
		if (f & F_NEW) {
			conn_start(c); /* may free c */
			continue;
		}
		if (f & F_HOLD)
			conn_finish_holds(c);
		if (f & F_KICK)
			conn_push(c);
		if (f & F_END) {
			/* Unbind unless the sink was attached again since. */
			if (c->session) {
				pthread_mutex_lock(&c->session->lock);
				bool still = bx_sink_attached_locked(c->session, &c->sink);
				pthread_mutex_unlock(&c->session->lock);
				if (!still)
					conn_unbind(c);
			}
			if (reason == BX_WAKE_SHUTDOWN)
				conn_close_with(c, 1001, "server shutting down");
		}
		conn_flush(c); /* may free c */
	}
}

/* Pings, dead peers, sockets whose close takes too long. */
static void loop_scan(ws_loop *l, int64_t now)
{
	bx_server *srv = l->ws->srv;
	int64_t ping = srv->cfg.ws_ping_ms;
	size_t shed = 0;
	for (ws_conn *c = l->all, *next; c; c = next) {
		next = c->next;
		if (c->lingering) {
			if (now >= c->linger_deadline)
				conn_free(c);
			continue;
		}
		if (c->closing) {
			if (now >= c->close_deadline)
				conn_free(c);
			continue;
		}
		if (ping > 0 && c->ping_out && now - c->ping_at >= ping) {
			bx_debug("WebSocket: no answer to a ping for %lld ms: dropping it",
			         (long long)(now - c->ping_at));
			conn_free(c);
			continue;
		}
		if (ping > 0 && !c->ping_out && now - c->last_rx >= ping) {
			struct wslay_event_msg m = {WSLAY_PING, (const uint8_t *)"", 0};
			if (ctx_get(c) && wslay_event_queue_msg(c->ctx, &m) == 0) {
				c->ping_out = true;
				c->ping_at = now;
			}
			conn_flush(c); /* may free c */
			continue;
		}
		shed += ctx_shed(c, now);
	}
#ifdef __GLIBC__
	/* Contexts shed in bulk (clients that set up together and went idle)
	 * leave free chunks amid the heap that glibc keeps resident: give their
	 * pages back. */
	if (shed >= 64)
		malloc_trim(0);
#endif
}

static void *loop_main(void *arg)
{
	ws_loop *l = arg;
	bx_server *srv = l->ws->srv;
	struct epoll_event evs[128];
	for (;;) {
		int64_t now = bx_now(srv);
		int64_t wait = l->next_scan - now;
		if (wait < 0)
			wait = 0;
		if (wait > 1000)
			wait = 1000;
		int n = epoll_wait(l->epfd, evs, 128, (int)wait);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				uint64_t v;
				ssize_t r = read(l->evfd, &v, sizeof v);
				(void)r;
				continue;
			}
			conn_io(evs[i].data.ptr, evs[i].events);
		}
		loop_ready(l);
		now = bx_now(srv);
		if (now >= l->next_scan) {
			loop_scan(l, now);
			int64_t step = srv->cfg.ws_ping_ms > 0 && srv->cfg.ws_ping_ms < 2000
			                       ? srv->cfg.ws_ping_ms / 4 + 1
			                       : 500;
			l->next_scan = now + step;
		}
		pthread_mutex_lock(&l->lock);
		bool stop = l->stop, close_all = l->close_all;
		l->close_all = false;
		pthread_mutex_unlock(&l->lock);
		if (close_all) {
			for (ws_conn *c = l->all, *next; c; c = next) {
				next = c->next;
				conn_close_with(c, 1001, "server shutting down");
				conn_flush(c); /* may free c */
			}
		}
		if (stop)
			break;
	}
	/* Whatever is left goes now. */
	loop_ready(l);
	while (l->all)
		conn_free(l->all);
	loop_ready(l); /* frees the ones that were still queued */
	return NULL;
}

/*---- Lifecycle -----------------------------------------------------------------*/

bx_ws *bx_ws_new(bx_server *srv, unsigned nloops)
{
	if (nloops == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		nloops = n > 0 ? (unsigned)n : 1;
	}
	bx_ws *ws = calloc(1, sizeof *ws + nloops * sizeof(ws_loop));
	if (!ws)
		return NULL;
	ws->srv = srv;
	ws->nloops = nloops;
	for (unsigned i = 0; i < nloops; i++) {
		ws_loop *l = &ws->loops[i];
		l->ws = ws;
		l->epfd = l->evfd = -1;
		pthread_mutex_init(&l->lock, NULL);
		bx_buf_init(&l->out);
	}
	for (unsigned i = 0; i < nloops; i++) {
		ws_loop *l = &ws->loops[i];
		l->epfd = epoll_create1(EPOLL_CLOEXEC);
		l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
		if (l->epfd < 0 || l->evfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &e) != 0 ||
		    pthread_create(&l->thread, NULL, loop_main, l) != 0) {
			bx_error("WebSocket: cannot start a socket loop: %s", strerror(errno));
			bx_ws_free(ws);
			return NULL;
		}
		l->started = true;
	}
	return ws;
}

int bx_ws_adopt(bx_ws *ws, int fd, const void *extra, size_t extra_len, const bx_ws_peer *peer)
{
	if (atomic_load(&ws->closing_all))
		return -1;
	ws_conn *c = calloc(1, sizeof *c);
	if (!c)
		return -1;
	if (extra_len) {
		c->extra = malloc(extra_len);
		if (!c->extra) {
			free(c);
			return -1;
		}
		memcpy(c->extra, extra, extra_len);
		c->extra_len = extra_len;
	}
	bx_server *srv = ws->srv;
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	c->fd = fd;
	c->peer = *peer;
	c->peer.browser = NULL;
	c->peer.addr = NULL;
	if (peer->browser && strlen(peer->browser) <= BX_ID_LEN) {
		strcpy(c->browser, peer->browser);
		c->peer.browser = c->browser;
	}
	if (peer->addr && strlen(peer->addr) < sizeof c->addr) {
		strcpy(c->addr, peer->addr);
		c->peer.addr = c->addr;
	}
	c->sink.ops = &ws_sink_ops;
	c->last_rx = c->last_io = bx_now(srv);
	unsigned i = atomic_fetch_add(&ws->next, 1) % ws->nloops;
	c->loop = &ws->loops[i];
	atomic_fetch_add(&ws->count, 1);
	loop_post(c, F_NEW);
	return 0;
}

size_t bx_ws_count(const bx_ws *ws)
{
	return ws ? atomic_load(&ws->count) : 0;
}

size_t bx_ws_contexts(const bx_ws *ws)
{
	return ws ? atomic_load(&ws->contexts) : 0;
}

void bx_ws_shutdown(bx_ws *ws, int64_t wait_ms)
{
	if (!ws)
		return;
	atomic_store(&ws->closing_all, true);
	/* The core released held connects (shutdown) and ended sinks before:
	 * their replies are queued first, then every socket is closed. */
	for (unsigned i = 0; i < ws->nloops; i++) {
		ws_loop *l = &ws->loops[i];
		pthread_mutex_lock(&l->lock);
		l->close_all = true;
		pthread_mutex_unlock(&l->lock);
		loop_wake(l);
	}
	for (int64_t t = 0; t < wait_ms && atomic_load(&ws->count) > 0; t += 10) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

void bx_ws_free(bx_ws *ws)
{
	if (!ws)
		return;
	for (unsigned i = 0; i < ws->nloops; i++) {
		ws_loop *l = &ws->loops[i];
		if (!l->started)
			continue;
		pthread_mutex_lock(&l->lock);
		l->stop = true;
		pthread_mutex_unlock(&l->lock);
		loop_wake(l);
		pthread_join(l->thread, NULL);
	}
	for (unsigned i = 0; i < ws->nloops; i++) {
		ws_loop *l = &ws->loops[i];
		if (l->epfd >= 0)
			close(l->epfd);
		if (l->evfd >= 0)
			close(l->evfd);
		pthread_mutex_destroy(&l->lock);
		bx_buf_free(&l->out);
	}
	free(ws);
}
