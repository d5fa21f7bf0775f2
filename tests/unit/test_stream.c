/* Server-Sent Events streams in the core (src/stream.c), with no HTTP: event
 * ids and framing, the replay ring and Last-Event-ID resumption, rollover
 * by age and by bytes, heartbeat timing, and a dropped stream's cleanup.
 * The test plays the transport: it calls bx_stream_fill() and "sends" what
 * was written (moves st->off to the end), as transport_sse.c's reader does. */
#include "helpers.h"

static bx_server *srv;
static fake_waker w;       /* the clients' requests */
static fake_waker sw;      /* the stream's response */
static char text[1 << 18]; /* what the stream sent since the last take() */

#define HB           15000
#define MAX_INTERVAL 10000

static bx_server *server_with(int64_t max_age, size_t max_bytes, size_t replay)
{
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.log_level = BX_LOG_ERROR;
	cfg.timeout_ms = 30000;
	cfg.max_interval_ms = MAX_INTERVAL;
	cfg.sse_heartbeat_ms = HB;
	cfg.sse_max_age_ms = max_age;
	cfg.sse_max_bytes = max_bytes;
	cfg.sse_retry_ms = 1000;
	cfg.sse_replay = replay;
	bx_server *s = NULL;
	cr_assert_eq(bx_server_new(&cfg, &s), 0);
	fake_clock_ms = 1000000;
	s->now = fake_now;
	return s;
}

static void setup(void)
{
	srv = server_with(0, 0, 256);
	memset(&w, 0, sizeof w);
	memset(&sw, 0, sizeof sw);
	text[0] = '\0';
}

static void teardown(void)
{
	bx_server_free(srv);
}

TestSuite(stream, .init = setup, .fini = teardown);

/* Handshakes and subscribes to /s; returns the session with a reference. */
static bx_session *subscribed(void)
{
	const char *id = handshake(srv, &w);
	char body[256];
	snprintf(body, sizeof body,
	         "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":\"/s\"}]",
	         id);
	json_object *r = send_req(srv, body, &w, NULL, NULL);
	cr_assert(successful(r, 0));
	json_object_put(r);
	bx_session *s = bx_session_find(srv, id, strlen(id));
	cr_assert_not_null(s);
	return s;
}

static bx_stream *open_stream(bx_session *s, bool plain, bool has_last, uint64_t last)
{
	bx_stream *st = NULL;
	bx_waker wk = {.suspend = fake_suspend, .resume = fake_resume, .arg = &sw};
	cr_assert_eq(bx_stream_open(srv, s, plain, has_last, last, wk, &st), BX_STREAM_OPENED);
	cr_assert_not_null(st);
	return st;
}

/* One fill; what it wrote is appended to `text` and counted as sent. */
static int fill(bx_stream *st)
{
	int r = bx_stream_fill(srv, st);
	if (r == BX_STREAM_DATA) {
		size_t have = strlen(text), n = st->out.len - st->off;
		cr_assert_lt(have + n, sizeof text);
		memcpy(text + have, st->out.data + st->off, n);
		text[have + n] = '\0';
		st->off = st->out.len;
	}
	return r;
}

/* Fills until the stream waits or ends; returns which. */
static int fill_all(bx_stream *st)
{
	int r;
	while ((r = fill(st)) == BX_STREAM_DATA)
		;
	return r;
}

/* Clears `text` (what was sent so far is checked). */
static void take(void)
{
	text[0] = '\0';
}

/* An open stream past its opening retry: line, parked. */
static bx_stream *parked_stream(bx_session *s, bool plain)
{
	bx_stream *st = open_stream(s, plain, false, 0);
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	cr_assert_str_eq(text, "retry: 1000\n\n");
	take();
	return st;
}

static void publish(int v)
{
	char d[32];
	snprintf(d, sizeof d, "{\"v\":%d}", v);
	cr_assert_eq(bx_publish(srv, "/s", d, strlen(d)), 1);
}

static void run_timer(void)
{
	bx_timer_run(&srv->timer, fake_clock_ms);
}

/*---- Framing and ids ------------------------------------------------------------*/

