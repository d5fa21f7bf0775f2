/*
 * bayeux-load: a Bayeux load generator (long polling; eventsource with
 * --transport sse).
 *
 * One thread, one epoll loop, non-blocking sockets, HTTP/1.1 keep-alive.
 * N subscriber clients (each on its own TCP connection) handshake, subscribe
 * to one of C channels and run a /meta/connect loop; P publisher clients (K
 * connections each, one outstanding request per connection) publish at an
 * aggregate rate R, or as fast as acks return when R is 0.  Every published
 * message carries its send time (CLOCK_MONOTONIC ns) in data.t; a delivery's
 * latency is the receive time minus data.t.  Each client keeps its own cookie
 * jar, because cometd-nodejs-server binds sessions to the BAYEUX_BROWSER
 * cookie.
 *
 * With --transport sse a subscriber speaks Faye's eventsource connection type
 * instead: it handshakes offering "eventsource", subscribes, opens
 * GET <path>/<clientId> (Accept: text/event-stream) on a connection of its
 * own and reads every batch of messages as one SSE event whose data is a JSON
 * array (chunked or EOF-delimited, lines ending in LF, CRLF or CR), and POSTs
 * /meta/connect (connectionType "eventsource", answered at once) on a second
 * connection at the advised interval, as Faye's client does.  A stream that
 * ends (the server's max-age or max-bytes rollover) is reopened at once with
 * Last-Event-ID.  Publishers always use long polling.
 *
 * With --transport websocket a subscriber speaks CometD's WebSocket wire
 * (PROTOCOL.md §9): its one connection is upgraded (GET <path>, Upgrade:
 * websocket), then the handshake, the subscribe and every /meta/connect go
 * as masked text frames, one request outstanding at a time, and messages
 * are read as the frames the server pushes: a frame with a meta reply
 * answers the outstanding request, a frame of deliveries only is counted
 * as it comes.  Publishers long-poll.
 *
 * Phases: setup (clients ramp up) -> warm-up (publish, not counted) ->
 * measure (counted) -> drain (no new publishes; wait for the measured ones)
 * -> report.  A hard deadline ends the run whatever happens.
 *
 * Only the JSON fields the generator needs are parsed, by a small scanner
 * that skips everything else: the generator must not be the bottleneck.
 *
 * Build: gcc -O2 -Wall -Wextra -o bench/bayeux-load bench/bayeux-load.c
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*---- Defaults (all overridable by flags; see usage()) ----*/

#define DEF_SUBSCRIBERS    100
#define DEF_CHANNELS       1
#define DEF_PUBLISHERS     1
#define DEF_RATE           100.0
#define DEF_INFLIGHT       1
#define DEF_PAYLOAD        64
#define DEF_WARMUP_S       2.0
#define DEF_DURATION_S     10.0
#define DEF_DRAIN_S        2.0
#define DEF_SETUP_S        20.0
#define DEF_RAMP           200         /* clients in handshake/subscribe at once */
#define DEF_KEEPALIVE_S    3.0         /* publisher /meta/connect {timeout:0} period */
#define RETRY_DELAY_NS     100000000LL /* after an HTTP error, wait 100 ms */
#define MAX_RETRY_DELAY_NS 5000000000LL
#define MAX_COOKIES        4
#define COOKIE_MAX         160
#define CLIENT_ID_MAX      128
#define RBUF_INIT          2048
#define HIST_BUCKETS       (64 * 64)
#define NS                 1000000000LL

/*---- Options ----*/

static struct {
	const char *url;
	struct sockaddr_in addr;
	char host[128]; /* Host header value */
	char path[256];
	long subscribers, channels, publishers, inflight, payload, ramp;
	double rate, warmup, duration, drain, setup, hard_stop, keepalive;
	const char *channel_prefix;
	bool idle;
	bool connect_loop;
	bool phase_events;
	bool progress;
	bool no_keepalive;
	bool sse; /* --transport sse: subscribers use eventsource streams */
	/* --sub-ports / --pub-port: the same host on other ports (cluster
	 * nodes): subscriber i uses sub_ports[i % n], publishers pub_port. */
	uint16_t sub_ports[8];
	int n_sub_ports;
	uint16_t pub_port;
	bool websocket; /* --transport websocket: subscribers upgrade their connection */
} opt;

/*---- Time ----*/

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/*---- Latency histogram: log-linear, 64 sub-buckets per power of two ----*/

static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_count, hist_max;

static int hist_index(uint64_t v)
{
	if (v < 128)
		return (int)v;
	int b = 63 - __builtin_clzll(v);
	int shift = b - 6;
	int i = shift * 64 + (int)(v >> shift);
	return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

/* Returns the midpoint value (ns) of bucket i. */
static uint64_t hist_value(int i)
{
	if (i < 128)
		return (uint64_t)i;
	int shift = i / 64 - 1;
	uint64_t m = (uint64_t)(i % 64 + 64);
	return (m << shift) + ((1ULL << shift) >> 1);
}

static void hist_add(int64_t v)
{
	if (v < 0)
		v = 0;
	hist[hist_index((uint64_t)v)]++;
	hist_count++;
	if ((uint64_t)v > hist_max)
		hist_max = (uint64_t)v;
}

/* Returns the q-quantile in milliseconds, or 0 without samples. */
static double hist_quantile_ms(double q)
{
	if (!hist_count)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)hist_count);
	if (rank >= hist_count)
		rank = hist_count - 1;
	uint64_t seen = 0;
	for (int i = 0; i < HIST_BUCKETS; i++) {
		seen += hist[i];
		if (seen > rank) {
			uint64_t v = hist_value(i);
			if (v > hist_max)
				v = hist_max;
			return v / 1e6;
		}
	}
	return hist_max / 1e6;
}

/*---- Clients and connections ----*/

enum kind { K_SUB, K_PUB };
enum cstate {
	CS_NEW,         /* not started */
	CS_HANDSHAKE,   /* handshake sent */
	CS_CONNECT0,    /* first /meta/connect {timeout:0} sent */
	CS_SUBSCRIBE,   /* subscribe sent */
	CS_POLLING,     /* subscriber: connect loop running */
	CS_READY,       /* publisher: handshaken, publishing */
	CS_WAIT,        /* waiting until wake_at, then wake_state */
	CS_STREAM_OPEN, /* sse subscriber: stream requested, not open yet */
	CS_STREAMING,   /* sse subscriber: stream open, connects at the interval */
};
enum req { R_NONE, R_HANDSHAKE, R_CONNECT, R_SUBSCRIBE, R_PUBLISH, R_STREAM };

/* How far the stream's response has been read (--transport sse). */
enum sstate {
	SS_IDLE,     /* no stream */
	SS_HEAD,     /* waiting for the response headers */
	SS_SIZE,     /* chunked: a chunk-size line */
	SS_DATA,     /* chunked: `left` bytes of chunk data */
	SS_DATA_END, /* chunked: the CRLF after a chunk */
	SS_TRAILER,  /* chunked: trailer lines up to the final blank line */
	SS_LEN,      /* Content-Length: `left` bytes of body */
	SS_EOF,      /* no length: the body runs to the end of the connection */
};

/* An event stream's parser state; only subscribers' stream connections. */
struct sse {
	uint8_t state;       /* enum sstate */
	bool close_after;    /* the response ends the connection */
	bool need_handshake; /* an event advised reconnect: handshake */
	bool d_has;          /* the event being read has data */
	bool cr_end;         /* the last line ended in CR: skip an LF next */
	uint64_t left;       /* bytes left in the chunk (SS_DATA) or body (SS_LEN) */
	char *ebuf;          /* decoded text/event-stream bytes not yet parsed */
	size_t elen, ecap;
	size_t epos;         /* first byte of the next unparsed line */
	size_t d_off, d_len; /* the event's data so far (in ebuf) */
};

struct client;

struct conn {
	int fd;          /* -1 when closed */
	bool connecting; /* non-blocking connect() in progress */
	bool busy;       /* a request is outstanding */
	bool reused;     /* request went out on a kept-alive connection */
	bool got_bytes;  /* some of the response arrived */
	uint8_t req;     /* enum req */
	int chan;        /* channel of an outstanding publish */
	int64_t t_sent;  /* send time of the outstanding request */
	struct client *cl;
	struct sse *sse; /* the subscriber's event stream (--transport sse) */
	bool ws;         /* a subscriber's connection under --transport websocket */
	uint8_t wsst;    /* 0: not upgraded, 1: upgrade sent, 2: frames */
	char *wbuf;
	size_t wlen, woff, wcap;
	char *rbuf;
	size_t rlen, rcap;
};

struct client {
	uint8_t kind, state, wake_state;
	bool subscribed;
	bool ever_ready; /* counted in st.ready_* once */
	int idx, chan;
	int nconns;
	struct conn *conns;
	int64_t wake_at;
	int64_t retry_delay;
	int64_t next_send; /* publisher: next scheduled publish */
	int64_t next_keepalive;
	int64_t next_connect; /* sse subscriber: next /meta/connect, 0: none due */
	int64_t es_interval;  /* sse subscriber: advised connect interval, ns */
	uint64_t msg_id;
	char client_id[CLIENT_ID_MAX];
	int ncookies;
	char cookie[MAX_COOKIES][COOKIE_MAX]; /* "name=value" */
	char last_id[32];                     /* sse subscriber: the stream's last event id */
};

static struct client *clients;
static long nclients;
static int epfd;
static long *chan_subs; /* confirmed subscribers per channel */

/*---- Counters ----*/

enum phase { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };
static const char *phase_name[] = {"setup", "warmup", "measure", "drain", "done"};
static enum phase phase = PH_SETUP;
static int64_t t_start, t_measure, t_measure_end, t_drain_end, t_hard;
static double cpu_measure_start, cpu_measure_end;
static volatile sig_atomic_t interrupted;

