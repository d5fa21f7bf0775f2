/* Sessions, held connects and expiry with an injectable clock
 * (src/session.c, src/timer.c, src/meta_connect.c). */
#include "helpers.h"

BX_SERVER_SUITE(session);

static char *connect_body(const char *id, const char *extra)
{
	static char b[512];
	snprintf(b, sizeof b,
		 "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
		 "\"connectionType\":\"long-polling\",\"id\":\"c\"%s}]",
		 id, extra);
	return b;
}

/* Handshakes and sends the first connect, which returns at once. */
static const char *connected_client(void)
{
	const char *id = handshake(srv, &w);
	json_object *r = send_req(srv, connect_body(id, ""), &w, NULL, NULL);
	cr_assert(successful(r, 0));
	json_object_put(r);
	return id;
}

Test(session, client_ids_are_22_alphanumeric_and_distinct)
{
	char seen[64][64];
	for (int i = 0; i < 64; i++) {
		const char *id = handshake(srv, &w);
		cr_assert_eq(strlen(id), BX_ID_LEN);
		for (size_t k = 0; k < BX_ID_LEN; k++)
			cr_assert(isalnum((unsigned char)id[k]), "id %s", id);
		for (int j = 0; j < i; j++)
			cr_assert_str_neq(seen[j], id);
		strcpy(seen[i], id);
	}
	cr_expect_eq(bx_session_count(srv), 64);
}

Test(session, expires_after_max_interval_without_a_connect)
{
	const char *id = connected_client();
	bx_session *s = bx_session_find(srv, id, strlen(id));
	cr_assert_not_null(s);
	bx_session_unref(s);

	fake_clock_ms += 9999;
	bx_timer_run(&srv->timer, fake_clock_ms);
	cr_expect_eq(bx_session_count(srv), 1, "interval 0 + max-interval 10000 not yet over");
	fake_clock_ms += 2;
	bx_timer_run(&srv->timer, fake_clock_ms);
	cr_expect_eq(bx_session_count(srv), 0, "expired");
	cr_expect_null(bx_session_find(srv, id, strlen(id)));
}

Test(session, any_message_pushes_expiry_forward)
{
	const char *id = connected_client();
	char body[256];
	snprintf(body, sizeof body,
		 "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":\"/x\"}]",
		 id);
	fake_clock_ms += 8000;
	json_object_put(send_req(srv, body, &w, NULL, NULL));
	fake_clock_ms += 8000;
	bx_timer_run(&srv->timer, fake_clock_ms);
	cr_expect_eq(bx_session_count(srv), 1, "kept alive by the subscribe at +8 s");
	fake_clock_ms += 2001;
	bx_timer_run(&srv->timer, fake_clock_ms);
	cr_expect_eq(bx_session_count(srv), 0);
}

Test(session, held_connect_does_not_expire_and_is_released_at_the_timeout)
{
	const char *id = connected_client();
	bx_hold *h = NULL;
	json_object *r = send_req(srv, connect_body(id, ""), &w, NULL, &h);
	cr_assert_null(r);
	cr_assert_not_null(h, "second connect with nothing queued is held");
	cr_expect_eq(w.suspended, 1);
	cr_expect_eq(w.resumed, 0);

	fake_clock_ms += 29999;
	bx_timer_run(&srv->timer, fake_clock_ms);
	cr_expect_eq(w.resumed, 0, "held past max-interval: a held connect keeps the session");
	fake_clock_ms += 1;
	bx_timer_run(&srv->timer, fake_clock_ms);
	cr_expect_eq(w.resumed, 1, "released at the 30 s timeout");
	cr_expect_eq(h->reason, BX_WAKE_TIMEOUT);

	bx_response res;
	bx_response_init(&res);
	bx_hold_finish(srv, h, &res);
	cr_expect_eq(res.status, 200);
	json_object *a = json_tokener_parse(res.body.data);
	cr_assert_eq(json_object_array_length(a), 1);
	cr_expect_str_eq(field(a, 0, "channel"), "/meta/connect");
	cr_expect_str_eq(field(a, 0, "id"), "c");
	cr_expect(successful(a, 0));
	json_object_put(a);
	bx_response_free(&res);

	fake_clock_ms += 10001;
	bx_timer_run(&srv->timer, fake_clock_ms);
	cr_expect_eq(bx_session_count(srv), 0, "expires max-interval after the reply");
}