Test(stream, opens_with_a_retry_field_then_suspends)
{
	bx_session *s = subscribed();
	bx_stream *st = open_stream(s, false, false, 0);
	cr_expect_eq(atomic_load(&srv->stats.streams_now), 1);
	cr_assert_eq(fill(st), BX_STREAM_DATA);
	cr_expect_str_eq(text, "retry: 1000\n\n", "written at once so the client sees it open");
	cr_expect_eq(sw.suspended, 0);
	cr_assert_eq(fill(st), BX_STREAM_WAIT);
	cr_expect_eq(sw.suspended, 1, "nothing to send: it parks instead of spinning");
	cr_expect(st->parked);
	bx_stream_close(srv, st);
	cr_expect_eq(atomic_load(&srv->stats.streams_now), 0);
	bx_session_unref(s);
}

Test(stream, faye_stream_sends_a_batch_as_one_event_numbered_by_its_last_message)
{
	bx_session *s = subscribed();
	bx_stream *st = parked_stream(s, false);
	publish(1);
	cr_expect_eq(sw.resumed, 1, "a message wakes the parked stream");
	cr_expect_not(st->parked);
	publish(2);
	publish(3);
	cr_expect_eq(sw.resumed, 1, "woken once until it parks again");
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	cr_expect_str_eq(text, "id: 3\ndata: [{\"channel\":\"/s\",\"data\":{\"v\":1}},"
	                       "{\"channel\":\"/s\",\"data\":{\"v\":2}},"
	                       "{\"channel\":\"/s\",\"data\":{\"v\":3}}]\n\n");
	take();
	publish(4);
	cr_expect_eq(sw.resumed, 2);
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	cr_expect_str_eq(text, "id: 4\ndata: [{\"channel\":\"/s\",\"data\":{\"v\":4}}]\n\n");
	cr_expect_eq(s->seq, 4);
	cr_expect_eq(s->qlen, 0, "the stream took the queue");
	bx_stream_close(srv, st);
	bx_session_unref(s);
}

Test(stream, plain_stream_sends_one_event_per_message_with_the_session_in_the_id)
{
	bx_session *s = subscribed();
	bx_stream *st = parked_stream(s, true);
	publish(1);
	publish(2);
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	char want[512];
	snprintf(want, sizeof want,
	         "id: %s-1\ndata: {\"channel\":\"/s\",\"data\":{\"v\":1}}\n\n"
	         "id: %s-2\ndata: {\"channel\":\"/s\",\"data\":{\"v\":2}}\n\n",
	         s->id, s->id);
	cr_expect_str_eq(text, want);
	bx_stream_close(srv, st);
	bx_session_unref(s);
}

Test(stream, a_line_break_inside_a_message_starts_a_new_data_line)
{
	bx_session *s = subscribed();
	bx_stream *st = parked_stream(s, true);
	const char *raw = "{\"a\":\n1,\r\n\"b\":\r2}";
	bx_msg *m = bx_msg_new(raw, strlen(raw));
	cr_assert_not_null(m);
	bx_session_deliver(s, m);
	bx_msg_unref(m);
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	char want[256];
	snprintf(want, sizeof want, "id: %s-1\ndata: {\"a\":\ndata: 1,\ndata: \"b\":\ndata: 2}\n\n",
	         s->id);
	cr_expect_str_eq(text, want, "never a bare line break inside an event");
	bx_stream_close(srv, st);
	bx_session_unref(s);
}

Test(stream, messages_queued_before_the_stream_opened_come_first)
{
	bx_session *s = subscribed();
	publish(1);
	publish(2);
	bx_stream *st = open_stream(s, false, false, 0);
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	cr_expect_str_eq(text,
	                 "retry: 1000\n\nid: 2\ndata: [{\"channel\":\"/s\",\"data\":{\"v\":1}},"
	                 "{\"channel\":\"/s\",\"data\":{\"v\":2}}]\n\n");
	bx_stream_close(srv, st);
	bx_session_unref(s);
}

/*---- Replay ring and Last-Event-ID ------------------------------------------------*/