static struct {
	uint64_t published;       /* acks (successful) for measured messages */
	uint64_t publish_failed;  /* acks with successful:false, measured */
	uint64_t publish_sent;    /* publish requests sent in the window */
	uint64_t expected;        /* sum of channel subscribers at ack time */
	uint64_t delivered;       /* deliveries of measured messages */
	uint64_t delivered_all;   /* deliveries of any message */
	uint64_t http_errors;     /* non-200, malformed, reset mid-request */
	uint64_t conn_errors;     /* connect() failures */
	uint64_t retries;         /* kept-alive connection closed, resent */
	uint64_t rehandshakes;    /* 402 / reconnect:handshake */
	uint64_t bayeux_errors;   /* successful:false on meta channels */
	uint64_t connect_returns; /* held connects returned in the window */
	uint64_t push_frames;     /* websocket: frames of deliveries only, in the window */
	uint64_t multiple_clients;
	uint64_t stream_opens;  /* sse: streams answered 200 */
	uint64_t stream_ends;   /* sse: streams the server ended (rollover) */
	uint64_t stream_errors; /* sse: streams refused or broken */
	uint64_t sse_events;    /* sse: events with data */
	uint64_t sse_comments;  /* sse: comment lines (heartbeats) */
	uint64_t es_connects;   /* sse: /meta/connect (eventsource) sent */
	int64_t max_lag;        /* rate mode: worst lag behind schedule */
	int64_t inflight_measured;
	uint64_t ready_subs, ready_pubs;
} st;
static char first_error[256];

/* True when a message sent at t counts (inside the measured window). */
static bool in_window(int64_t t)
{
	return t >= t_measure && t < t_measure_end && t_measure;
}

static void note_error(const char *fmt, ...)
{
	if (first_error[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(first_error, sizeof first_error, fmt, ap);
	va_end(ap);
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bayeux-load: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q)
		die("out of memory (%zu bytes)", n);
	return q;
}

/*---- Minimal JSON scanning (only what replies need) ----*/

static const char *ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

/* p at '"'; returns the position after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *e)
{
	for (p++; p < e; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Returns the position after the JSON value at p, or NULL if malformed. */
static const char *skip_value(const char *p, const char *e)
{
	p = ws(p, e);
	if (p >= e)
		return NULL;
	if (*p == '"')
		return skip_string(p, e);
	if (*p == '{' || *p == '[') {
		int depth = 0;
		for (; p < e; p++) {
			char c = *p;
			if (c == '"') {
				p = skip_string(p, e);
				if (!p)
					return NULL;
				p--;
			} else if (c == '{' || c == '[') {
				depth++;
			} else if (c == '}' || c == ']') {
				if (--depth == 0)
					return p + 1;
			}
		}
		return NULL;
	}
	while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' &&
	       *p != '\r' && *p != '\t')
		p++;
	return p;
}

struct span {
	const char *p;
	size_t n;
};

static bool span_eq(struct span s, const char *lit)
{
	size_t n = strlen(lit);
	return s.p && s.n == n && memcmp(s.p, lit, n) == 0;
}

/* The fields of one message the generator looks at.  String spans exclude
 * the quotes; data and advice are raw value spans. */
struct msg {
	struct span channel, client_id, data, advice, error;
	int successful; /* -1 absent, 0 false, 1 true */
};

typedef bool (*field_fn)(void *ctx, struct span key, const char *v, const char *ve);

/* Calls fn for each key of the object at p; returns the end of the object
 * or NULL if malformed. */
static const char *scan_object(const char *p, const char *e, field_fn fn, void *ctx)
{
	p = ws(p, e);
	if (p >= e || *p != '{')
		return NULL;
	p = ws(p + 1, e);
	if (p < e && *p == '}')
		return p + 1;
	while (p < e) {
		if (*p != '"')
			return NULL;
		const char *ks = p + 1;
		const char *ke = skip_string(p, e);
		if (!ke)
			return NULL;
		struct span key = {ks, (size_t)(ke - 1 - ks)};
		p = ws(ke, e);
		if (p >= e || *p != ':')
			return NULL;
		const char *v = ws(p + 1, e);
		const char *ve = skip_value(v, e);
		if (!ve)
			return NULL;
		if (fn && !fn(ctx, key, v, ve))
			return NULL;
		p = ws(ve, e);
		if (p < e && *p == ',') {
			p = ws(p + 1, e);
			continue;
		}
		if (p < e && *p == '}')
			return p + 1;
		return NULL;
	}
	return NULL;
}

static struct span str_span(const char *v, const char *ve)
{
	struct span s = {NULL, 0};
	if (*v == '"' && ve - v >= 2) {
		s.p = v + 1;
		s.n = (size_t)(ve - v - 2);
	}
	return s;
}

static bool msg_field(void *ctx, struct span key, const char *v, const char *ve)
{
	struct msg *m = ctx;
	switch (key.n) {
	case 4:
		if (!memcmp(key.p, "data", 4))
			m->data = (struct span){v, (size_t)(ve - v)};
		break;
	case 5:
		if (!memcmp(key.p, "error", 5))
			m->error = str_span(v, ve);
		break;
	case 6:
		if (!memcmp(key.p, "advice", 6))
			m->advice = (struct span){v, (size_t)(ve - v)};
		break;
	case 7:
		if (!memcmp(key.p, "channel", 7))
			m->channel = str_span(v, ve);
		break;
	case 8:
		if (!memcmp(key.p, "clientId", 8))
			m->client_id = str_span(v, ve);
		break;
	case 10:
		if (!memcmp(key.p, "successful", 10))
			m->successful = (*v == 't');
		break;
	}
	return true;
}

struct advice {
	struct span reconnect;
	long interval; /* -1 absent */
	bool multiple_clients;
};

static bool advice_field(void *ctx, struct span key, const char *v, const char *ve)
{
	struct advice *a = ctx;
	if (span_eq(key, "reconnect"))
		a->reconnect = str_span(v, ve);
	else if (span_eq(key, "interval"))
		a->interval = strtol(v, NULL, 10);
	else if (span_eq(key, "multiple-clients"))
		a->multiple_clients = (*v == 't');
	return true;
}

static bool data_field(void *ctx, struct span key, const char *v, const char *ve)
{
	(void)ve;
	if (span_eq(key, "t"))
		*(int64_t *)ctx = strtoll(v, NULL, 10);
	return true;
}

/*---- Sockets ----*/

static void conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		close(c->fd); /* also removes it from the epoll set */
		c->fd = -1;
	}
	c->connecting = false;
	c->rlen = 0;
	c->wsst = 0;
}

/* Opens a non-blocking connection; returns false on immediate failure. */
static bool conn_open(struct conn *c)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		note_error("socket: %s", strerror(errno));
		return false;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in to = opt.addr;
	if (c->cl && c->cl->kind == K_SUB && opt.n_sub_ports)
		to.sin_port = htons(opt.sub_ports[c->cl->idx % opt.n_sub_ports]);
	else if (c->cl && c->cl->kind == K_PUB && opt.pub_port)
		to.sin_port = htons(opt.pub_port);
	int r = connect(fd, (struct sockaddr *)&to, sizeof to);
	if (r < 0 && errno != EINPROGRESS) {
		note_error("connect: %s", strerror(errno));
		close(fd);
		return false;
	}
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP,
	                         .data.ptr = c};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	c->fd = fd;
	c->connecting = (r < 0);
	c->rlen = 0;
	return true;
}

/* Writes what is pending; returns false if the connection failed. */
static bool conn_flush(struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
		if (n > 0) {
			c->woff += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		return false;
	}
	return true;
}

static char body[1 << 16];
static int body_len;
static char *payload_str;

static void client_fail(struct client *cl, struct conn *c, const char *why);

/* Writes `body` as one masked text frame at c->wbuf + at (a subscriber's
 * message under --transport websocket); returns the bytes written. */
static size_t ws_frame_out(struct conn *c, size_t at)
{
	unsigned char *o = (unsigned char *)c->wbuf + at;
	size_t n = 0, len = (size_t)body_len;
	o[n++] = 0x81;
	if (len < 126) {
		o[n++] = (unsigned char)(0x80 | len);
	} else {
		o[n++] = 0x80 | 126;
		o[n++] = (unsigned char)(len >> 8);
		o[n++] = (unsigned char)len;
	}
	static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
	memcpy(o + n, key, 4);
	n += 4;
	for (size_t i = 0; i < len; i++)
		o[n + i] = (unsigned char)body[i] ^ key[i & 3];
	return n + len;
}

/* Sends the request in `body` on connection c (opening it if needed). */
static void conn_send(struct conn *c, enum req req)
{
	struct client *cl = c->cl;
	size_t need = (size_t)body_len + 512 + MAX_COOKIES * COOKIE_MAX;
	if (c->wcap < need) {
		c->wcap = need;
		c->wbuf = xrealloc(c->wbuf, c->wcap);
	}
	if (c->ws) {
		/* Not yet upgraded: the upgrade request, the frame right behind
		 * it (the server reads it as bytes past the header). */
		size_t n = 0;
		if (c->fd < 0 || c->wsst == 0) {
			n = (size_t)snprintf(c->wbuf, c->wcap,
			                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
			                     "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
			                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
			                     opt.path, opt.host);
			c->wsst = 1;
		}
		c->wlen = n + ws_frame_out(c, n);
		c->woff = 0;
		c->busy = true;
		c->req = (uint8_t)req;
		c->got_bytes = false;
		c->t_sent = now_ns();
		c->reused = false;
		if (c->fd < 0 && !conn_open(c)) {
			st.conn_errors++;
			client_fail(cl, c, "connect failed");
			return;
		}
		c->wsst = 1 + (c->wsst == 2);
		if (!c->connecting && !conn_flush(c)) {
			conn_close(c);
			client_fail(cl, c, "write failed");
		}
		return;
	}
	int n = snprintf(c->wbuf, c->wcap,
	                 "POST %s HTTP/1.1\r\nHost: %s\r\n"
	                 "Content-Type: application/json;charset=UTF-8\r\n"
	                 "Content-Length: %d\r\n",
	                 opt.path, opt.host, body_len);
	if (cl->ncookies) {
		n += snprintf(c->wbuf + n, c->wcap - (size_t)n, "Cookie: ");
		for (int i = 0; i < cl->ncookies; i++)
			n += snprintf(c->wbuf + n, c->wcap - (size_t)n, "%s%s", i ? "; " : "",
			              cl->cookie[i]);
		n += snprintf(c->wbuf + n, c->wcap - (size_t)n, "\r\n");
	}
	n += snprintf(c->wbuf + n, c->wcap - (size_t)n, "\r\n");
	memcpy(c->wbuf + n, body, (size_t)body_len);
	c->wlen = (size_t)n + (size_t)body_len;
	c->woff = 0;
	c->busy = true;
	c->req = (uint8_t)req;
	c->got_bytes = false;
	if (req != R_PUBLISH)
		c->t_sent = now_ns();
	c->reused = (c->fd >= 0);
	if (c->fd < 0) {
		if (!conn_open(c)) {
			st.conn_errors++;
			client_fail(cl, c, "connect failed");
			return;
		}
	}
	if (!c->connecting && !conn_flush(c)) {
		conn_close(c);
		client_fail(cl, c, "write failed");
	}
}

