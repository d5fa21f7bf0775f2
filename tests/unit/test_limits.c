/* Limits (docs/SECURITY.md, "Limits"): subscriptions per session, sessions
 * and handshakes per client address, and the fixed caps on channel names
 * and JSON nesting. */
#include "helpers.h"
#include "core/limits.h"

static bx_server *srv;
static fake_waker w;

static bx_server *server_with(size_t per_ip, unsigned hs_rate, size_t subs)
{
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.log_level = BX_LOG_ERROR;
	cfg.max_sessions_per_ip = per_ip;
	cfg.max_handshakes_per_ip = hs_rate;
	cfg.max_subscriptions = subs;
	bx_server *s = NULL;
	cr_assert_eq(bx_server_new(&cfg, &s), 0);
	fake_clock_ms = 1000000;
	s->now = fake_now;
	return s;
}

static void teardown(void)
{
	bx_server_free(srv);
}

TestSuite(limits, .fini = teardown);

/* Sends body from address peer; returns the reply array (200) or NULL. */
static json_object *from(const char *peer, const char *body)
{
	bx_request req = {.body = body,
	                  .len = strlen(body),
	                  .transport = BX_CT_LONG_POLLING,
	                  .peer = peer,
	                  .waker = {.suspend = fake_suspend, .resume = fake_resume, .arg = &w}};
	bx_response res;
	bx_response_init(&res);
	bx_dispatch(srv, &req, &res);
	cr_assert_null(res.hold);
	cr_assert_eq(res.status, 200, "%s", res.body.data);
	json_object *out = json_tokener_parse(res.body.data);
	bx_response_free(&res);
	cr_assert_not_null(out);
	return out;
}

#define HANDSHAKE                                                                                  \
	"[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","                                   \
	"\"supportedConnectionTypes\":[\"long-polling\"]}]"

/* Handshakes from peer; returns the error text ("" on success) and the
 * client id in id (size BX_ID_LEN + 1). */
static const char *handshake_from(const char *peer, char *id)
{
	static char err[128];
	json_object *r = from(peer, HANDSHAKE);
	snprintf(err, sizeof err, "%s", successful(r, 0) ? "" : field(r, 0, "error"));
	if (id)
		snprintf(id, BX_ID_LEN + 1, "%.22s", field(r, 0, "clientId"));
	json_object_put(r);
	return err;
}

Test(limits, sessions_per_address_are_capped_and_freed_on_disconnect)
{
	srv = server_with(3, 0, 1000);
	char ids[3][BX_ID_LEN + 1];
	for (int i = 0; i < 3; i++)
		cr_assert_str_eq(handshake_from("192.0.2.1", ids[i]), "");
	cr_expect_str_eq(handshake_from("192.0.2.1", NULL), "503::too_many_sessions_per_ip");
	cr_expect_str_eq(handshake_from("192.0.2.2", NULL), "", "another address is not affected");
	cr_expect_str_eq(handshake_from(NULL, NULL), "", "no address (embedding): no limit");
	cr_expect_eq(bx_peer_sessions(srv, "192.0.2.1"), 3);

	char body[256];
	snprintf(body, sizeof body, "[{\"channel\":\"/meta/disconnect\",\"clientId\":\"%s\"}]",
	         ids[0]);
	json_object_put(from("192.0.2.1", body));
	cr_expect_eq(bx_peer_sessions(srv, "192.0.2.1"), 2);
	cr_expect_str_eq(handshake_from("192.0.2.1", NULL), "", "a freed slot can be used");
}

Test(limits, expired_sessions_free_their_address_slot)
{
	srv = server_with(1, 0, 1000);
	cr_assert_str_eq(handshake_from("2001:db8::1", NULL), "");
	cr_expect_str_eq(handshake_from("2001:db8::1", NULL), "503::too_many_sessions_per_ip");
	fake_clock_ms += 60000;
	bx_timer_run(&srv->timer, fake_clock_ms);
	cr_expect_eq(bx_peer_sessions(srv, "2001:db8::1"), 0);
	cr_expect_str_eq(handshake_from("2001:db8::1", NULL), "");
}

Test(limits, handshakes_per_address_per_second)
{
	srv = server_with(0, 5, 1000);
	for (int i = 0; i < 5; i++)
		cr_assert_str_eq(handshake_from("198.51.100.7", NULL), "", "handshake %d", i);
	json_object *r = from("198.51.100.7", HANDSHAKE);
	cr_expect_str_eq(field(r, 0, "error"), "429::too_many_handshakes");
	cr_expect_str_eq(field(r, 0, "advice"),
	                 "{ \"reconnect\": \"handshake\", \"interval\": 5000 }");
	json_object_put(r);
	cr_expect_str_eq(handshake_from("198.51.100.8", NULL), "",
	                 "another address is not affected");
	fake_clock_ms += 200; /* one token back at 5 a second */
	cr_expect_str_eq(handshake_from("198.51.100.7", NULL), "");
	cr_expect_str_eq(handshake_from("198.51.100.7", NULL), "429::too_many_handshakes");
	fake_clock_ms += 1000;
	for (int i = 0; i < 5; i++)
		cr_expect_str_eq(handshake_from("198.51.100.7", NULL), "", "after a second, %d", i);
}