Test(session, client_advice_timeout_zero_answers_at_once)
{
	const char *id = connected_client();
	bx_hold *h = NULL;
	json_object *r =
		send_req(srv, connect_body(id, ",\"advice\":{\"timeout\":0}"), &w, NULL, &h);
	cr_expect_null(h);
	cr_assert_not_null(r);
	cr_expect(successful(r, 0));
	json_object_put(r);
}

Test(session, publish_releases_a_held_connect_with_the_message_first)
{
	const char *id = connected_client();
	char body[512];
	snprintf(body, sizeof body,
		 "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":\"/n\"}]",
		 id);
	json_object_put(send_req(srv, body, &w, NULL, NULL));
	bx_hold *h = NULL;
	send_req(srv, connect_body(id, ""), &w, NULL, &h);
	cr_assert_not_null(h);

	cr_expect_eq(bx_publish(srv, "/n", "{\"v\":1}", 7), 1);
	cr_expect_eq(w.resumed, 1);
	cr_expect_eq(h->reason, BX_WAKE_MESSAGE);
	cr_expect_eq(bx_publish(srv, "/n", "2", 1), 1, "queued while the reply is pending");

	bx_response res;
	bx_response_init(&res);
	bx_hold_finish(srv, h, &res);
	json_object *a = json_tokener_parse(res.body.data);
	cr_assert_eq(json_object_array_length(a), 3, "%s", res.body.data);
	cr_expect_str_eq(field(a, 0, "channel"), "/n");
	cr_expect_str_eq(field(a, 0, "data"), "{ \"v\": 1 }");
	cr_expect_str_eq(field(a, 1, "data"), "2");
	cr_expect_str_eq(field(a, 2, "channel"), "/meta/connect");
	cr_expect_str_eq(field(a, 0, "clientId"), "", "never the publisher's clientId");
	json_object_put(a);
	bx_response_free(&res);
}

Test(session, second_connect_releases_the_first_with_http_500_and_keeps_the_queue)
{
	const char *id = connected_client();
	bx_hold *h1 = NULL, *h2 = NULL;
	send_req(srv, connect_body(id, ""), &w, NULL, &h1);
	cr_assert_not_null(h1);
	send_req(srv, connect_body(id, ""), &w, NULL, &h2);
	cr_assert_not_null(h2, "the newer connect is held");
	cr_expect_eq(h1->reason, BX_WAKE_REPLACED);

	bx_response res;
	bx_response_init(&res);
	bx_hold_finish(srv, h1, &res);
	cr_expect_eq(res.status, 500);
	bx_response_free(&res);

	bx_session *s = bx_session_find(srv, id, strlen(id));
	cr_assert_not_null(s);
	bx_session_remove(srv, s, BX_WAKE_DISCONNECT);
	bx_session_unref(s);
	cr_expect_eq(h2->reason, BX_WAKE_DISCONNECT);
	bx_response_init(&res);
	bx_hold_finish(srv, h2, &res);
	cr_expect(strstr(res.body.data, "\"reconnect\":\"none\"") != NULL, "%s", res.body.data);
	bx_response_free(&res);
}

Test(session, full_queue_drops_the_oldest)
{
	bx_server_free(srv);
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.max_queue = 3;
	cfg.log_level = BX_LOG_ERROR;
	cr_assert_eq(bx_server_new(&cfg, &srv), 0);
	srv->now = fake_now;
	const char *id = connected_client();
	char body[256];
	snprintf(body, sizeof body,
		 "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":\"/q\"}]",
		 id);
	json_object_put(send_req(srv, body, &w, NULL, NULL));
	for (int i = 1; i <= 5; i++) {
		char d[16];
		snprintf(d, sizeof d, "%d", i);
		bx_publish(srv, "/q", d, strlen(d));
	}
	json_object *r = send_req(srv, connect_body(id, ""), &w, NULL, NULL);
	cr_assert_eq(json_object_array_length(r), 4);
	cr_expect_str_eq(field(r, 0, "data"), "3");
	cr_expect_str_eq(field(r, 2, "data"), "5");
	json_object_put(r);
}