Test(stream, last_event_id_replays_what_was_missed_then_the_queue)
{
	bx_session *s = subscribed();
	bx_stream *a = parked_stream(s, false);
	for (int i = 1; i <= 5; i++) {
		publish(i);
		cr_assert_eq(fill_all(a), BX_STREAM_WAIT);
	}
	cr_expect(strstr(text, "id: 5\n") != NULL, "%s", text);
	take();
	/* The connection died after the client had read up to message 3. */
	bx_stream_close(srv, a);
	publish(6);
	publish(7);
	cr_expect_eq(s->qlen, 2, "queued while no stream is open");

	bx_stream *b = open_stream(s, false, true, 3);
	cr_assert_eq(fill_all(b), BX_STREAM_WAIT);
	cr_expect_str_eq(text, "retry: 1000\n\n"
	                       "id: 5\ndata: [{\"channel\":\"/s\",\"data\":{\"v\":4}},"
	                       "{\"channel\":\"/s\",\"data\":{\"v\":5}}]\n\n"
	                       "id: 7\ndata: [{\"channel\":\"/s\",\"data\":{\"v\":6}},"
	                       "{\"channel\":\"/s\",\"data\":{\"v\":7}}]\n\n");
	bx_stream_close(srv, b);
	bx_session_unref(s);
}

Test(stream, plain_resumption_replays_one_event_per_missed_message)
{
	bx_session *s = subscribed();
	bx_stream *a = parked_stream(s, true);
	for (int i = 1; i <= 3; i++)
		publish(i);
	cr_assert_eq(fill_all(a), BX_STREAM_WAIT);
	take();
	bx_stream_close(srv, a);
	bx_stream *b = open_stream(s, true, true, 1);
	cr_assert_eq(fill_all(b), BX_STREAM_WAIT);
	char want[512];
	snprintf(want, sizeof want,
	         "retry: 1000\n\n"
	         "id: %s-2\ndata: {\"channel\":\"/s\",\"data\":{\"v\":2}}\n\n"
	         "id: %s-3\ndata: {\"channel\":\"/s\",\"data\":{\"v\":3}}\n\n",
	         s->id, s->id);
	cr_expect_str_eq(text, want);
	bx_stream_close(srv, b);
	bx_session_unref(s);
}

Test(stream, resuming_at_the_newest_id_replays_nothing)
{
	bx_session *s = subscribed();
	bx_stream *a = parked_stream(s, false);
	publish(1);
	publish(2);
	cr_assert_eq(fill_all(a), BX_STREAM_WAIT);
	take();
	bx_stream_close(srv, a);
	bx_stream *b = open_stream(s, false, true, 2);
	cr_assert_eq(fill_all(b), BX_STREAM_WAIT);
	cr_expect_str_eq(text, "retry: 1000\n\n");
	bx_stream_close(srv, b);
	bx_session_unref(s);
}

Test(stream, a_last_event_id_beyond_what_was_sent_is_ignored)
{
	bx_session *s = subscribed();
	bx_stream *a = parked_stream(s, false);
	publish(1);
	cr_assert_eq(fill_all(a), BX_STREAM_WAIT);
	take();
	bx_stream_close(srv, a);
	bx_stream *b = open_stream(s, false, true, 99);
	cr_expect_not(b->resume);
	publish(2);
	cr_assert_eq(fill_all(b), BX_STREAM_WAIT);
	cr_expect_str_eq(
	        text, "retry: 1000\n\nid: 2\ndata: [{\"channel\":\"/s\",\"data\":{\"v\":2}}]\n\n",
	        "numbering goes on from the session's own count");
	bx_stream_close(srv, b);
	bx_session_unref(s);
}