/*---- Bayeux requests ----*/

static void set_body(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	body_len = vsnprintf(body, sizeof body, fmt, ap);
	va_end(ap);
	if (body_len >= (int)sizeof body)
		die("request body too large (%d bytes); lower --payload", body_len);
}

static void send_handshake(struct client *cl)
{
	bool es = opt.sse && cl->kind == K_SUB;
	bool wsock = opt.websocket && cl->kind == K_SUB;
	set_body("[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\",\"minimumVersion\":\"1.0\","
	         "\"supportedConnectionTypes\":[%s\"long-polling\"],\"id\":\"%" PRIu64 "\"}]",
	         es ? "\"eventsource\"," : wsock ? "\"websocket\"," : "", ++cl->msg_id);
	cl->state = CS_HANDSHAKE;
	conn_send(&cl->conns[0], R_HANDSHAKE);
}

/* A connect with advice {timeout:0} is answered at once (PROTOCOL.md §3). */
static void send_connect(struct client *cl, struct conn *c, bool immediate)
{
	set_body("[{\"channel\":\"/meta/"
	         "connect\",\"clientId\":\"%s\",\"connectionType\":\"%s\","
	         "\"id\":\"%" PRIu64 "\"%s}]",
	         cl->client_id, c->ws ? "websocket" : "long-polling", ++cl->msg_id,
	         immediate ? ",\"advice\":{\"timeout\":0}" : "");
	conn_send(c, R_CONNECT);
}

/* Faye's eventsource connect: answered at once; the stream delivers. */
static void send_es_connect(struct client *cl)
{
	set_body("[{\"channel\":\"/meta/"
	         "connect\",\"clientId\":\"%s\",\"connectionType\":\"eventsource\","
	         "\"id\":\"%" PRIu64 "\"}]",
	         cl->client_id, ++cl->msg_id);
	cl->next_connect = 0;
	st.es_connects++;
	conn_send(&cl->conns[0], R_CONNECT);
}

static void send_subscribe(struct client *cl)
{
	set_body("[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":\"%s/%d\","
	         "\"id\":\"%" PRIu64 "\"}]",
	         cl->client_id, opt.channel_prefix, cl->chan, ++cl->msg_id);
	cl->state = CS_SUBSCRIBE;
	conn_send(&cl->conns[0], R_SUBSCRIBE);
}

static uint64_t publish_seq;

static void send_publish(struct client *cl, struct conn *c)
{
	int chan = (int)(publish_seq++ % (uint64_t)opt.channels);
	int64_t t = now_ns();
	set_body("[{\"channel\":\"%s/%d\",\"clientId\":\"%s\",\"id\":\"%" PRIu64 "\","
	         "\"data\":{\"t\":%" PRId64 ",\"p\":\"%s\"}}]",
	         opt.channel_prefix, chan, cl->client_id, ++cl->msg_id, t, payload_str);
	c->chan = chan;
	c->t_sent = t;
	if (in_window(t)) {
		st.publish_sent++;
		st.inflight_measured++;
	}
	conn_send(c, R_PUBLISH);
}

/*---- Event streams (--transport sse) ----*/

/* Forgets the stream's parser state (the connection is handled apart). */
static void sse_reset(struct sse *s)
{
	s->state = SS_IDLE;
	s->close_after = s->need_handshake = s->d_has = s->cr_end = false;
	s->left = 0;
	s->elen = s->epos = s->d_off = s->d_len = 0;
}

/* Opens (or reopens, with Last-Event-ID) the subscriber's event stream:
 * GET <path>/<clientId> on its own connection, conns[1]. */
static void stream_start(struct client *cl)
{
	struct conn *c = &cl->conns[1];
	size_t need = 1024 + strlen(opt.path) + MAX_COOKIES * COOKIE_MAX;
	if (c->wcap < need) {
		c->wcap = need;
		c->wbuf = xrealloc(c->wbuf, c->wcap);
	}
	size_t pl = strlen(opt.path);
	bool slash = pl && opt.path[pl - 1] == '/';
	int n = snprintf(c->wbuf, c->wcap,
	                 "GET %s%s%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
	                 "Cache-Control: no-cache\r\n",
	                 opt.path, slash ? "" : "/", cl->client_id, opt.host);
	if (cl->ncookies) {
		n += snprintf(c->wbuf + n, c->wcap - (size_t)n, "Cookie: ");
		for (int i = 0; i < cl->ncookies; i++)
			n += snprintf(c->wbuf + n, c->wcap - (size_t)n, "%s%s", i ? "; " : "",
			              cl->cookie[i]);
		n += snprintf(c->wbuf + n, c->wcap - (size_t)n, "\r\n");
	}
	if (cl->last_id[0])
		n += snprintf(c->wbuf + n, c->wcap - (size_t)n, "Last-Event-ID: %s\r\n",
		              cl->last_id);
	n += snprintf(c->wbuf + n, c->wcap - (size_t)n, "\r\n");
	c->wlen = (size_t)n;
	c->woff = 0;
	c->busy = true;
	c->req = R_STREAM;
	c->got_bytes = false;
	c->t_sent = now_ns();
	sse_reset(c->sse);
	c->sse->state = SS_HEAD;
	if (cl->state != CS_STREAMING)
		cl->state = CS_STREAM_OPEN;
	c->reused = (c->fd >= 0);
	if (c->fd < 0 && !conn_open(c)) {
		st.conn_errors++;
		client_fail(cl, c, "connect failed (stream)");
		return;
	}
	if (!c->connecting && !conn_flush(c)) {
		conn_close(c);
		client_fail(cl, c, "write failed (stream)");
	}
}

/* Closes the subscriber's stream for good (a new session needs a new one). */
static void stream_stop(struct client *cl)
{
	struct conn *c = &cl->conns[1];
	conn_close(c);
	c->busy = false;
	c->req = R_NONE;
	sse_reset(c->sse);
	cl->last_id[0] = '\0';
	cl->next_connect = 0;
}

/* Puts a client to sleep until `delay` from now, then into `next`. */
static void client_wait(struct client *cl, int64_t delay, enum cstate next)
{
	cl->state = CS_WAIT;
	cl->wake_state = (uint8_t)next;
	cl->wake_at = now_ns() + delay;
}

static void client_rehandshake(struct client *cl)
{
	if (cl->subscribed) {
		chan_subs[cl->chan]--;
		cl->subscribed = false;
	}
	if (phase != PH_SETUP)
		st.rehandshakes++;
	cl->client_id[0] = '\0';
	if (opt.sse && cl->kind == K_SUB)
		stream_stop(cl);
	/* A publisher's other outstanding publishes finish on their own. */
	if (cl->conns[0].busy)
		client_wait(cl, 0, CS_HANDSHAKE); /* handshake once conn 0 is free */
	else
		send_handshake(cl);
}

/* After a transport failure: back off, then resume what the client did. */
static void client_fail(struct client *cl, struct conn *c, const char *why)
{
	c->busy = false;
	st.http_errors++;
	note_error("%s", why);
	enum req req = (enum req)c->req;
	c->req = R_NONE;
	if (req == R_PUBLISH) {
		if (in_window(c->t_sent))
			st.inflight_measured--;
		return; /* the publisher loop sends the next one */
	}
	if (req == R_STREAM || (opt.sse && cl->kind == K_SUB && req == R_CONNECT)) {
		cl->retry_delay = cl->retry_delay ? cl->retry_delay * 2 : RETRY_DELAY_NS;
		if (cl->retry_delay > MAX_RETRY_DELAY_NS)
			cl->retry_delay = MAX_RETRY_DELAY_NS;
		if (req == R_CONNECT) {
			/* The stream goes on; the next connect after a pause (a
			 * stream being reopened sends one when it opens). */
			if (cl->state == CS_STREAMING)
				cl->next_connect = now_ns() + cl->retry_delay;
			return;
		}
		/* The stream broke: reopen it after a pause (Last-Event-ID). */
		st.stream_errors++;
		conn_close(c);
		sse_reset(c->sse);
		if (cl->state == CS_STREAMING || cl->state == CS_STREAM_OPEN)
			client_wait(cl, cl->retry_delay, CS_STREAM_OPEN);
		return;
	}
	enum cstate next;
	switch (req) {
	case R_HANDSHAKE:
		next = CS_HANDSHAKE;
		break;
	case R_SUBSCRIBE:
		next = CS_SUBSCRIBE;
		break;
	case R_CONNECT:
		next = (cl->kind == K_SUB) ? CS_POLLING : CS_READY;
		if (cl->state == CS_CONNECT0)
			next = CS_CONNECT0;
		break;
	default:
		return;
	}
	cl->retry_delay = cl->retry_delay ? cl->retry_delay * 2 : RETRY_DELAY_NS;
	if (cl->retry_delay > MAX_RETRY_DELAY_NS)
		cl->retry_delay = MAX_RETRY_DELAY_NS;
	client_wait(cl, cl->retry_delay, next);
}

/* Runs the step a waiting client was waiting for. */
static void client_wake(struct client *cl)
{
	switch (cl->wake_state) {
	case CS_HANDSHAKE:
		send_handshake(cl);
		break;
	case CS_CONNECT0:
		cl->state = CS_CONNECT0;
		send_connect(cl, &cl->conns[0], true);
		break;
	case CS_SUBSCRIBE:
		send_subscribe(cl);
		break;
	case CS_POLLING:
		cl->state = CS_POLLING;
		if (phase < PH_DONE)
			send_connect(cl, &cl->conns[0], opt.connect_loop);
		break;
	case CS_READY:
		cl->state = CS_READY;
		break;
	case CS_STREAM_OPEN:
		if (phase < PH_DONE)
			stream_start(cl);
		break;
	}
}

/*---- Replies ----*/

static void store_cookie(struct client *cl, const char *v, size_t n)
{
	while (n && (*v == ' ' || *v == '\t'))
		v++, n--;
	size_t end = 0;
	while (end < n && v[end] != ';' && v[end] != '\r')
		end++;
	const char *eq = memchr(v, '=', end);
	if (!eq || end >= COOKIE_MAX)
		return;
	size_t nlen = (size_t)(eq - v) + 1; /* include '=' */
	int slot = cl->ncookies;
	for (int i = 0; i < cl->ncookies; i++)
		if (!strncmp(cl->cookie[i], v, nlen))
			slot = i;
	if (slot == MAX_COOKIES)
		return;
	memcpy(cl->cookie[slot], v, end);
	cl->cookie[slot][end] = '\0';
	if (slot == cl->ncookies)
		cl->ncookies++;
}

