/* The ack extension's queue (src/core/ackq.c) on its own, and through the
 * core: handshake and connect with ext.ack, resending what a lost reply
 * carried, holding, --max-queue; and ext.timesync on meta replies
 * (src/core/timesync.c). PROTOCOL.md §8. */
#include "helpers.h"

#include "core/ackq.h"
#include "core/timesync.h"

/*---- The queue alone ---------------------------------------------------------*/

static bx_msg *msg(int n)
{
	char b[32];
	int len = snprintf(b, sizeof b, "{\"n\":%d}", n);
	return bx_msg_new(b, (size_t)len);
}

/* Pushes messages first..last (one reference each, the queue's own). */
static void push_range(bx_ackq *q, int first, int last, size_t max)
{
	for (int i = first; i <= last; i++) {
		bx_msg *m = msg(i);
		cr_assert(bx_ackq_push(q, m, max));
		bx_msg_unref(m);
	}
}

/* Sends the queue and returns what went out as text "[...]". */
static char *send_all(bx_ackq *q, uint64_t *batch, size_t *count, size_t *fresh)
{
	bx_buf b;
	bx_buf_init(&b);
	bx_buf_putc(&b, '[');
	*batch = bx_ackq_send(q, &b, false, count, fresh, NULL);
	bx_buf_putc(&b, ']');
	size_t len;
	return bx_buf_steal(&b, &len);
}

Test(ackq, batches_are_numbered_from_one_and_closed_by_each_send)
{
	bx_ackq q;
	bx_ackq_init(&q);
	uint64_t batch;
	size_t count, fresh;
	char *t = send_all(&q, &batch, &count, &fresh);
	cr_expect_eq(batch, 1);
	cr_expect_eq(count, 0);
	cr_expect_str_eq(t, "[]");
	free(t);
	push_range(&q, 1, 3, 100);
	t = send_all(&q, &batch, &count, &fresh);
	cr_expect_eq(batch, 2);
	cr_expect_eq(count, 3);
	cr_expect_eq(fresh, 3);
	cr_expect_str_eq(t, "[{\"n\":1},{\"n\":2},{\"n\":3}]");
	free(t);
	bx_ackq_free(&q);
}

Test(ackq, an_ack_drops_its_batches_and_what_follows_is_sent_again_in_order)
{
	bx_ackq q;
	bx_ackq_init(&q);
	uint64_t b1, b2, b3;
	size_t count, fresh;
	push_range(&q, 1, 2, 100);
	free(send_all(&q, &b1, &count, &fresh)); /* batch 1: 1, 2 (received) */
	push_range(&q, 3, 4, 100);
	free(send_all(&q, &b2, &count, &fresh)); /* batch 2: 1..4 (lost on the wire) */
	cr_assert_eq(b2, 2);
	/* The client got batch 1 only: its next connect acks 1. */
	cr_expect_eq(bx_ackq_ack(&q, b1), 2);
	push_range(&q, 5, 5, 100);
	char *t = send_all(&q, &b3, &count, &fresh);
	cr_expect_str_eq(t, "[{\"n\":3},{\"n\":4},{\"n\":5}]");
	cr_expect_eq(count, 3);
	cr_expect_eq(fresh, 1, "3 and 4 went out before");
	cr_expect_eq(b3, 3);
	free(t);
	cr_expect_eq(bx_ackq_ack(&q, b3), 3);
	cr_expect_eq(bx_ackq_len(&q), 0);
	bx_ackq_free(&q);
}

Test(ackq, an_ack_of_zero_or_an_old_batch_drops_nothing_and_acks_repeat_harmlessly)
{
	bx_ackq q;
	bx_ackq_init(&q);
	uint64_t b;
	size_t count, fresh;
	push_range(&q, 1, 3, 100);
	free(send_all(&q, &b, &count, &fresh));
	cr_expect_eq(bx_ackq_ack(&q, 0), 0);
	cr_expect_eq(bx_ackq_len(&q), 3);
	cr_expect_eq(bx_ackq_ack(&q, 1), 3);
	cr_expect_eq(bx_ackq_ack(&q, 1), 0);
	bx_ackq_free(&q);
}