Test(stream, the_ring_keeps_only_the_last_sse_replay_messages)
{
	bx_server_free(srv);
	srv = server_with(0, 0, 4);
	bx_session *s = subscribed();
	bx_stream *a = parked_stream(s, false);
	for (int i = 1; i <= 10; i++) {
		publish(i);
		cr_assert_eq(fill_all(a), BX_STREAM_WAIT);
	}
	cr_expect_eq(s->hlen, 4);
	cr_expect_leq(s->hcap, 4);
	take();
	bx_stream_close(srv, a);
	/* The client saw up to 2; only 7..10 are kept: 3..6 are lost. */
	bx_stream *b = open_stream(s, false, true, 2);
	cr_assert_eq(fill_all(b), BX_STREAM_WAIT);
	cr_expect_str_eq(text, "retry: 1000\n\n"
	                       "id: 10\ndata: [{\"channel\":\"/s\",\"data\":{\"v\":7}},"
	                       "{\"channel\":\"/s\",\"data\":{\"v\":8}},"
	                       "{\"channel\":\"/s\",\"data\":{\"v\":9}},"
	                       "{\"channel\":\"/s\",\"data\":{\"v\":10}}]\n\n");
	bx_stream_close(srv, b);
	bx_session_unref(s);
}

Test(stream, the_ring_grows_past_its_first_size_in_order)
{
	bx_session *s = subscribed(); /* --sse-replay 256: the ring starts at 16 */
	bx_stream *a = parked_stream(s, false);
	for (int i = 1; i <= 40; i++) {
		publish(i);
		if (i % 3 == 0)
			cr_assert_eq(fill_all(a), BX_STREAM_WAIT);
	}
	cr_assert_eq(fill_all(a), BX_STREAM_WAIT);
	cr_expect_eq(s->hlen, 40);
	take();
	bx_stream_close(srv, a);
	bx_stream *b = open_stream(s, true, true, 30);
	cr_assert_eq(fill_all(b), BX_STREAM_WAIT);
	char *p = text;
	for (int i = 31; i <= 40; i++) {
		char want[128];
		snprintf(want, sizeof want,
		         "id: %s-%d\ndata: {\"channel\":\"/s\",\"data\":{\"v\":%d}}\n\n", s->id, i,
		         i);
		p = strstr(p, want);
		cr_assert_not_null(p, "message %d missing or out of order in:\n%s", i, text);
	}
	bx_stream_close(srv, b);
	bx_session_unref(s);
}

Test(stream, with_no_ring_a_resumption_replays_nothing)
{
	bx_server_free(srv);
	srv = server_with(0, 0, 0);
	bx_session *s = subscribed();
	bx_stream *a = parked_stream(s, false);
	publish(1);
	publish(2);
	cr_assert_eq(fill_all(a), BX_STREAM_WAIT);
	cr_expect_eq(s->hlen, 0);
	take();
	bx_stream_close(srv, a);
	bx_stream *b = open_stream(s, false, true, 0);
	publish(3);
	cr_assert_eq(fill_all(b), BX_STREAM_WAIT);
	cr_expect_str_eq(
	        text, "retry: 1000\n\nid: 3\ndata: [{\"channel\":\"/s\",\"data\":{\"v\":3}}]\n\n");
	bx_stream_close(srv, b);
	bx_session_unref(s);
}

/*---- Rollover ---------------------------------------------------------------------*/

Test(stream, rolls_over_at_max_age_and_loses_nothing_across_it)
{
	bx_server_free(srv);
	srv = server_with(20000, 0, 256);
	bx_session *s = subscribed();
	bx_stream *a = parked_stream(s, false);
	publish(1);
	cr_assert_eq(fill_all(a), BX_STREAM_WAIT);
	take();
	int resumed = sw.resumed;
	fake_clock_ms += 19999;
	run_timer();
	cr_expect_eq(a->reason, BX_WAKE_NONE);
	cr_expect_eq(s->sink, &a->sink);
	fake_clock_ms += 1;
	run_timer();
	cr_expect_eq(a->reason, BX_WAKE_ROLLOVER, "ends at --sse-max-age");
	cr_expect_null(s->sink, "detached: messages now wait in the queue");
	cr_expect_gt(sw.resumed, resumed, "woken to finish");
	publish(2);
	cr_assert_eq(fill(a), BX_STREAM_END);
	cr_expect_str_eq(text, "", "a beat due at the same time is not sent on an ending stream");
	bx_stream_close(srv, a);
	cr_expect_eq(s->qlen, 1);

	/* The client reconnects (EventSource: after retry, with Last-Event-ID). */
	fake_clock_ms += 1000;
	bx_stream *b = open_stream(s, false, true, 1);
	cr_expect_eq(b->end_at, fake_clock_ms + 20000, "a new stream gets a new age");
	cr_assert_eq(fill_all(b), BX_STREAM_WAIT);
	cr_expect_str_eq(
	        text, "retry: 1000\n\nid: 2\ndata: [{\"channel\":\"/s\",\"data\":{\"v\":2}}]\n\n");
	bx_stream_close(srv, b);
	bx_session_unref(s);
}