/* Handles one delivered message (a message with data on a non-meta channel). */
static void on_delivery(struct msg *m, int64_t now)
{
	int64_t t = -1;
	scan_object(m->data.p, m->data.p + m->data.n, data_field, &t);
	st.delivered_all++;
	if (t > 0 && in_window(t)) {
		st.delivered++;
		hist_add(now - t);
	}
}

/* Handles a complete HTTP response on connection c. */
static void on_response(struct conn *c, int status, const char *b, size_t blen)
{
	struct client *cl = c->cl;
	enum req req = (enum req)c->req;
	int64_t now = now_ns();
	c->busy = false;
	c->req = R_NONE;

	if (status != 200) {
		char why[64];
		snprintf(why, sizeof why, "HTTP %d on request %d", status, (int)req);
		c->req = (uint8_t)req;
		c->busy = true;
		client_fail(cl, c, why);
		return;
	}
	cl->retry_delay = 0;

	bool handshake_ok = false, connect_ok = false, subscribe_ok = false;
	bool need_handshake = false, publish_ok = false, publish_seen = false;
	long connect_interval = 0;
	const char *p = ws(b, b + blen), *e = b + blen;
	if (p >= e || *p != '[') {
		c->req = (uint8_t)req;
		c->busy = true;
		client_fail(cl, c, "reply is not a JSON array");
		return;
	}
	p = ws(p + 1, e);
	while (p < e && *p != ']') {
		struct msg m = {.successful = -1};
		const char *q = scan_object(p, e, msg_field, &m);
		if (!q) {
			c->req = (uint8_t)req;
			c->busy = true;
			client_fail(cl, c, "malformed JSON in reply");
			return;
		}
		p = ws(q, e);
		if (p < e && *p == ',')
			p = ws(p + 1, e);
		if (!m.channel.p)
			continue;
		bool meta = m.channel.n > 6 && !memcmp(m.channel.p, "/meta/", 6);
		if (!meta) {
			if (m.data.p)
				on_delivery(&m, now);
			else if (req == R_PUBLISH) {
				publish_seen = true;
				publish_ok = (m.successful == 1);
			}
			continue;
		}
		struct advice a = {.interval = -1};
		if (m.advice.p)
			scan_object(m.advice.p, m.advice.p + m.advice.n, advice_field, &a);
		if (span_eq(a.reconnect, "handshake"))
			need_handshake = true;
		if (m.successful == 0 && !span_eq(m.channel, "/meta/connect")) {
			st.bayeux_errors++;
			note_error("%.*s failed: %.*s", (int)m.channel.n, m.channel.p,
			           (int)m.error.n, m.error.p ? m.error.p : "");
		}
		if (span_eq(m.channel, "/meta/handshake") && req == R_HANDSHAKE) {
			if (m.successful == 1 && m.client_id.p && m.client_id.n < CLIENT_ID_MAX) {
				memcpy(cl->client_id, m.client_id.p, m.client_id.n);
				cl->client_id[m.client_id.n] = '\0';
				handshake_ok = true;
			}
		} else if (span_eq(m.channel, "/meta/connect") && req == R_CONNECT) {
			connect_ok = (m.successful == 1);
			if (!connect_ok && !need_handshake) {
				st.bayeux_errors++;
				note_error("/meta/connect failed: %.*s", (int)m.error.n,
				           m.error.p ? m.error.p : "");
			}
			if (a.interval > 0)
				connect_interval = a.interval;
			if (a.multiple_clients)
				st.multiple_clients++;
		} else if (span_eq(m.channel, "/meta/subscribe") && req == R_SUBSCRIBE) {
			subscribe_ok = (m.successful == 1);
		}
	}

	switch (req) {
	case R_PUBLISH:
		if (in_window(c->t_sent)) {
			st.inflight_measured--;
			if (publish_seen && publish_ok) {
				st.published++;
				st.expected += (uint64_t)chan_subs[c->chan];
			} else {
				st.publish_failed++;
			}
		}
		if (need_handshake && cl->state == CS_READY)
			client_rehandshake(cl);
		break;
	case R_HANDSHAKE:
		if (!handshake_ok) {
			cl->retry_delay = RETRY_DELAY_NS * 10;
			client_wait(cl, cl->retry_delay, CS_HANDSHAKE);
			break;
		}
		if (opt.sse && cl->kind == K_SUB) {
			/* Faye's order: subscribe, open the stream, then connect. */
			if (opt.idle)
				stream_start(cl);
			else
				send_subscribe(cl);
			break;
		}
		cl->state = CS_CONNECT0;
		send_connect(cl, &cl->conns[0], true);
		break;
	case R_CONNECT:
		if (phase == PH_MEASURE && cl->kind == K_SUB && cl->state == CS_POLLING)
			st.connect_returns++;
		if (need_handshake) {
			client_rehandshake(cl);
			break;
		}
		if (opt.sse && cl->kind == K_SUB) {
			if (cl->state != CS_STREAMING)
				break; /* the stream broke meanwhile; reopening sends one */
			if (!connect_ok) {
				cl->next_connect = now + RETRY_DELAY_NS * 10;
				break;
			}
			if (!cl->ever_ready) {
				cl->ever_ready = true;
				st.ready_subs++;
			}
			if (connect_interval > 0)
				cl->es_interval = connect_interval * 1000000LL;
			/* Faye's client waits advice.interval (the poll timeout). */
			int64_t gap = cl->es_interval > 0 ? cl->es_interval : NS;
			cl->next_connect = now + gap;
			/* Long enough to close the idle connection, as a browser
			 * (or Node's 5 s keep-alive timeout) would. */
			if (gap > 5 * NS)
				conn_close(c);
			break;
		}
		if (cl->state == CS_CONNECT0) {
			if (!connect_ok) {
				client_wait(cl, RETRY_DELAY_NS * 10, CS_HANDSHAKE);
				break;
			}
			if (cl->kind == K_PUB) {
				cl->state = CS_READY;
				if (!cl->ever_ready) {
					cl->ever_ready = true;
					st.ready_pubs++;
				}
				cl->next_keepalive = now + (int64_t)(opt.keepalive * NS);
				if (!cl->next_send || cl->next_send < now)
					cl->next_send = now;
			} else if (opt.idle) {
				cl->state = CS_POLLING;
				if (!cl->ever_ready) {
					cl->ever_ready = true;
					st.ready_subs++;
				}
				send_connect(cl, c, opt.connect_loop);
			} else {
				send_subscribe(cl);
			}
			break;
		}
		if (cl->kind == K_PUB) /* keep-alive connect */
			break;
		if (phase >= PH_DONE)
			break;
		if (connect_interval > 0)
			client_wait(cl, connect_interval * 1000000LL, CS_POLLING);
		else
			send_connect(cl, c, opt.connect_loop);
		break;
	case R_SUBSCRIBE:
		if (need_handshake) {
			client_rehandshake(cl);
			break;
		}
		if (!subscribe_ok) {
			client_wait(cl, RETRY_DELAY_NS * 10, CS_SUBSCRIBE);
			break;
		}
		if (!cl->subscribed) {
			cl->subscribed = true;
			chan_subs[cl->chan]++;
		}
		if (opt.sse && cl->kind == K_SUB) {
			stream_start(cl); /* ready once its first connect is answered */
			break;
		}
		if (!cl->ever_ready) {
			cl->ever_ready = true;
			st.ready_subs++;
		}
		cl->state = CS_POLLING;
		send_connect(cl, c, false);
		break;
	default:
		break;
	}
}

/*---- HTTP response parsing ----*/

static char *chunk_buf;
static size_t chunk_cap;

/* Tries to parse one response from c->rbuf.  Returns 1 if one was handled,
 * 0 if more bytes are needed, -1 on a protocol error.  *close_after is set
 * when the server asked to close the connection. */
static int parse_response(struct conn *c, bool *close_after, bool eof)
{
	char *b = c->rbuf;
	size_t n = c->rlen;
	char *hend = memmem(b, n, "\r\n\r\n", 4);
	if (!hend)
		return n > 65536 ? -1 : 0;
	if (n < 12 || memcmp(b, "HTTP/1.", 7))
		return -1;
	int status = atoi(b + 9);
	long clen = -1;
	bool chunked = false, conn_close_hdr = !memcmp(b, "HTTP/1.0", 8);
	char *line = (char *)memchr(b, '\n', (size_t)(hend - b)) + 1;
	while (line < hend) {
		char *le = memchr(line, '\n', (size_t)(hend + 2 - line));
		if (!le)
			break;
		size_t ll = (size_t)(le - line);
		char *colon = memchr(line, ':', ll);
		if (colon) {
			size_t kl = (size_t)(colon - line);
			char *v = colon + 1;
			size_t vl = (size_t)(le - v);
			if (kl == 14 && !strncasecmp(line, "content-length", 14))
				clen = strtol(v, NULL, 10);
			else if (kl == 17 && !strncasecmp(line, "transfer-encoding", 17))
				chunked = memmem(v, vl, "chunked", 7) != NULL;
			else if (kl == 10 && !strncasecmp(line, "connection", 10)) {
				if (memmem(v, vl, "close", 5) || memmem(v, vl, "Close", 5))
					conn_close_hdr = true;
				else if (memmem(v, vl, "keep-alive", 10) ||
				         memmem(v, vl, "Keep-Alive", 10))
					conn_close_hdr = false;
			} else if (kl == 10 && !strncasecmp(line, "set-cookie", 10))
				store_cookie(c->cl, v, vl);
		}
		line = le + 1;
	}
	char *bs = hend + 4;
	size_t avail = n - (size_t)(bs - b);
	size_t consumed;
	const char *bodyp;
	size_t bodyn;
	if (status >= 100 && status < 200) { /* interim response: drop it */
		consumed = (size_t)(bs - b);
		memmove(b, b + consumed, n - consumed);
		c->rlen -= consumed;
		return c->rlen ? parse_response(c, close_after, eof) : 0;
	}
	if (chunked) {
		size_t off = 0, out = 0;
		for (;;) {
			char *crlf = memmem(bs + off, avail - off, "\r\n", 2);
			if (!crlf)
				return 0;
			unsigned long csz = strtoul(bs + off, NULL, 16);
			size_t dstart = (size_t)(crlf + 2 - bs);
			if (csz == 0) {
				char *tend =
				        memmem(bs + dstart - 2, avail - dstart + 2, "\r\n\r\n", 4);
				if (!tend)
					return 0;
				consumed = (size_t)(tend + 4 - b);
				break;
			}
			if (dstart + csz + 2 > avail)
				return 0;
			if (out + csz > chunk_cap) {
				chunk_cap = (out + csz) * 2;
				chunk_buf = xrealloc(chunk_buf, chunk_cap);
			}
			memcpy(chunk_buf + out, bs + dstart, csz);
			out += csz;
			off = dstart + csz + 2;
		}
		bodyp = chunk_buf;
		bodyn = out;
	} else if (clen >= 0) {
		if (avail < (size_t)clen)
			return 0;
		bodyp = bs;
		bodyn = (size_t)clen;
		consumed = (size_t)(bs - b) + (size_t)clen;
	} else {
		if (!eof)
			return 0;
		bodyp = bs;
		bodyn = avail;
		consumed = n;
		conn_close_hdr = true;
	}
	*close_after = conn_close_hdr;
	if (c->busy)
		on_response(c, status, bodyp, bodyn);
	memmove(b, b + consumed, n - consumed);
	c->rlen = n - consumed;
	return 1;
}

