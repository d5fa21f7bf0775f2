/*
 * stream.c — Server-Sent Events streams in the core (seed §3, §4.3): what a
 * stream sends and when, with no HTTP. transport_sse.c puts it on the wire.
 *
 * Framing is the SSE text format, never HTTP chunks (seed §3.2): an event is
 * "id: N" and "data: ..." lines and a blank line; a heartbeat is a comment
 * line ":" and a blank line. A Faye stream (eventsource connection type)
 * sends each batch as one event whose data is a JSON array of messages, its
 * id the number of the batch's last message; a plain stream sends one event
 * per message, its data the message object, its id "<clientId>-<number>" so
 * that a reconnecting EventSource finds its session again.
 *
 * Messages are numbered as they leave the session's queue for a stream
 * (s->seq counts them) and then kept in a bounded ring (s->hist, the last
 * --sse-replay) so that a client reconnecting with Last-Event-ID: N gets
 * those after N before anything new. Messages queued while no stream is open
 * (a rollover, a dropped connection) simply wait in the queue.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "browser.h"
#include "log.h"
#include "server.h"
#include "stream.h"

/* Most bytes formatted into one fill; the rest waits for the next call. */
#define BX_STREAM_FILL_MAX (64 * 1024)

/*---- Replay ring ---------------------------------------------------------------*/


/* Keeps m (taking over the caller's reference) as the newest sent message. */
static void history_push(bx_session *s, bx_msg *m)
{
	size_t max = s->srv->cfg.sse_replay;
	if (max == 0) {
		bx_msg_unref(m);
		return;
	}
	if (s->hlen == s->hcap && s->hcap < max) {
		size_t cap = s->hcap ? s->hcap * 2 : 16;
		if (cap > max)
			cap = max;
		bx_msg **h = malloc(cap * sizeof *h);
		if (h) {
			for (size_t i = 0; i < s->hlen; i++)
				h[i] = s->hist[(s->hhead + i) % s->hcap];
			free(s->hist);
			s->hist = h;
			s->hcap = cap;
			s->hhead = 0;
		}
	}
	if (s->hcap == 0) {
		bx_msg_unref(m);
		return;
	}
	if (s->hlen == s->hcap) { /* full: forget the oldest */
		bx_msg_unref(s->hist[s->hhead]);
		s->hhead = (s->hhead + 1) % s->hcap;
		s->hlen--;
	}
	s->hist[(s->hhead + s->hlen) % s->hcap] = m;
	s->hlen++;
}

/*---- Event text ----------------------------------------------------------------*/

/* Appends data as the data: lines of an event: a line break inside it
 * (never in our compact JSON, but cheap to be sure of) starts a new line. */
static void put_data(bx_buf *o, const char *p, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] != '\n' && p[i] != '\r')
			continue;
		bx_buf_append(o, p + start, i - start);
		bx_buf_puts(o, "\ndata: ");
		if (p[i] == '\r' && i + 1 < len && p[i + 1] == '\n')
			i++;
		start = i + 1;
	}
	bx_buf_append(o, p + start, len - start);
}

static void put_id(bx_buf *o, const bx_stream *st, uint64_t n)
{
	if (st->plain)
		bx_buf_printf(o, "id: %s-%" PRIu64 "\n", st->session->id, n);
	else
		bx_buf_printf(o, "id: %" PRIu64 "\n", n);
}

/* Writes msgs (numbered first..first+n-1) as events. */
static void put_events(bx_stream *st, bx_msg *const *msgs, size_t n, uint64_t first)
{
	bx_buf *o = &st->out;
	if (n == 0)
		return;
	size_t before = o->len;
	if (st->plain) {
		for (size_t i = 0; i < n; i++) {
			put_id(o, st, first + i);
			bx_buf_puts(o, "data: ");
			put_data(o, msgs[i]->data, msgs[i]->len);
			bx_buf_puts(o, "\n\n");
		}
	} else {
		put_id(o, st, first + n - 1);
		bx_buf_puts(o, "data: [");
		for (size_t i = 0; i < n; i++) {
			if (i)
				bx_buf_putc(o, ',');
			put_data(o, msgs[i]->data, msgs[i]->len);
		}
		bx_buf_puts(o, "]\n\n");
	}
	st->sent += o->len - before;
}

/* Replays what the client missed after st->resume_after. Caller holds the
 * session lock. */