Test(stream, rolls_over_at_max_bytes_after_sending_what_it_wrote)
{
	bx_server_free(srv);
	srv = server_with(0, 100, 256);
	bx_session *s = subscribed();
	bx_stream *a = parked_stream(s, true);
	publish(1); /* about 50 bytes an event */
	cr_assert_eq(fill_all(a), BX_STREAM_WAIT);
	cr_expect_eq(a->reason, BX_WAKE_NONE);
	publish(2);
	publish(3);
	cr_assert_eq(fill(a), BX_STREAM_DATA);
	cr_expect_eq(a->reason, BX_WAKE_ROLLOVER, "past --sse-max-bytes (sent %zu)", a->sent);
	cr_expect_null(s->sink);
	publish(4);
	cr_assert_eq(fill(a), BX_STREAM_END);
	char want[512];
	snprintf(want, sizeof want, "id: %s-3\n", s->id);
	cr_expect(strstr(text, want) != NULL, "the batch that crossed the limit was sent: %s",
	          text);
	bx_stream_close(srv, a);
	take();

	bx_stream *b = open_stream(s, true, true, 3);
	cr_assert_eq(fill_all(b), BX_STREAM_WAIT);
	snprintf(want, sizeof want,
	         "retry: 1000\n\nid: %s-4\ndata: {\"channel\":\"/s\",\"data\":{\"v\":4}}\n\n",
	         s->id);
	cr_expect_str_eq(text, want);
	cr_expect_lt(b->sent, 100, "the count starts again");
	bx_stream_close(srv, b);
	bx_session_unref(s);
}

/*---- Heartbeats --------------------------------------------------------------------*/

Test(stream, a_silent_stream_gets_a_comment_every_heartbeat_interval)
{
	bx_session *s = subscribed();
	bx_stream *st = parked_stream(s, false);
	fake_clock_ms += HB - 1;
	run_timer();
	cr_expect_eq(sw.resumed, 0);
	fake_clock_ms += 1;
	run_timer();
	cr_expect_eq(sw.resumed, 1, "heartbeat due");
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	cr_expect_str_eq(text, ":\n\n");
	take();
	fake_clock_ms += HB;
	run_timer();
	cr_expect_eq(sw.resumed, 2);
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	cr_expect_str_eq(text, ":\n\n");
	bx_stream_close(srv, st);
	bx_session_unref(s);
}

Test(stream, an_event_puts_the_next_heartbeat_off)
{
	bx_session *s = subscribed();
	bx_stream *st = parked_stream(s, false);
	fake_clock_ms += 10000;
	publish(1);
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	take();
	int resumed = sw.resumed;
	fake_clock_ms += HB - 1; /* 5 s past the first beat's time */
	run_timer();
	cr_expect_eq(sw.resumed, resumed, "no beat within %d ms of an event", HB);
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	cr_expect_str_eq(text, "");
	fake_clock_ms += 1;
	run_timer();
	cr_expect_eq(sw.resumed, resumed + 1);
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	cr_expect_str_eq(text, ":\n\n");
	bx_stream_close(srv, st);
	bx_session_unref(s);
}

Test(stream, a_beat_due_while_sending_is_written_at_the_next_fill)
{
	bx_session *s = subscribed();
	bx_stream *st = open_stream(s, false, false, 0);
	cr_assert_eq(bx_stream_fill(srv, st), BX_STREAM_DATA); /* not yet sent */
	fake_clock_ms += HB;
	run_timer();
	cr_expect(st->beat_due);
	cr_expect_eq(sw.resumed, 0, "not parked: nothing to wake");
	st->off = st->out.len;
	cr_assert_eq(fill(st), BX_STREAM_DATA);
	cr_expect_str_eq(text, ":\n\n");
	cr_expect_not(st->beat_due);
	bx_stream_close(srv, st);
	bx_session_unref(s);
}