/*---- Event stream reading (--transport sse) ----*/

static void conn_dead(struct conn *c, const char *why);

/* Calls fn for each message of the JSON array [p, e) that has a channel;
 * false (counted and noted as "malformed JSON in WHAT") when it is not one. */
static bool each_message(const char *p, const char *e, const char *what,
                         void (*fn)(struct msg *m, void *arg), void *arg)
{
	p = ws(p, e);
	if (p >= e || *p != '[') {
		st.http_errors++;
		note_error("%s is not a JSON array", what);
		return false;
	}
	p = ws(p + 1, e);
	while (p < e && *p != ']') {
		struct msg m = {.successful = -1};
		const char *q = scan_object(p, e, msg_field, &m);
		if (!q) {
			st.http_errors++;
			note_error("malformed JSON in %s", what);
			return false;
		}
		p = ws(q, e);
		if (p < e && *p == ',')
			p = ws(p + 1, e);
		if (m.channel.p)
			fn(&m, arg);
	}
	return true;
}

struct sse_msg_ctx {
	struct sse *s;
	int64_t now;
};

static void sse_message(struct msg *m, void *arg)
{
	struct sse_msg_ctx *x = arg;
	if (!(m->channel.n > 6 && !memcmp(m->channel.p, "/meta/", 6))) {
		if (m->data.p)
			on_delivery(m, x->now);
		return;
	}
	struct advice a = {.interval = -1};
	if (m->advice.p)
		scan_object(m->advice.p, m->advice.p + m->advice.n, advice_field, &a);
	if (span_eq(a.reconnect, "handshake"))
		x->s->need_handshake = true;
}

/* One SSE event's data: a JSON array of messages (Faye and bayeuxd both). */
static void sse_dispatch(struct client *cl, struct sse *s, const char *p, size_t n, int64_t now)
{
	(void)cl;
	st.sse_events++;
	struct sse_msg_ctx x = {s, now};
	each_message(p, p + n, "an SSE event", sse_message, &x);
}

/* One line of the event stream, at ebuf[off], len bytes without its end. */
static void sse_line(struct client *cl, struct sse *s, size_t off, size_t len, int64_t now)
{
	char *l = s->ebuf + off;
	if (len == 0) { /* blank line: the event is complete */
		if (s->d_has)
			sse_dispatch(cl, s, s->ebuf + s->d_off, s->d_len, now);
		s->d_has = false;
		return;
	}
	if (l[0] == ':') {
		st.sse_comments++;
		return;
	}
	char *colon = memchr(l, ':', len);
	size_t flen = colon ? (size_t)(colon - l) : len;
	char *v = colon ? colon + 1 : l + len;
	if (v < l + len && *v == ' ')
		v++;
	size_t vlen = (size_t)(l + len - v);
	if (flen == 4 && !memcmp(l, "data", 4)) {
		if (!s->d_has) {
			s->d_has = true;
			s->d_off = (size_t)(v - s->ebuf);
			s->d_len = vlen;
		} else {
			/* Joined with a line feed, in place: the gap before this
			 * line's value holds at least "data:" and a line end. */
			char *dst = s->ebuf + s->d_off + s->d_len;
			*dst = '\n';
			memmove(dst + 1, v, vlen);
			s->d_len += 1 + vlen;
		}
	} else if (flen == 2 && !memcmp(l, "id", 2)) {
		if (vlen < sizeof cl->last_id && !memchr(v, '\0', vlen)) {
			memcpy(cl->last_id, v, vlen);
			cl->last_id[vlen] = '\0';
		}
	}
	/* retry: and event: do not matter here: a stream that ends is
	 * reopened at once, and every event is a message event. */
}

/* Parses the complete lines of decoded stream text; keeps the rest. */
static void sse_lines(struct client *cl, struct sse *s, int64_t now)
{
	char *b = s->ebuf;
	size_t n = s->elen, pos = s->epos;
	if (s->cr_end && pos < n) { /* CR LF split across reads */
		if (b[pos] == '\n')
			pos++;
		s->cr_end = false;
	}
	while (pos < n) {
		size_t i = pos;
		while (i < n && b[i] != '\n' && b[i] != '\r')
			i++;
		if (i == n)
			break;
		size_t eol = 1;
		if (b[i] == '\r') {
			if (i + 1 == n)
				s->cr_end = true; /* a line end now; an LF next is its rest */
			else if (b[i + 1] == '\n')
				eol = 2;
		}
		sse_line(cl, s, pos, i - pos, now);
		pos = i + eol;
	}
	/* Drop what was parsed, but not the data of an unfinished event. */
	size_t keep = s->d_has && s->d_off < pos ? s->d_off : pos;
	if (keep) {
		memmove(b, b + keep, n - keep);
		if (s->d_has)
			s->d_off -= keep;
	}
	s->elen = n - keep;
	s->epos = pos - keep;
}

static void sse_append(struct sse *s, const char *p, size_t n)
{
	if (s->ecap - s->elen < n) {
		size_t cap = s->ecap ? s->ecap : 1024;
		while (cap - s->elen < n)
			cap *= 2;
		s->ebuf = xrealloc(s->ebuf, cap);
		s->ecap = cap;
	}
	memcpy(s->ebuf + s->elen, p, n);
	s->elen += n;
}

/* The stream's response headers: status, framing, cookies. */
static int stream_head(struct conn *c, char *b, char *hend, bool *chunked, long *clen)
{
	struct sse *s = c->sse;
	if (hend - b < 12 || memcmp(b, "HTTP/1.", 7))
		return -1;
	int status = atoi(b + 9);
	*chunked = false;
	*clen = -1;
	s->close_after = !memcmp(b, "HTTP/1.0", 8);
	char *line = (char *)memchr(b, '\n', (size_t)(hend + 2 - b)) + 1;
	while (line < hend) {
		char *le = memchr(line, '\n', (size_t)(hend + 2 - line));
		if (!le)
			break;
		size_t ll = (size_t)(le - line);
		char *colon = memchr(line, ':', ll);
		if (colon) {
			size_t kl = (size_t)(colon - line);
			char *v = colon + 1;
			size_t vl = (size_t)(le - v);
			if (kl == 14 && !strncasecmp(line, "content-length", 14))
				*clen = strtol(v, NULL, 10);
			else if (kl == 17 && !strncasecmp(line, "transfer-encoding", 17))
				*chunked = memmem(v, vl, "chunked", 7) != NULL;
			else if (kl == 10 && !strncasecmp(line, "connection", 10))
				s->close_after =
				        memmem(v, vl, "close", 5) || memmem(v, vl, "Close", 5);
			else if (kl == 10 && !strncasecmp(line, "set-cookie", 10))
				store_cookie(c->cl, v, vl);
		}
		line = le + 1;
	}
	return status;
}

/* The stream is open (200): Faye's client connects once it is. */
static void stream_opened(struct client *cl)
{
	st.stream_opens++;
	if (cl->state == CS_STREAM_OPEN) {
		cl->state = CS_STREAMING;
		send_es_connect(cl);
	}
}

/* The server ended the stream cleanly (rollover): reopen it at once with
 * Last-Event-ID, as EventSource does (after retry:, which we skip). */
static void stream_ended(struct client *cl, struct conn *c)
{
	st.stream_ends++;
	c->busy = false;
	c->req = R_NONE;
	bool close = c->sse->close_after;
	sse_reset(c->sse);
	if (close)
		conn_close(c);
	if (phase < PH_DONE && cl->state == CS_STREAMING)
		stream_start(cl);
}

/* Decodes the stream's bytes in c->rbuf (chunked, Content-Length or to
 * EOF) into event text and parses its complete lines.  Returns false when
 * the connection is no longer ours to read (closed, ended or reopened). */