static void replay_locked(bx_stream *st)
{
	bx_session *s = st->session;
	st->resume = false;
	uint64_t oldest = s->seq - s->hlen + 1; /* number of hist's first entry */
	uint64_t from = st->resume_after + 1;
	if (from > s->seq)
		return; /* it has everything */
	if (from < oldest) {
		bx_info("session %.6s…: a stream resumed after message %" PRIu64
		        " but only %zu are kept (--sse-replay): %" PRIu64 " lost",
		        s->id, st->resume_after, s->hlen, oldest - from);
		from = oldest;
	}
	size_t n = (size_t)(s->seq - from + 1);
	bx_msg **v = malloc(n * sizeof *v);
	if (!v)
		return;
	size_t skip = s->hlen - n;
	for (size_t i = 0; i < n; i++)
		v[i] = s->hist[(s->hhead + skip + i) % s->hcap];
	put_events(st, v, n, from);
	free(v);
}

/* Moves queued messages into events, up to BX_STREAM_FILL_MAX bytes. Caller
 * holds the session lock. Returns how many. */
static size_t drain_locked(bx_stream *st)
{
	bx_session *s = st->session;
	size_t n = 0, bytes = 0;
	while (n < s->qlen && (n == 0 || bytes < BX_STREAM_FILL_MAX))
		bytes += s->q[(s->qhead + n++) % s->qcap]->len;
	if (n == 0)
		return 0;
	bx_msg **v = malloc(n * sizeof *v);
	if (!v)
		return 0;
	for (size_t i = 0; i < n; i++)
		v[i] = s->q[(s->qhead + i) % s->qcap];
	put_events(st, v, n, s->seq + 1);
	if (st->out.failed) {
		free(v);
		return 0;
	}
	s->qhead = (s->qhead + n) % s->qcap;
	s->qlen -= n;
	if (s->qlen == 0)
		s->qhead = 0;
	int64_t now_us = bx_clock_us();
	for (size_t i = 0; i < n; i++) {
		bx_metrics_written(&s->srv->stats.m, v[i]->born_us, now_us);
		history_push(s, v[i]); /* the queue's reference moves there */
	}
	s->seq += n;
	free(v);
	atomic_fetch_add(&s->srv->stats.deliveries, n);
	return n;
}

/*---- Attaching and detaching -----------------------------------------------------*/

/* Makes st no longer s's stream: the session lives on for max-interval
 * (a reconnecting client finds it and its queue). Caller holds s->lock. */
static void detach_locked(bx_session *s, bx_stream *st)
{
	if (s->sink != &st->sink)
		return;
	s->sink = NULL;
	if (st->browser_counted) {
		st->browser_counted = false;
		bx_browser_release(s->srv, s->browser);
	}
	if (!s->removed) {
		int64_t e = bx_now(s->srv) + s->srv->cfg.max_interval_ms;
		if (e > s->expiry)
			s->expiry = e;
		bx_session_rearm_locked(s);
	}
}

static void wake_locked(bx_stream *st)
{
	if (st->parked) {
		st->parked = false;
		st->waker.resume(st->waker.arg);
	}
}

static const bx_sink_ops stream_sink_ops;

int bx_stream_open(struct bx_server *srv, bx_session *s, bool plain, bool has_last_id,
                   uint64_t last_id, bx_waker waker, bx_stream **out)
{
	*out = NULL;
	bx_stream *st = calloc(1, sizeof *st);
	if (!st)
		return BX_STREAM_NOMEM;
	bx_buf_init(&st->out);
	st->sink.ops = &stream_sink_ops;
	st->plain = plain;
	st->waker = waker;
	int64_t now = bx_now(srv);

	pthread_mutex_lock(&s->lock);
	if (s->removed || atomic_load(&srv->stopping)) {
		pthread_mutex_unlock(&s->lock);
		free(st);
		return BX_STREAM_GONE;
	}
	/* The stream delivers from now on: a held long-polling connect of the
	 * same client (Faye's first ones) gets its ordinary reply. */
	bx_session_wake_locked(s, BX_WAKE_STREAM);
	/* One sink a session: an older stream (or socket) ends. */
	bx_session_end_sink_locked(s, BX_WAKE_REPLACED);
	/* A stream holds a connection as a held connect does (PROTOCOL.md §4). */
	int counted = bx_browser_hold(srv, s->browser);
	if (counted == BX_BROWSER_FULL) {
		pthread_mutex_unlock(&s->lock);
		free(st);
		return BX_STREAM_BUSY;
	}
	st->browser_counted = counted == BX_BROWSER_COUNTED;
	bx_session_ref(s);
	st->session = s;
	st->next_beat = now + srv->cfg.sse_heartbeat_ms;
	st->end_at = srv->cfg.sse_max_age_ms ? now + srv->cfg.sse_max_age_ms : INT64_MAX;
	if (has_last_id && last_id <= s->seq) {
		st->resume = true;
		st->resume_after = last_id;
	}
	s->sink = &st->sink;
	s->connected = true;
	bx_session_rearm_locked(s);
	pthread_mutex_unlock(&s->lock);
	atomic_fetch_add(&srv->stats.streams_now, 1);
	bx_metrics_conn(&srv->stats.m, BX_TR_EVENTSOURCE, true);
	*out = st;
	return BX_STREAM_OPENED;
}