Test(ackq, an_ack_of_a_batch_never_sent_drops_only_what_was_sent)
{
	bx_ackq q;
	bx_ackq_init(&q);
	uint64_t b;
	size_t count, fresh;
	push_range(&q, 1, 2, 100);
	free(send_all(&q, &b, &count, &fresh)); /* closes batch 1 */
	push_range(&q, 3, 3, 100);              /* in open batch 2 */
	cr_expect_eq(bx_ackq_ack(&q, 99), 2, "a forged ack cannot drop unsent messages");
	char *t = send_all(&q, &b, &count, &fresh);
	cr_expect_str_eq(t, "[{\"n\":3}]");
	free(t);
	bx_ackq_free(&q);
}

Test(ackq, overflow_drops_the_oldest_unacknowledged_first_and_counts_it)
{
	bx_ackq q;
	bx_ackq_init(&q);
	uint64_t b;
	size_t count, fresh;
	push_range(&q, 1, 4, 5);
	free(send_all(&q, &b, &count, &fresh)); /* 1..4 sent, not acked */
	push_range(&q, 5, 8, 5);                /* 9 messages into 5 places */
	cr_expect_eq(bx_ackq_len(&q), 5);
	cr_expect_eq(q.dropped, 3);
	char *t = send_all(&q, &b, &count, &fresh);
	cr_expect_str_eq(t, "[{\"n\":4},{\"n\":5},{\"n\":6},{\"n\":7},{\"n\":8}]");
	cr_expect_eq(fresh, 4);
	free(t);
	bx_ackq_free(&q);
}

Test(ackq, the_ring_wraps_and_grows_keeping_order)
{
	bx_ackq q;
	bx_ackq_init(&q);
	uint64_t b;
	size_t count, fresh;
	int next = 1, acked_upto = 0;
	/* Many rounds of push 5, send, ack the previous batch: the ring wraps. */
	for (int round = 0; round < 50; round++) {
		push_range(&q, next, next + 4, 1000);
		next += 5;
		uint64_t prev = b = 0;
		(void)prev;
		char *t = send_all(&q, &b, &count, &fresh);
		/* The first message out is the first not acknowledged. */
		char want[32];
		snprintf(want, sizeof want, "[{\"n\":%d}", acked_upto + 1);
		cr_assert(strncmp(t, want, strlen(want)) == 0, "round %d: %s", round, t);
		free(t);
		if (round % 2) { /* every second reply is "lost": ack only odd rounds */
			bx_ackq_ack(&q, b);
			acked_upto = next - 1;
		}
	}
	bx_ackq_free(&q);
}

/*---- Through the core ------------------------------------------------------*/

BX_SERVER_SUITE(ack);

static json_object *ext_of(json_object *arr, size_t i)
{
	json_object *m = json_object_array_get_idx(arr, i), *e = NULL;
	if (m)
		json_object_object_get_ex(m, "ext", &e);
	return e;
}

static const char *ack_handshake(void)
{
	static char id[64];
	json_object *r = send_req(srv,
	                          "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
	                          "\"supportedConnectionTypes\":[\"long-polling\"],\"id\":\"1\","
	                          "\"ext\":{\"ack\":true}}]",
	                          &w, NULL, NULL);
	cr_assert(successful(r, 0));
	json_object *e = ext_of(r, 0), *a;
	cr_assert(e && json_object_object_get_ex(e, "ack", &a) && json_object_get_boolean(a),
	          "handshake reply says ext.ack: true");
	snprintf(id, sizeof id, "%s", field(r, 0, "clientId"));
	json_object_put(r);
	return id;
}

/* A connect with ext.ack = acked (or none when acked < 0). */
static json_object *ack_connect(const char *id, long acked, int *status, bx_hold **hold)
{
	char b[512];
	if (acked >= 0)
		snprintf(b, sizeof b,
		         "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
		         "\"connectionType\":\"long-polling\",\"id\":\"c\",\"ext\":{\"ack\":%ld}}]",
		         id, acked);
	else
		snprintf(b, sizeof b,
		         "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
		         "\"connectionType\":\"long-polling\",\"id\":\"c\"}]",
		         id);
	return send_req(srv, b, &w, status, hold);
}