static bool stream_input(struct conn *c, bool eof)
{
	struct client *cl = c->cl;
	struct sse *s = c->sse;
	char *p = c->rbuf, *e = c->rbuf + c->rlen;
	int64_t now = now_ns();
	bool ended = false;
	const char *bad = NULL;
	while (p < e && !ended && !bad) {
		switch (s->state) {
		case SS_HEAD: {
			char *hend = memmem(p, (size_t)(e - p), "\r\n\r\n", 4);
			if (!hend) {
				if (e - p > 65536)
					bad = "oversized stream headers";
				goto parsed;
			}
			bool chunked;
			long clen;
			int status = stream_head(c, p, hend, &chunked, &clen);
			p = hend + 4;
			if (status >= 100 && status < 200)
				break;
			if (status != 200) {
				/* Refused: 404 is bayeuxd's "no such session". */
				char why[64];
				snprintf(why, sizeof why, "HTTP %d on the stream", status);
				conn_close(c);
				if (status == 404 || status == 400) {
					st.stream_errors++;
					note_error("%s", why);
					c->busy = false;
					c->req = R_NONE;
					sse_reset(s);
					client_rehandshake(cl);
				} else {
					client_fail(cl, c, why);
				}
				return false;
			}
			if (chunked) {
				s->state = SS_SIZE;
			} else if (clen >= 0) {
				s->state = SS_LEN;
				s->left = (uint64_t)clen;
				ended = clen == 0;
			} else {
				s->state = SS_EOF;
				s->close_after = true;
			}
			stream_opened(cl);
			break;
		}
		case SS_SIZE: {
			char *crlf = memmem(p, (size_t)(e - p), "\r\n", 2);
			if (!crlf) {
				if (e - p > 1024)
					bad = "bad chunk size line";
				goto parsed;
			}
			char *end;
			unsigned long long sz = strtoull(p, &end, 16);
			if (end == p) {
				bad = "bad chunk size";
				break;
			}
			p = crlf + 2;
			if (sz == 0) {
				s->state = SS_TRAILER;
			} else {
				s->left = sz;
				s->state = SS_DATA;
			}
			break;
		}
		case SS_DATA:
		case SS_LEN:
		case SS_EOF: {
			size_t n = (size_t)(e - p);
			if (s->state != SS_EOF && n > s->left)
				n = (size_t)s->left;
			sse_append(s, p, n);
			p += n;
			if (s->state == SS_EOF)
				break;
			s->left -= n;
			if (s->left == 0) {
				if (s->state == SS_DATA)
					s->state = SS_DATA_END;
				else
					ended = true;
			}
			break;
		}
		case SS_DATA_END:
			if (e - p < 2)
				goto parsed;
			if (p[0] != '\r' || p[1] != '\n')
				bad = "no CRLF after a chunk";
			p += 2;
			s->state = SS_SIZE;
			break;
		case SS_TRAILER: {
			char *crlf = memmem(p, (size_t)(e - p), "\r\n", 2);
			if (!crlf)
				goto parsed;
			ended = crlf == p; /* the blank line: the response is over */
			p = crlf + 2;
			break;
		}
		default:
			bad = "bytes on a closed stream";
			break;
		}
	}
parsed:
	memmove(c->rbuf, p, (size_t)(e - p));
	c->rlen = (size_t)(e - p);
	if (s->elen > s->epos)
		sse_lines(cl, s, now);
	if (bad) {
		conn_close(c);
		client_fail(cl, c, bad);
		return false;
	}
	if (s->need_handshake) {
		conn_close(c);
		client_rehandshake(cl);
		return false;
	}
	if (eof && s->state == SS_EOF)
		ended = true;
	if (ended) {
		stream_ended(cl, c);
		return false;
	}
	return true;
}

/* Reads what arrived on a stream connection. */
static void stream_read(struct conn *c)
{
	for (;;) {
		if (c->rcap - c->rlen < 1024) {
			c->rcap = c->rcap ? c->rcap * 2 : RBUF_INIT;
			c->rbuf = xrealloc(c->rbuf, c->rcap);
		}
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
		if (n > 0) {
			c->rlen += (size_t)n;
			c->got_bytes = true;
			if (!stream_input(c, false))
				return;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		/* EOF or error: the end of an EOF-delimited stream, or a break. */
		if (n == 0 && !stream_input(c, true))
			return;
		conn_dead(c, n == 0 ? "stream closed by server" : "recv failed (stream)");
		return;
	}
}

/* The connection died: retry a request that went out on a kept-alive
 * connection and got no bytes back (the server may close idle ones), else
 * count an error. */
static void conn_dead(struct conn *c, const char *why)
{
	bool retry = c->busy && c->reused && !c->got_bytes && c->req != R_PUBLISH;
	conn_close(c);
	if (!c->busy)
		return;
	if (retry) {
		st.retries++;
		c->reused = false;
		if (!conn_open(c)) {
			client_fail(c->cl, c, "reconnect failed");
			return;
		}
		c->woff = 0;
		return; /* flushed when the connect completes */
	}
	client_fail(c->cl, c, why);
}

/* A pushed message of a WebSocket frame: deliveries are timed. */
static void ws_message(struct msg *m, void *arg)
{
	if (m->data.p)
		on_delivery(m, *(int64_t *)arg);
}

/* One text frame on a subscriber's socket (--transport websocket). */
static void ws_text(struct conn *c, const char *b, size_t n)
{
	const char *p = ws(b, b + n), *e = b + n;
	bool meta = false;
	/* A frame with a meta reply answers the outstanding request; one of
	 * deliveries only was pushed. */
	for (const char *q = p; q + 6 < e; q++)
		if (q[0] == '/' && !memcmp(q, "/meta/", 6)) {
			meta = true;
			break;
		}
	if (meta && c->busy) {
		on_response(c, 200, b, n);
		return;
	}
	if (p >= e || *p != '[')
		return;
	int64_t now = now_ns();
	if (phase == PH_MEASURE)
		st.push_frames++;
	each_message(p, e, "a WebSocket frame", ws_message, &now);
}

/* Reads a subscriber's socket: the 101, then frames. */
static void ws_read(struct conn *c)
{
	for (;;) {
		if (c->rcap - c->rlen < 4096) {
			c->rcap = c->rcap ? c->rcap * 2 : 65536;
			c->rbuf = xrealloc(c->rbuf, c->rcap);
		}
		ssize_t r = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			conn_dead(c, r == 0 ? "socket closed by server" : "recv failed");
			return;
		}
		c->rlen += (size_t)r;
		c->got_bytes = true;
		size_t off = 0;
		if (c->wsst == 1) {
			char *h = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
			if (!h)
				continue;
			if (c->rlen < 12 || memcmp(c->rbuf + 9, "101", 3) != 0) {
				conn_dead(c, "WebSocket upgrade refused");
				return;
			}
			c->wsst = 2;
			off = (size_t)(h + 4 - c->rbuf);
		}
		for (;;) {
			unsigned char *f = (unsigned char *)c->rbuf + off;
			size_t avail = c->rlen - off, hl = 2, len;
			if (avail < 2)
				break;
			len = f[1] & 0x7f;
			if (len == 126) {
				if (avail < 4)
					break;
				len = (size_t)f[2] << 8 | f[3];
				hl = 4;
			} else if (len == 127) {
				if (avail < 10)
					break;
				len = 0;
				for (int i = 0; i < 8; i++)
					len = len << 8 | f[2 + i];
				hl = 10;
			}
			if (avail < hl + len)
				break;
			int op = f[0] & 0x0f;
			off += hl + len;
			if (op == 1)
				ws_text(c, (const char *)f + hl, len);
			else if (op == 8) {
				conn_dead(c, "WebSocket closed by server");
				return;
			}
			if (c->fd < 0)
				return;
		}
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
}

static void on_event(struct conn *c, uint32_t ev)
{
	if (c->fd < 0)
		return;
	if (c->connecting) {
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
			int err = 0;
			socklen_t len = sizeof err;
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err) {
				st.conn_errors++;
				note_error("connect: %s", strerror(err));
				conn_close(c);
				if (c->busy)
					client_fail(c->cl, c, "connect failed");
				return;
			}
			c->connecting = false;
		} else {
			return;
		}
	}
	if ((ev & EPOLLOUT) && c->woff < c->wlen) {
		if (!conn_flush(c)) {
			conn_dead(c, "write failed");
			return;
		}
	}
	if (c->sse && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
		stream_read(c);
		return;
	}
	if (c->ws && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
		ws_read(c);
		return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			if (c->rcap - c->rlen < 1024) {
				c->rcap = c->rcap ? c->rcap * 2 : RBUF_INIT;
				c->rbuf = xrealloc(c->rbuf, c->rcap);
			}
			ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
			if (n > 0) {
				c->rlen += (size_t)n;
				c->got_bytes = true;
				for (;;) {
					bool close_after = false;
					int r = parse_response(c, &close_after, false);
					if (r < 0) {
						conn_dead(c, "malformed HTTP response");
						return;
					}
					if (r == 0)
						break;
					if (close_after) {
						/* The response was handled; a new request may
						 * already be queued on this conn: reopen. */
						bool pending = c->busy;
						conn_close(c);
						if (pending) {
							c->reused = false;
							if (!conn_open(c))
								client_fail(c->cl, c,
								            "reconnect failed");
							else
								c->woff = 0;
						}
						return;
					}
				}
				if (c->fd < 0)
					return;
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			/* EOF or error */
			if (n == 0 && c->rlen) {
				bool close_after;
				parse_response(c, &close_after, true);
			}
			conn_dead(c, n == 0 ? "connection closed by server" : "recv failed");
			return;
		}
	}
}

/*---- Publishing ----*/

static void publishers_tick(int64_t now)
{
	bool publishing = (phase == PH_WARMUP || phase == PH_MEASURE);
	double interval = opt.rate > 0 ? (double)opt.publishers * NS / opt.rate : 0;
	for (long i = opt.subscribers; i < nclients; i++) {
		struct client *cl = &clients[i];
		if (cl->state != CS_READY)
			continue;
		for (int k = 0; k < cl->nconns; k++) {
			struct conn *c = &cl->conns[k];
			if (c->busy)
				continue;
			if (k == 0 && !opt.no_keepalive && now >= cl->next_keepalive) {
				cl->next_keepalive = now + (int64_t)(opt.keepalive * NS);
				send_connect(cl, c, true);
				continue;
			}
			if (!publishing)
				break;
			if (interval > 0) {
				if (cl->next_send > now)
					break;
				int64_t lag = now - cl->next_send;
				if (phase == PH_MEASURE && lag > st.max_lag)
					st.max_lag = lag;
				cl->next_send += (int64_t)interval;
			}
			send_publish(cl, c);
			if (cl->state != CS_READY)
				break;
		}
	}
}

/* Milliseconds until the next scheduled publish, capped. */
static int next_timeout_ms(int64_t now)
{
	int64_t best = now + 50 * 1000000LL;
	if ((phase == PH_WARMUP || phase == PH_MEASURE) && opt.rate > 0) {
		for (long i = opt.subscribers; i < nclients; i++) {
			struct client *cl = &clients[i];
			if (cl->state != CS_READY || cl->next_send >= best)
				continue;
			/* Only a publisher with a free connection can act; one
			 * behind schedule with all connections busy waits for an
			 * ack (an epoll event), not a timer: no busy loop. */
			for (int k = 0; k < cl->nconns; k++)
				if (!cl->conns[k].busy) {
					best = cl->next_send;
					break;
				}
		}
	}
	int64_t d = best - now;
	if (d <= 0)
		return 0;
	return (int)((d + 999999) / 1000000);
}