/*---- Lifetime: replacement, removal, a dropped stream -------------------------------*/

Test(stream, an_open_stream_keeps_its_session_alive_without_connects)
{
	bx_session *s = subscribed();
	bx_stream *st = parked_stream(s, false);
	for (int i = 0; i < 8; i++) {
		fake_clock_ms += HB;
		run_timer();
		cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	}
	cr_expect_eq(bx_session_count(srv), 1, "2 min with no connect, well past max-interval");
	cr_expect_not(s->removed);
	bx_stream_close(srv, st);
	bx_session_unref(s);
}

Test(stream, a_dropped_stream_is_detached_and_its_session_expires_max_interval_later)
{
	bx_session *s = subscribed();
	bx_stream *st = parked_stream(s, false);
	fake_clock_ms += 60000; /* long after the handshake's own expiry */
	run_timer();
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	/* The client went away: libmicrohttpd frees the response. */
	bx_stream_close(srv, st);
	cr_expect_null(s->sink);
	cr_expect_eq(atomic_load(&srv->stats.streams_now), 0);
	cr_expect_eq(s->expiry, fake_clock_ms + MAX_INTERVAL);
	publish(1);
	cr_expect_eq(s->qlen, 1, "kept for a reconnecting client");
	fake_clock_ms += MAX_INTERVAL - 1;
	run_timer();
	cr_expect_eq(bx_session_count(srv), 1);
	fake_clock_ms += 1;
	run_timer();
	cr_expect_eq(bx_session_count(srv), 0, "expired: nothing came back for it");
	cr_expect(s->removed);
	cr_expect_eq(s->qlen, 0);
	cr_expect_eq(s->hlen, 0, "the replay ring is freed with the session");
	cr_expect_eq(atomic_load(&s->refs), 1, "only the test's reference is left");
	bx_session_unref(s);
}

Test(stream, a_second_stream_replaces_the_first)
{
	bx_session *s = subscribed();
	bx_stream *a = parked_stream(s, false);
	fake_waker sw2 = {0};
	bx_stream *b = NULL;
	bx_waker wk = {.suspend = fake_suspend, .resume = fake_resume, .arg = &sw2};
	cr_assert_eq(bx_stream_open(srv, s, false, false, 0, wk, &b), BX_STREAM_OPENED);
	cr_expect_eq(a->reason, BX_WAKE_REPLACED);
	cr_expect_eq(sw.resumed, 1, "the old one is woken to end");
	cr_expect_eq(s->sink, &b->sink);
	cr_assert_eq(fill(a), BX_STREAM_END);
	bx_stream_close(srv, a);
	cr_expect_eq(s->sink, &b->sink, "closing the old one leaves the new one attached");
	publish(1);
	cr_expect_eq(sw2.resumed, 0, "not parked yet");
	cr_assert_eq(fill_all(b), BX_STREAM_WAIT);
	cr_expect(strstr(text, "id: 1\n") != NULL, "%s", text);
	bx_stream_close(srv, b);
	bx_session_unref(s);
}

Test(stream, opening_a_stream_releases_a_held_connect_and_keeps_the_queue_for_it)
{
	bx_session *s = subscribed();
	char body[256];
	snprintf(body, sizeof body,
	         "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
	         "\"connectionType\":\"long-polling\",\"id\":\"c\"}]",
	         s->id);
	json_object_put(send_req(srv, body, &w, NULL, NULL)); /* first: at once */
	bx_hold *h = NULL;
	cr_assert_null(send_req(srv, body, &w, NULL, &h));
	cr_assert_not_null(h);
	bx_stream *st = open_stream(s, false, false, 0);
	cr_expect_eq(h->reason, BX_WAKE_STREAM);
	publish(1);
	bx_response res;
	bx_response_init(&res);
	bx_hold_finish(srv, h, &res);
	cr_expect(strstr(res.body.data, "\"v\"") == NULL, "the stream sends it: %s", res.body.data);
	bx_response_free(&res);
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	cr_expect(strstr(text, "id: 1\ndata: [{\"channel\":\"/s\",\"data\":{\"v\":1}}]") != NULL,
	          "%s", text);
	bx_stream_close(srv, st);
	bx_session_unref(s);
}