/* ext.ack of the last reply in r (the connect reply). */
static long last_ack(json_object *r)
{
	size_t n = json_object_array_length(r);
	json_object *e = ext_of(r, n - 1), *a;
	cr_assert(e && json_object_object_get_ex(e, "ack", &a) &&
	          json_object_is_type(a, json_type_int), "connect reply carries ext.ack");
	return (long)json_object_get_int64(a);
}

static void subscribe(const char *id, const char *ch)
{
	char b[512];
	snprintf(b, sizeof b,
	         "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":\"%s\"}]",
	         id, ch);
	json_object *r = send_req(srv, b, &w, NULL, NULL);
	cr_assert(successful(r, 0));
	json_object_put(r);
}

static void publish(const char *ch, int n)
{
	char b[256];
	snprintf(b, sizeof b, "{\"channel\":\"%s\",\"data\":{\"n\":%d}}", ch, n);
	bx_request req = {.body = b, .len = strlen(b), .transport = BX_CT_LONG_POLLING,
	                  .backend = true};
	bx_response res;
	bx_response_init(&res);
	bx_dispatch(srv, &req, &res);
	cr_assert_eq(res.status, 200, "%s", res.body.data);
	bx_response_free(&res);
}

/* The data.n of every delivery in r, as "1,2,3". */
static void ns(json_object *r, char *out, size_t cap)
{
	out[0] = '\0';
	for (size_t i = 0; i < json_object_array_length(r); i++) {
		json_object *m = json_object_array_get_idx(r, i), *d, *n;
		if (json_object_object_get_ex(m, "data", &d) && json_object_object_get_ex(d, "n", &n))
			snprintf(out + strlen(out), cap - strlen(out), "%s%d", out[0] ? "," : "",
			         json_object_get_int(n));
	}
}

Test(ack, a_lost_connect_reply_is_sent_again_with_the_next_connect)
{
	const char *id = ack_handshake();
	json_object *r = ack_connect(id, 0, NULL, NULL); /* first: answered at once */
	cr_assert(successful(r, 0));
	long b0 = last_ack(r);
	json_object_put(r);
	subscribe(id, "/a");
	publish("/a", 1);
	publish("/a", 2);
	char got[256];
	r = ack_connect(id, b0, NULL, NULL);
	cr_assert_not_null(r, "messages queued: answered at once");
	ns(r, got, sizeof got);
	cr_expect_str_eq(got, "1,2");
	long b1 = last_ack(r);
	cr_expect_gt(b1, b0);
	json_object_put(r);

	/* That reply was lost: the client acks b0 again. It gets 1, 2 again,
	 * then 3, in order. */
	publish("/a", 3);
	r = ack_connect(id, b0, NULL, NULL);
	cr_assert_not_null(r);
	ns(r, got, sizeof got);
	cr_expect_str_eq(got, "1,2,3");
	long b2 = last_ack(r);
	json_object_put(r);

	/* Received: acking b2 leaves nothing; the connect is held. */
	bx_hold *h = NULL;
	r = ack_connect(id, b2, NULL, &h);
	cr_assert_null(r);
	cr_assert_not_null(h, "nothing unacknowledged: held");
	publish("/a", 4);
	cr_expect_eq(w.resumed, 1, "a message releases the held connect");
	bx_response res;
	bx_response_init(&res);
	bx_hold_finish(srv, h, &res);
	r = json_tokener_parse(res.body.data);
	bx_response_free(&res);
	cr_assert_not_null(r);
	ns(r, got, sizeof got);
	cr_expect_str_eq(got, "4");
	cr_expect_gt(last_ack(r), b2);
	json_object_put(r);
}