/*---- Options ----*/

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: bayeux-load --url http://127.0.0.1:PORT/cometd [options]\n"
	        "\n"
	        "Bayeux load generator: subscribers run a long-polling /meta/connect loop\n"
	        "(or read an eventsource stream: --transport sse), publishers publish\n"
	        "messages stamped with their send time; reports\n"
	        "deliveries and latency. One final JSON line goes to stdout.\n"
	        "\n"
	        "  --url URL            server endpoint (IPv4 literal or localhost), required\n"
	        "  --subscribers N      subscriber clients, one TCP connection each (default %d)\n"
	        "  --sub-ports P[,P...] subscribers connect to these ports of --url's host,\n"
	        "                       round robin (cluster nodes; default --url's port)\n"
	        "  --pub-port P         publishers connect to this port (default --url's port)\n"
	        "  --channels C         channels; subscriber i takes /bench/(i %% C) (default %d)\n"
	        "  --publishers P       publisher clients (default %d)\n"
	        "  --rate R             aggregate publishes/s; 0 = as fast as acks return\n"
	        "                       (default %.0f)\n"
	        "  --inflight K         outstanding publishes per publisher = its connections\n"
	        "                       (default %d)\n"
	        "  --payload BYTES      filler bytes in each message's data (default %d)\n"
	        "  --warmup S           seconds of publishing before measuring (default %.0f)\n"
	        "  --duration S         measured seconds (default %.0f)\n"
	        "  --drain S            seconds to wait for measured deliveries (default %.0f)\n"
	        "  --setup S            seconds allowed for handshakes/subscribes (default %.0f)\n"
	        "  --hard-stop S        absolute limit of the run; default setup+warmup+\n"
	        "                       duration+drain+2\n"
	        "  --ramp N             clients setting up at once (default %d)\n"
	        "  --channel-prefix P   channel name prefix (default /bench)\n"
	        "  --keepalive S        publisher /meta/connect {timeout:0} period, keeps\n"
	        "                       their sessions alive (default %.0f; 0 = never)\n"
	        "  --transport T        long-polling (default), sse or websocket: subscribers use\n"
	        "                       CometD's WebSocket wire (handshake, subscribe, connects as\n"
	        "                       frames, deliveries pushed), or Faye's\n"
	        "                       eventsource (GET <path>/<clientId> event stream, connects\n"
	        "                       POSTed at the advised interval); publishers long-poll\n"
	        "  --idle               idle mode: subscribers only handshake and hold\n"
	        "                       /meta/connect (or, with sse, a stream) for --duration;\n"
	        "                       no publishers\n"
	        "  --connect-loop       like --idle, but every /meta/connect asks\n"
	        "                       advice {timeout:0}: a request-rate test (connects_per_s)\n"
	        "  --phase-events       print '@phase NAME' lines on stderr at phase changes\n"
	        "                       (bench/compare samples the server there)\n"
	        "  --progress / --no-progress\n"
	        "                       progress line on stderr each second (default: when\n"
	        "                       stderr is a terminal)\n"
	        "  --help               this text\n"
	        "\n"
	        "Latency counts from the publish request's send time (not its schedule);\n"
	        "max_lag_ms in the report says how far publishing fell behind the rate.\n",
	        DEF_SUBSCRIBERS, DEF_CHANNELS, DEF_PUBLISHERS, DEF_RATE, DEF_INFLIGHT, DEF_PAYLOAD,
	        DEF_WARMUP_S, DEF_DURATION_S, DEF_DRAIN_S, DEF_SETUP_S, DEF_RAMP, DEF_KEEPALIVE_S);
}

static long parse_long(const char *flag, const char *v, long min, long max)
{
	char *end;
	errno = 0;
	long x = v ? strtol(v, &end, 10) : 0;
	if (!v || errno || *end || end == v || x < min || x > max)
		die("%s must be an integer between %ld and %ld, got '%s'", flag, min, max,
		    v ? v : "(nothing)");
	return x;
}

static double parse_double(const char *flag, const char *v, double min, double max)
{
	char *end;
	errno = 0;
	double x = v ? strtod(v, &end) : 0;
	if (!v || errno || *end || end == v || x < min || x > max)
		die("%s must be a number between %g and %g, got '%s'", flag, min, max,
		    v ? v : "(nothing)");
	return x;
}

static void parse_url(const char *url)
{
	const char *p = url;
	if (strncmp(p, "http://", 7))
		die("--url must start with http:// (got '%s')", url);
	p += 7;
	const char *slash = strchr(p, '/');
	const char *hostend = slash ? slash : p + strlen(p);
	const char *colon = memchr(p, ':', (size_t)(hostend - p));
	char host[64];
	size_t hl = (size_t)((colon ? colon : hostend) - p);
	if (hl == 0 || hl >= sizeof host)
		die("--url has no usable host: '%s'", url);
	memcpy(host, p, hl);
	host[hl] = '\0';
	long port = 80;
	if (colon) {
		char ps[16];
		size_t pl = (size_t)(hostend - colon - 1);
		if (pl == 0 || pl >= sizeof ps)
			die("--url has a bad port: '%s'", url);
		memcpy(ps, colon + 1, pl);
		ps[pl] = '\0';
		port = parse_long("--url port", ps, 1, 65535);
	}
	opt.addr.sin_family = AF_INET;
	opt.addr.sin_port = htons((uint16_t)port);
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1)
		die("--url host must be an IPv4 address or localhost, got '%s'", host);
	snprintf(opt.host, sizeof opt.host, "%.*s", (int)(hostend - p), p);
	snprintf(opt.path, sizeof opt.path, "%s", slash ? slash : "/");
}

static void parse_args(int argc, char **argv)
{
	opt.subscribers = DEF_SUBSCRIBERS;
	opt.channels = DEF_CHANNELS;
	opt.publishers = DEF_PUBLISHERS;
	opt.rate = DEF_RATE;
	opt.inflight = DEF_INFLIGHT;
	opt.payload = DEF_PAYLOAD;
	opt.warmup = DEF_WARMUP_S;
	opt.duration = DEF_DURATION_S;
	opt.drain = DEF_DRAIN_S;
	opt.setup = DEF_SETUP_S;
	opt.ramp = DEF_RAMP;
	opt.keepalive = DEF_KEEPALIVE_S;
	opt.hard_stop = -1;
	opt.channel_prefix = "/bench";
	opt.progress = isatty(2);
	bool publishers_set = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define FLAG(name) (!strcmp(a, name) && (i++, 1))
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--idle")) {
			opt.idle = true;
		} else if (!strcmp(a, "--connect-loop")) {
			opt.idle = opt.connect_loop = true;
		} else if (FLAG("--transport")) {
			if (v && !strcmp(v, "sse"))
				opt.sse = true;
			else if (v && !strcmp(v, "websocket"))
				opt.websocket = true;
			else if (v && !strcmp(v, "long-polling"))
				opt.sse = opt.websocket = false;
			else
				die("--transport must be long-polling, sse or websocket, got '%s'",
				    v ? v : "(nothing)");
		} else if (!strcmp(a, "--phase-events")) {
			opt.phase_events = true;
		} else if (!strcmp(a, "--progress")) {
			opt.progress = true;
		} else if (!strcmp(a, "--no-progress")) {
			opt.progress = false;
		} else if (FLAG("--url")) {
			if (!v)
				die("--url needs a value");
			opt.url = v;
		} else if (FLAG("--sub-ports")) {
			if (!v)
				die("--sub-ports needs PORT[,PORT...]");
			for (const char *q = v; *q && opt.n_sub_ports < 8;) {
				char *end;
				long port = strtol(q, &end, 10);
				if (end == q || port < 1 || port > 65535 || (*end && *end != ','))
					die("--sub-ports must be PORT[,PORT...] (at most 8), got '%s'", v);
				opt.sub_ports[opt.n_sub_ports++] = (uint16_t)port;
				q = *end ? end + 1 : end;
			}
		} else if (FLAG("--pub-port")) {
			opt.pub_port = (uint16_t)parse_long(a, v, 1, 65535);
		} else if (FLAG("--subscribers")) {
			opt.subscribers = parse_long(a, v, 0, 1000000);
		} else if (FLAG("--channels")) {
			opt.channels = parse_long(a, v, 1, 1000000);
		} else if (FLAG("--publishers")) {
			opt.publishers = parse_long(a, v, 0, 100000);
			publishers_set = true;
		} else if (FLAG("--rate")) {
			opt.rate = parse_double(a, v, 0, 1e9);
		} else if (FLAG("--inflight")) {
			opt.inflight = parse_long(a, v, 1, 1000);
		} else if (FLAG("--payload")) {
			opt.payload = parse_long(a, v, 0, 60000);
		} else if (FLAG("--warmup")) {
			opt.warmup = parse_double(a, v, 0, 3600);
		} else if (FLAG("--duration")) {
			opt.duration = parse_double(a, v, 0.1, 3600);
		} else if (FLAG("--drain")) {
			opt.drain = parse_double(a, v, 0, 3600);
		} else if (FLAG("--setup")) {
			opt.setup = parse_double(a, v, 0.1, 3600);
		} else if (FLAG("--hard-stop")) {
			opt.hard_stop = parse_double(a, v, 0.1, 36000);
		} else if (FLAG("--ramp")) {
			opt.ramp = parse_long(a, v, 1, 1000000);
		} else if (FLAG("--keepalive")) {
			opt.keepalive = parse_double(a, v, 0, 3600);
			opt.no_keepalive = (opt.keepalive == 0);
		} else if (FLAG("--channel-prefix")) {
			if (!v || v[0] != '/' || strlen(v) > 100)
				die("--channel-prefix must start with '/' and be at most 100 "
				    "characters");
			opt.channel_prefix = v;
		} else {
			usage(stderr);
			die("unknown option '%s'", a);
		}
#undef FLAG
	}
	if (!opt.url)
		die("--url is required (e.g. --url http://127.0.0.1:8080/cometd)");
	parse_url(opt.url);
	if (opt.sse && opt.websocket)
		die("--transport takes one of long-polling, sse, websocket");
	if ((opt.sse || opt.websocket) && opt.connect_loop)
		die("--connect-loop is a long-polling test; it takes no --transport sse");
	if (opt.idle) {
		if (publishers_set && opt.publishers)
			die("--idle takes no publishers (got --publishers %ld)", opt.publishers);
		opt.publishers = 0;
	}
	if (opt.hard_stop < 0)
		opt.hard_stop = opt.setup + opt.warmup + opt.duration + opt.drain + 2;
}

/*---- Main ----*/

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static long raise_nofile(long need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	if ((rlim_t)need > rl.rlim_cur)
		die("--subscribers %ld and --publishers %ld x --inflight %ld need about %ld file "
		    "descriptors; the limit is %llu (raise it with ulimit -n)",
		    opt.subscribers, opt.publishers, opt.inflight, need,
		    (unsigned long long)rl.rlim_cur);
	return (long)rl.rlim_cur;
}