void bx_stream_close(struct bx_server *srv, bx_stream *st)
{
	bx_session *s = st->session;
	pthread_mutex_lock(&s->lock);
	detach_locked(s, st);
	pthread_mutex_unlock(&s->lock);
	bx_debug("session %.6s…: stream closed", s->id);
	bx_session_unref(s);
	bx_buf_free(&st->out);
	free(st);
	atomic_fetch_sub(&srv->stats.streams_now, 1);
	bx_metrics_conn(&srv->stats.m, BX_TR_EVENTSOURCE, false);
}

/*---- The stream as its session's sink (session.h) ------------------------------*/

static void sink_end(bx_sink *k, int reason)
{
	bx_stream *st = (bx_stream *)k;
	st->reason = reason;
	detach_locked(st->session, st);
	wake_locked(st);
}

static void sink_kick(bx_sink *k)
{
	wake_locked((bx_stream *)k);
}

static int64_t sink_deadline(const bx_sink *k)
{
	const bx_stream *st = (const bx_stream *)k;
	if (st->reason == BX_WAKE_NONE && st->end_at < st->next_beat)
		return st->end_at;
	return st->next_beat;
}

static void sink_timer(bx_sink *k, int64_t now)
{
	bx_stream *st = (bx_stream *)k;
	bx_session *s = st->session;
	if (st->reason == BX_WAKE_NONE && now >= st->end_at) {
		sink_end(k, BX_WAKE_ROLLOVER);
		return;
	}
	if (now >= st->next_beat) {
		st->beat_due = true;
		/* The reader pushes it on when it writes; until then, once per
		 * heartbeat interval is enough. */
		st->next_beat = now + s->srv->cfg.sse_heartbeat_ms;
		wake_locked(st);
	}
	bx_session_rearm_locked(s);
}

static const bx_sink_ops stream_sink_ops = {
        .kick = sink_kick,
        .end = sink_end,
        .deadline = sink_deadline,
        .timer = sink_timer,
};

/*---- Filling -------------------------------------------------------------------*/

int bx_stream_fill(struct bx_server *srv, bx_stream *st)
{
	bx_session *s = st->session;
	const bx_config *cfg = &srv->cfg;
	if (st->off >= st->out.len) {
		/* All sent: reuse the buffer, unless it grew large for a burst. */
		if (st->out.cap > 4 * BX_STREAM_FILL_MAX || st->out.failed) {
			bx_buf_free(&st->out);
			bx_buf_init(&st->out);
		}
		st->out.len = 0;
		st->off = 0;
	}
	size_t before = st->out.len;
	if (!st->started) {
		/* Written at once so the client sees the stream open (Faye waits
		 * for EventSource's open event before it chooses eventsource). */
		st->started = true;
		bx_buf_printf(&st->out, "retry: %lld\n\n", (long long)cfg->sse_retry_ms);
	}
	int64_t now = bx_now(srv);
	pthread_mutex_lock(&s->lock);
	bool attached = s->sink == &st->sink;
	if (attached) {
		if (st->resume)
			replay_locked(st);
		drain_locked(st);
	}
	if (st->out.len > before) {
		st->beat_due = false;
		if (attached) {
			st->next_beat = now + cfg->sse_heartbeat_ms;
			if (cfg->sse_max_bytes && st->sent >= cfg->sse_max_bytes)
				sink_end(&st->sink, BX_WAKE_ROLLOVER);
			else
				bx_session_rearm_locked(s);
		}
	} else if (!attached || st->reason != BX_WAKE_NONE) {
		pthread_mutex_unlock(&s->lock);
		if (st->out.len > st->off)
			return BX_STREAM_DATA;
		bx_debug("session %.6s…: stream ends (reason %d)", s->id, st->reason);
		return BX_STREAM_END;
	} else if (st->beat_due || now >= st->next_beat) {
		st->beat_due = false;
		bx_buf_puts(&st->out, ":\n\n");
		st->next_beat = now + cfg->sse_heartbeat_ms;
		bx_session_rearm_locked(s);
	}
	if (st->out.failed) {
		pthread_mutex_unlock(&s->lock);
		bx_warn("session %.6s…: out of memory writing a stream: ending it", s->id);
		return BX_STREAM_END;
	}
	if (st->out.len > st->off) {
		pthread_mutex_unlock(&s->lock);
		return BX_STREAM_DATA;
	}
	st->parked = true;
	st->waker.suspend(st->waker.arg);
	pthread_mutex_unlock(&s->lock);
	return BX_STREAM_WAIT;
}