Test(stream, removing_the_session_ends_its_stream_and_refuses_new_ones)
{
	bx_session *s = subscribed();
	bx_stream *st = parked_stream(s, false);
	bx_session_remove(srv, s, BX_WAKE_DISCONNECT);
	cr_expect_eq(st->reason, BX_WAKE_DISCONNECT);
	cr_expect_eq(sw.resumed, 1);
	cr_assert_eq(fill(st), BX_STREAM_END);
	bx_stream_close(srv, st);
	bx_stream *again = NULL;
	bx_waker wk = {.suspend = fake_suspend, .resume = fake_resume, .arg = &sw};
	cr_expect_eq(bx_stream_open(srv, s, false, false, 0, wk, &again), BX_STREAM_GONE);
	cr_expect_null(again);
	cr_expect_eq(atomic_load(&s->refs), 1);
	bx_session_unref(s);
}

/*---- Large bursts and the browser limit ----------------------------------------------*/

Test(stream, a_burst_is_cut_into_events_of_about_64_kib_each_numbered_by_its_last)
{
	bx_session *s = subscribed();
	bx_stream *st = parked_stream(s, false);
	char d[2100];
	memset(d, 'x', sizeof d);
	d[0] = '"';
	d[sizeof d - 2] = '"';
	d[sizeof d - 1] = '\0';
	for (int i = 0; i < 40; i++) /* 40 x 2 KiB: more than one fill */
		cr_assert_eq(bx_publish(srv, "/s", d, strlen(d)), 1);
	cr_assert_eq(fill(st), BX_STREAM_DATA);
	size_t first = strlen(text);
	cr_expect_lt(first, 70 * 1024, "one fill stays near 64 KiB (%zu)", first);
	cr_expect_gt(s->qlen, 0, "the rest waits in the queue");
	uint64_t n1 = s->seq;
	char want[32];
	snprintf(want, sizeof want, "id: %llu\n", (unsigned long long)n1);
	cr_expect_eq(strncmp(text, want, strlen(want)), 0, "%.20s", text);
	take();
	cr_assert_eq(fill_all(st), BX_STREAM_WAIT);
	cr_expect_eq(s->seq, 40);
	cr_expect_eq(strncmp(text, "id: 40\n", 7), 0, "%.20s", text);
	cr_expect_eq(s->qlen, 0);
	bx_stream_close(srv, st);
	bx_session_unref(s);
}

Test(stream, a_stream_holds_a_browser_connection_like_a_held_connect)
{
	bx_server_free(srv);
	srv = server_with(0, 0, 256); /* --max-sessions-per-browser 1 (default) */
	cr_assert_eq(srv->cfg.max_sessions_per_browser, 1);
	bx_session *a = subscribed(), *b = subscribed();
	strcpy(a->browser, "samebrowser");
	strcpy(b->browser, "samebrowser");
	bx_stream *sa = open_stream(a, false, false, 0);
	bx_stream *sb = NULL;
	bx_waker wk = {.suspend = fake_suspend, .resume = fake_resume, .arg = &sw};
	cr_expect_eq(bx_stream_open(srv, b, false, false, 0, wk, &sb), BX_STREAM_BUSY,
	             "a second tab of the same browser is refused (it long-polls instead)");
	cr_expect_null(sb);
	cr_expect_null(b->sink);
	bx_stream_close(srv, sa);
	sb = open_stream(b, false, false, 0);
	cr_expect_eq(b->sink, &sb->sink, "the first tab's stream closed: its slot is free");
	bx_stream_close(srv, sb);
	bx_session_unref(a);
	bx_session_unref(b);
}