/* Moves to phase p, announcing it on stderr when asked (--phase-events). */
static void set_phase(enum phase p)
{
	phase = p;
	if (opt.phase_events) {
		if (opt.progress)
			fputc('\n', stderr);
		fprintf(stderr, "@phase %s\n", phase_name[p]);
		fflush(stderr);
	}
}

static void progress_line(int64_t now)
{
	static uint64_t last_deliv;
	static int64_t last_t;
	double dt = last_t ? (now - last_t) / 1e9 : 1;
	fprintf(stderr,
	        "\r[%5.1fs] %-7s subs %lu/%ld pubs %lu/%ld published %lu delivered %lu (%.0f/s) "
	        "errors %lu rehs %lu   ",
	        (now - t_start) / 1e9, phase_name[phase], (unsigned long)st.ready_subs,
	        opt.subscribers, (unsigned long)st.ready_pubs, opt.publishers,
	        (unsigned long)st.published, (unsigned long)st.delivered_all,
	        (st.delivered_all - last_deliv) / dt, (unsigned long)st.http_errors,
	        (unsigned long)st.rehandshakes);
	last_deliv = st.delivered_all;
	last_t = now;
}

static void json_escape(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s < 0x20)
			continue;
		fputc(*s, f);
	}
}

static void report(void)
{
	double secs = (t_measure_end && t_measure) ? (t_measure_end - t_measure) / 1e9 : 0;
	double cpu = cpu_measure_end - cpu_measure_start;
	long held = 0;
	for (long i = 0; i < opt.subscribers; i++) {
		if (opt.sse) {
			struct conn *c = &clients[i].conns[1];
			if (c->busy && c->req == R_STREAM && c->sse->state > SS_HEAD)
				held++; /* open streams */
		} else if (clients[i].state == CS_POLLING && clients[i].conns[0].busy &&
		           clients[i].conns[0].req == R_CONNECT) {
			held++;
		}
	}
	double ratio = st.expected ? (double)st.delivered / (double)st.expected : 0;
	FILE *f = stdout;
	fprintf(f, "{\"mode\":\"%s\",\"transport\":\"%s\",\"url\":\"",
	        opt.connect_loop ? "connect-loop"
	        : opt.idle       ? "idle"
	                         : "pubsub",
	        opt.sse ? "sse" : opt.websocket ? "websocket" : "long-polling");
	json_escape(f, opt.url);
	fprintf(f,
	        "\",\"subscribers\":%ld,\"channels\":%ld,\"publishers\":%ld,\"rate\":%g,"
	        "\"inflight\":%ld,\"payload\":%ld,\"warmup_s\":%g,\"duration_s\":%.3f,"
	        "\"ready_subscribers\":%lu,\"ready_publishers\":%lu,\"held\":%ld,"
	        "\"published\":%lu,\"publish_failed\":%lu,\"publishes_per_s\":%.1f,"
	        "\"expected\":%lu,\"delivered\":%lu,\"delivery_ratio\":%.6f,"
	        "\"deliveries_per_s\":%.1f,"
	        "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}"
	        ","
	        "\"max_lag_ms\":%.3f,\"http_errors\":%lu,\"connect_errors\":%lu,"
	        "\"bayeux_errors\":%lu,\"retries\":%lu,\"rehandshakes\":%lu,"
	        "\"connect_returns\":%lu,\"connects_per_s\":%.1f,\"push_frames_per_s\":%.1f,"
	        "\"multiple_clients\":%lu,"
	        "\"gen_cpu_s\":%.3f,\"gen_cpu_pct\":%.1f,\"interrupted\":%s,\"first_error\":\"",
	        opt.subscribers, opt.channels, opt.publishers, opt.rate, opt.inflight, opt.payload,
	        opt.warmup, secs, (unsigned long)st.ready_subs, (unsigned long)st.ready_pubs, held,
	        (unsigned long)st.published, (unsigned long)st.publish_failed,
	        secs ? st.published / secs : 0, (unsigned long)st.expected,
	        (unsigned long)st.delivered, ratio, secs ? st.delivered / secs : 0,
	        hist_quantile_ms(0.50), hist_quantile_ms(0.90), hist_quantile_ms(0.99),
	        hist_quantile_ms(0.999), hist_max / 1e6, st.max_lag / 1e6,
	        (unsigned long)st.http_errors, (unsigned long)st.conn_errors,
	        (unsigned long)st.bayeux_errors, (unsigned long)st.retries,
	        (unsigned long)st.rehandshakes, (unsigned long)st.connect_returns,
	        secs ? st.connect_returns / secs : 0, secs ? st.push_frames / secs : 0,
	        (unsigned long)st.multiple_clients, cpu,
	        secs ? 100.0 * cpu / secs : 0, interrupted ? "true" : "false");
	json_escape(f, first_error);
	fputc('"', f);
	if (opt.sse)
		fprintf(f,
		        ",\"stream_opens\":%lu,\"stream_ends\":%lu,\"stream_errors\":%lu,"
		        "\"sse_events\":%lu,\"sse_comments\":%lu,\"es_connects\":%lu",
		        (unsigned long)st.stream_opens, (unsigned long)st.stream_ends,
		        (unsigned long)st.stream_errors, (unsigned long)st.sse_events,
		        (unsigned long)st.sse_comments, (unsigned long)st.es_connects);
	fprintf(f, "}\n");
	fflush(f);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	/* An sse subscriber holds a second connection while it sets up (its
	 * POSTs'; closed between connects once the interval is long). */
	raise_nofile(opt.subscribers + opt.publishers * opt.inflight + 32 +
	             (opt.sse ? (opt.ramp < opt.subscribers ? opt.ramp : opt.subscribers) : 0));

	payload_str = xrealloc(NULL, (size_t)opt.payload + 1);
	memset(payload_str, 'x', (size_t)opt.payload);
	payload_str[opt.payload] = '\0';

	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	nclients = opt.subscribers + opt.publishers;
	clients = calloc((size_t)nclients + 1, sizeof *clients);
	chan_subs = calloc((size_t)opt.channels, sizeof *chan_subs);
	if (!clients || !chan_subs)
		die("out of memory");
	for (long i = 0; i < nclients; i++) {
		struct client *cl = &clients[i];
		cl->kind = i < opt.subscribers ? K_SUB : K_PUB;
		cl->idx = (int)i;
		cl->chan = (int)(i % opt.channels);
		/* An sse subscriber POSTs on conns[0] and streams on conns[1]. */
		cl->nconns = cl->kind == K_SUB ? (opt.sse ? 2 : 1) : (int)opt.inflight;
		cl->conns = calloc((size_t)cl->nconns, sizeof *cl->conns);
		if (!cl->conns)
			die("out of memory");
		for (int k = 0; k < cl->nconns; k++) {
			cl->conns[k].fd = -1;
			cl->conns[k].cl = cl;
			cl->conns[k].ws = opt.websocket && cl->kind == K_SUB;
		}
		if (cl->kind == K_SUB && opt.sse &&
		    !(cl->conns[1].sse = calloc(1, sizeof(struct sse))))
			die("out of memory");
	}

	t_start = now_ns();
	int64_t setup_end = t_start + (int64_t)(opt.setup * NS);
	t_hard = t_start + (int64_t)(opt.hard_stop * NS);
	int64_t last_progress = t_start, last_wake_scan = 0;
	long next_start = 0;
	enum { MAXEV = 1024 };
	struct epoll_event evs[MAXEV];

	while (phase != PH_DONE) {
		int64_t now = now_ns();
		if (interrupted || now >= t_hard)
			break;

		/* Ramp: keep at most opt.ramp clients in setup at once.  The
		 * few publishers start first, so that a slow server still gets
		 * published to if not every subscriber is set up in time. */
		if (next_start < nclients) {
			long in_setup = (long)(next_start - (long)(st.ready_subs + st.ready_pubs));
			while (next_start < nclients && in_setup < opt.ramp) {
				long k = next_start++;
				long i = k < opt.publishers ? opt.subscribers + k
				                            : k - opt.publishers;
				send_handshake(&clients[i]);
				in_setup++;
			}
		}

		/* Phase changes. */
		if (phase == PH_SETUP && (((long)st.ready_subs == opt.subscribers &&
		                           (long)st.ready_pubs == opt.publishers) ||
		                          now >= setup_end)) {
			set_phase(PH_WARMUP);
			t_measure = now + (int64_t)(opt.warmup * NS);
			t_measure_end = t_measure + (int64_t)(opt.duration * NS);
			for (long i = opt.subscribers; i < nclients; i++)
				clients[i].next_send = now;
		}
		if (phase == PH_WARMUP && now >= t_measure) {
			set_phase(PH_MEASURE);
			cpu_measure_start = cpu_seconds();
		}
		if (phase == PH_MEASURE && now >= t_measure_end) {
			set_phase(PH_DRAIN);
			cpu_measure_end = cpu_seconds();
			t_drain_end = now + (int64_t)(opt.drain * NS);
		}
		if (phase == PH_DRAIN &&
		    (now >= t_drain_end ||
		     (st.inflight_measured <= 0 && st.delivered >= st.expected && !opt.idle)))
			set_phase(PH_DONE);
		if (phase == PH_DONE)
			break;

		publishers_tick(now);

		/* Wake clients waiting out a delay (every 10 ms is plenty). */
		if (now - last_wake_scan > 10 * 1000000LL) {
			last_wake_scan = now;
			for (long i = 0; i < nclients; i++) {
				struct client *cl = &clients[i];
				if (cl->state == CS_WAIT && now >= cl->wake_at &&
				    !cl->conns[0].busy)
					client_wake(cl);
				else if (cl->state == CS_STREAMING && cl->next_connect &&
				         now >= cl->next_connect && !cl->conns[0].busy &&
				         phase < PH_DONE)
					send_es_connect(cl); /* keeps the session alive */
			}
		}

		if (opt.progress && now - last_progress >= NS) {
			last_progress = now;
			progress_line(now);
		}

		int n = epoll_wait(epfd, evs, MAXEV, next_timeout_ms(now));
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
	}
	if (phase < PH_DRAIN)
		cpu_measure_end = cpu_seconds();
	if (t_measure_end > now_ns() || !t_measure)
		t_measure_end = t_measure ? now_ns() : 0;
	if (opt.progress) {
		progress_line(now_ns());
		fputc('\n', stderr);
	}
	report();
	return interrupted ? 130 : 0;
}