Test(ack, a_connect_finding_unacknowledged_messages_is_answered_at_once)
{
	const char *id = ack_handshake();
	json_object *r = ack_connect(id, 0, NULL, NULL);
	long b0 = last_ack(r);
	json_object_put(r);
	subscribe(id, "/a");
	publish("/a", 1);
	r = ack_connect(id, b0, NULL, NULL); /* carries 1, reply lost */
	json_object_put(r);
	bx_hold *h = NULL;
	r = ack_connect(id, b0, NULL, &h);
	cr_expect_null(h, "not held: 1 is unacknowledged");
	cr_assert_not_null(r);
	char got[64];
	ns(r, got, sizeof got);
	cr_expect_str_eq(got, "1");
	json_object_put(r);
}

Test(ack, without_the_extension_a_sent_message_is_gone)
{
	const char *id = handshake(srv, &w);
	json_object *r = ack_connect(id, -1, NULL, NULL);
	cr_expect_null(ext_of(r, 0), "no ext.ack without the extension");
	json_object_put(r);
	subscribe(id, "/a");
	publish("/a", 1);
	r = ack_connect(id, -1, NULL, NULL);
	json_object_put(r);
	bx_hold *h = NULL;
	r = ack_connect(id, 0, NULL, &h);
	cr_expect_not_null(h, "nothing kept: held");
	bx_hold_abandon(srv, h);
}

Test(ack, unacknowledged_messages_count_against_max_queue)
{
	bx_server_free(srv);
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.max_queue = 4;
	cfg.log_level = BX_LOG_ERROR;
	cr_assert_eq(bx_server_new(&cfg, &srv), 0);
	srv->now = fake_now;
	const char *id = ack_handshake();
	json_object *r = ack_connect(id, 0, NULL, NULL);
	long b0 = last_ack(r);
	json_object_put(r);
	subscribe(id, "/a");
	for (int i = 1; i <= 3; i++)
		publish("/a", i);
	r = ack_connect(id, b0, NULL, NULL); /* 1..3 sent, reply lost */
	json_object_put(r);
	for (int i = 4; i <= 6; i++)
		publish("/a", i);
	r = ack_connect(id, b0, NULL, NULL);
	char got[64];
	ns(r, got, sizeof got);
	cr_expect_str_eq(got, "3,4,5,6", "four places: 1 and 2 were dropped");
	json_object_put(r);
	cr_expect_eq(atomic_load(&srv->stats.dropped), 2);
}

Test(ack, the_session_going_drops_its_unacknowledged_messages)
{
	const char *id = ack_handshake();
	json_object *r = ack_connect(id, 0, NULL, NULL);
	json_object_put(r);
	subscribe(id, "/a");
	publish("/a", 1);
	r = ack_connect(id, 1, NULL, NULL);
	json_object_put(r);
	char b[256];
	snprintf(b, sizeof b, "[{\"channel\":\"/meta/disconnect\",\"clientId\":\"%s\"}]", id);
	r = send_req(srv, b, &w, NULL, NULL);
	cr_expect(successful(r, 0));
	json_object_put(r);
	/* Nothing to check but the sanitizers and leak checkers: the queue's
	 * references went with the session. */
}

Test(ack, bad_ack_values_are_ignored_not_trusted)
{
	const char *id = ack_handshake();
	json_object *r = ack_connect(id, 0, NULL, NULL);
	json_object_put(r);
	subscribe(id, "/a");
	publish("/a", 1);
	const char *bad[] = {"\"1\"", "-5", "1.5e300", "null", "{}", "[1]", "true"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char b[512];
		snprintf(b, sizeof b,
		         "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\",\"connectionType\":"
		         "\"long-polling\",\"ext\":{\"ack\":%s}}]",
		         id, bad[i]);
		r = send_req(srv, b, &w, NULL, NULL);
		cr_assert_not_null(r, "%s: answered at once", bad[i]);
		char got[64];
		ns(r, got, sizeof got);
		cr_expect_str_eq(got, "1", "ack %s drops nothing", bad[i]);
		json_object_put(r);
	}
}

/*---- Timesync ----------------------------------------------------------------*/