Test(limits, zero_turns_the_address_limits_off)
{
	srv = server_with(0, 0, 1000);
	for (int i = 0; i < 200; i++)
		cr_assert_str_eq(handshake_from("203.0.113.9", NULL), "");
	cr_expect_eq(bx_peer_sessions(srv, "203.0.113.9"), 0, "nothing is counted");
}

Test(limits, subscriptions_per_session)
{
	srv = server_with(0, 0, 3);
	char id[BX_ID_LEN + 1];
	cr_assert_str_eq(handshake_from(NULL, id), "");
	char body[512];
	snprintf(body, sizeof body,
	         "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
	         "\"subscription\":[\"/a\",\"/b\",\"/c/*\"]}]",
	         id);
	json_object *r = from(NULL, body);
	cr_expect(successful(r, 0), "%s", field(r, 0, "error"));
	json_object_put(r);
	snprintf(body, sizeof body,
	         "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":\"/a\"}]",
	         id);
	r = from(NULL, body);
	cr_expect(successful(r, 0), "subscribing again to one it holds is not one more");
	json_object_put(r);
	snprintf(body, sizeof body,
	         "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":\"/d\"}]",
	         id);
	r = from(NULL, body);
	cr_expect_not(successful(r, 0));
	cr_expect_str_eq(field(r, 0, "error"), "403::too_many_subscriptions");
	json_object_put(r);
	snprintf(body, sizeof body,
	         "[{\"channel\":\"/meta/unsubscribe\",\"clientId\":\"%s\",\"subscription\":\"/b\"},"
	         "{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":\"/d\"}]",
	         id, id);
	r = from(NULL, body);
	cr_expect(successful(r, 1), "after an unsubscribe there is room: %s", field(r, 1, "error"));
	json_object_put(r);
}

/* Fixed caps (channel.h, core.h): documented, not settings. */
Test(limits, channel_name_length_and_depth_and_json_depth)
{
	srv = server_with(0, 0, 1000);
	char id[BX_ID_LEN + 1];
	cr_assert_str_eq(handshake_from(NULL, id), "");
	static char body[4096], ch[1024];
	/* 512 characters pass, 513 do not. */
	for (size_t len = 512; len <= 513; len++) {
		ch[0] = '/';
		memset(ch + 1, 'x', len - 1);
		ch[len] = '\0';
		snprintf(body, sizeof body, "[{\"channel\":\"%s\",\"clientId\":\"%s\",\"data\":1}]",
		         ch, id);
		json_object *r = from(NULL, body);
		if (len == 512)
			cr_expect(successful(r, 0), "%s", field(r, 0, "error"));
		else
			cr_expect_str_eq(field(r, 0, "error"), "405::channel_invalid");
		json_object_put(r);
	}
	/* 32 segments pass, 33 do not. */
	for (int depth = 32; depth <= 33; depth++) {
		ch[0] = '\0';
		for (int i = 0; i < depth; i++)
			strcat(ch, "/s");
		snprintf(body, sizeof body, "[{\"channel\":\"%s\",\"clientId\":\"%s\",\"data\":1}]",
		         ch, id);
		json_object *r = from(NULL, body);
		if (depth == 32)
			cr_expect(successful(r, 0), "%s", field(r, 0, "error"));
		else
			cr_expect_str_eq(field(r, 0, "error"), "405::channel_invalid");
		json_object_put(r);
	}
	/* data nested so that the request is BX_JSON_MAX_DEPTH deep passes;
	 * one more level is HTTP 400. */
	for (int extra = 0; extra <= 1; extra++) {
		int levels = BX_JSON_MAX_DEPTH - 2 + extra; /* the array and the message */
		size_t n =
		        (size_t)snprintf(body, sizeof body,
		                         "[{\"channel\":\"/a\",\"clientId\":\"%s\",\"data\":", id);
		for (int i = 0; i < levels; i++)
			body[n++] = '[';
		for (int i = 0; i < levels; i++)
			body[n++] = ']';
		snprintf(body + n, sizeof body - n, "}]");
		bx_request req = {
		        .body = body, .len = strlen(body), .transport = BX_CT_LONG_POLLING};
		bx_response res;
		bx_response_init(&res);
		bx_dispatch(srv, &req, &res);
		cr_expect_eq(res.status, extra ? 400 : 200, "depth %d: %s", levels + 2,
		             res.body.data);
		bx_response_free(&res);
	}
}

Test(limits, loopback_addresses_are_not_limited)
{
	srv = server_with(1, 1, 1000);
	const char *lo[] = {"127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"};
	for (size_t k = 0; k < sizeof lo / sizeof lo[0]; k++)
		for (int i = 0; i < 5; i++)
			cr_expect_str_eq(handshake_from(lo[k], NULL), "", "%s #%d", lo[k], i);
	cr_expect_str_eq(handshake_from("192.0.2.1", NULL), "");
	cr_expect_str_neq(handshake_from("192.0.2.1", NULL), "");
}