static json_object *timesync_of(json_object *r, size_t i)
{
	json_object *e = ext_of(r, i), *t = NULL;
	if (e)
		json_object_object_get_ex(e, "timesync", &t);
	return t;
}

static int64_t num(json_object *o, const char *k)
{
	json_object *v;
	cr_assert(json_object_object_get_ex(o, k, &v), "has %s", k);
	return json_object_get_int64(v);
}

Test(ack, timesync_on_handshake_and_connect_replies)
{
	int64_t before = bx_wall_ms();
	json_object *r = send_req(srv,
	                          "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
	                          "\"supportedConnectionTypes\":[\"long-polling\"],\"id\":\"1\","
	                          "\"ext\":{\"ack\":true,\"timesync\":{\"tc\":12345,\"l\":0,\"o\":0}}}]",
	                          &w, NULL, NULL);
	cr_assert(successful(r, 0));
	json_object *t = timesync_of(r, 0), *a;
	cr_assert_not_null(t, "%s", json_object_to_json_string(r));
	cr_expect_eq(num(t, "tc"), 12345);
	cr_expect_geq(num(t, "ts"), before);
	cr_expect_leq(num(t, "ts"), bx_wall_ms());
	cr_expect_geq(num(t, "p"), 0);
	cr_expect_eq(num(t, "a"), 12345 - num(t, "ts"));
	cr_expect(json_object_object_get_ex(ext_of(r, 0), "ack", &a), "ack kept beside timesync");
	char id[64];
	snprintf(id, sizeof id, "%s", field(r, 0, "clientId"));
	json_object_put(r);

	/* Connect: both ext members in one ext object. Without l: {tc, ts, p}. */
	char b[512];
	snprintf(b, sizeof b,
	         "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\",\"connectionType\":"
	         "\"long-polling\",\"id\":\"2\",\"ext\":{\"ack\":0,\"timesync\":{\"tc\":777}}}]",
	         id);
	r = send_req(srv, b, &w, NULL, NULL);
	t = timesync_of(r, 0);
	cr_assert_not_null(t);
	cr_expect_eq(num(t, "tc"), 777);
	cr_expect(!json_object_object_get_ex(t, "a", &a), "no a without l");
	cr_expect(json_object_object_get_ex(ext_of(r, 0), "ack", &a));
	json_object_put(r);

	/* An accurate estimate (|a| < 25, l != 0) gets no timesync. */
	int64_t now = bx_wall_ms();
	snprintf(b, sizeof b,
	         "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":\"/x\","
	         "\"ext\":{\"timesync\":{\"tc\":%lld,\"l\":1,\"o\":0}}}]",
	         id, (long long)now);
	r = send_req(srv, b, &w, NULL, NULL);
	cr_expect(successful(r, 0));
	cr_expect_null(timesync_of(r, 0), "%s", json_object_to_json_string(r));
	json_object_put(r);
	/* A wrong one (o off by an hour) does, with a. */
	snprintf(b, sizeof b,
	         "[{\"channel\":\"/meta/unsubscribe\",\"clientId\":\"%s\",\"subscription\":\"/x\","
	         "\"ext\":{\"timesync\":{\"tc\":%lld,\"l\":1,\"o\":3600000}}}]",
	         id, (long long)now);
	r = send_req(srv, b, &w, NULL, NULL);
	t = timesync_of(r, 0);
	cr_assert_not_null(t);
	cr_expect_geq(num(t, "a"), 3600000 - 1000);
	json_object_put(r);
}

Test(ack, timesync_on_an_error_reply_and_a_held_connect_counts_the_wait)
{
	json_object *r = send_req(srv,
	                          "[{\"channel\":\"/meta/connect\",\"clientId\":\"nope\","
	                          "\"ext\":{\"timesync\":{\"tc\":5}}}]",
	                          &w, NULL, NULL);
	cr_expect(!successful(r, 0));
	cr_expect_not_null(timesync_of(r, 0), "402 replies carry it too");
	json_object_put(r);

	const char *id = handshake(srv, &w);
	char b[512];
	snprintf(b, sizeof b,
	         "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\",\"connectionType\":"
	         "\"long-polling\"}]", id);
	json_object_put(send_req(srv, b, &w, NULL, NULL));
	snprintf(b, sizeof b,
	         "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\",\"connectionType\":"
	         "\"long-polling\",\"ext\":{\"timesync\":{\"tc\":5}}}]", id);
	bx_hold *h = NULL;
	send_req(srv, b, &w, NULL, &h);
	cr_assert_not_null(h);
	struct timespec ms30 = {0, 30 * 1000000};
	nanosleep(&ms30, NULL);
	bx_session *s = bx_session_find(srv, id, strlen(id));
	pthread_mutex_lock(&s->lock);
	bx_session_wake_locked(s, BX_WAKE_TIMEOUT);
	pthread_mutex_unlock(&s->lock);
	bx_session_unref(s);
	bx_response res;
	bx_response_init(&res);
	bx_hold_finish(srv, h, &res);
	r = json_tokener_parse(res.body.data);
	bx_response_free(&res);
	json_object *t = timesync_of(r, 0);
	cr_assert_not_null(t);
	cr_expect_geq(num(t, "p"), 25, "p counts the hold");
	json_object_put(r);
}

Test(ack, timesync_is_not_added_to_non_meta_replies_and_bad_values_are_ignored)
{
	const char *id = handshake(srv, &w);
	char b[512];
	snprintf(b, sizeof b,
	         "[{\"channel\":\"/a\",\"clientId\":\"%s\",\"data\":1,"
	         "\"ext\":{\"timesync\":{\"tc\":5}}}]", id);
	json_object *r = send_req(srv, b, &w, NULL, NULL);
	cr_expect(successful(r, 0));
	cr_expect_null(timesync_of(r, 0));
	json_object_put(r);
	const char *bad[] = {"\"x\"", "{\"tc\":\"5\"}", "{\"tc\":1e300}", "{}", "[]", "null"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(b, sizeof b,
		         "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":"
		         "\"/x\",\"ext\":{\"timesync\":%s}}]", id, bad[i]);
		r = send_req(srv, b, &w, NULL, NULL);
		cr_expect(successful(r, 0), "%s", bad[i]);
		cr_expect_null(timesync_of(r, 0), "%s", bad[i]);
		json_object_put(r);
	}
}

/*---- A sink in ack mode --------------------------------------------------------*/

Test(ack, an_event_stream_is_never_kicked_in_ack_mode_the_connect_reply_carries_it)
{
	const char *id = ack_handshake();
	json_object *r = ack_connect(id, 0, NULL, NULL);
	long b0 = last_ack(r);
	json_object_put(r);
	subscribe(id, "/a");
	bx_session *s = bx_session_find(srv, id, strlen(id));
	cr_assert_not_null(s);
	fake_waker sw = {0};
	bx_waker wk = {.suspend = fake_suspend, .resume = fake_resume, .arg = &sw};
	bx_stream *st = NULL;
	cr_assert_eq(bx_stream_open(srv, s, false, false, 0, wk, &st), BX_STREAM_OPENED);
	int res;
	while ((res = bx_stream_fill(srv, st)) == BX_STREAM_DATA)
		st->off = st->out.len; /* the opening retry: line */
	cr_assert_eq(res, BX_STREAM_WAIT);
	size_t sent = st->out.len;

	publish("/a", 1);
	cr_expect_eq(sw.resumed, 0, "the stream was not kicked");
	cr_expect_eq(bx_stream_fill(srv, st), BX_STREAM_WAIT);
	cr_expect_eq(st->out.len, sent, "nothing written on the stream");

	r = ack_connect(id, b0, NULL, NULL);
	cr_assert_not_null(r, "answered at once with what is unacknowledged");
	char got[64];
	ns(r, got, sizeof got);
	cr_expect_str_eq(got, "1");
	cr_expect_gt(last_ack(r), b0);
	json_object_put(r);
	bx_stream_close(srv, st);
	bx_session_unref(s);
}
