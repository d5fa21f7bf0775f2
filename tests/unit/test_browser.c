/* test_browser.c — what the browser-facing modules decide, with no sockets:
 * held connects per browser (browser.c, PROTOCOL.md §4), JSONP callback
 * names and bodies (transport_callback.c, §6), allowed origins (cors.c). */
#include "helpers.h"

#define BROWSER_A "AAAAAAAAAAAAAAAAAAAAAA" /* 22 characters, like our ids */
#define BROWSER_B "BBBBBBBBBBBBBBBBBBBBBB"

static char body_buf[256];

static const char *connect_body(const char *id)
{
	snprintf(body_buf, sizeof body_buf,
	         "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
	         "\"connectionType\":\"long-polling\",\"id\":\"c\"}]",
	         id);
	return body_buf;
}

/* Sends body as if from browser (NULL = no cookie) over long polling. */
static json_object *send_from(bx_server *srv, const char *browser, const char *body, fake_waker *w,
                              bx_hold **hold)
{
	bx_request req = {.body = body,
	                  .len = strlen(body),
	                  .browser = browser,
	                  .transport = BX_CT_LONG_POLLING,
	                  .waker = {.suspend = fake_suspend, .resume = fake_resume, .arg = w}};
	bx_response res;
	bx_response_init(&res);
	bx_dispatch(srv, &req, &res);
	*hold = res.hold;
	json_object *out = NULL;
	if (!res.hold) {
		cr_assert_eq(res.status, 200, "status %d: %s", res.status, res.body.data);
		out = json_tokener_parse(res.body.data);
		cr_assert_not_null(out, "reply is not JSON: %s", res.body.data);
	}
	bx_response_free(&res);
	return out;
}

/* A session of browser whose first connect was answered; writes its id. */
static void connected_session(bx_server *srv, const char *browser, fake_waker *w, char *id)
{
	bx_hold *h = NULL;
	json_object *r = send_from(srv, browser,
	                           "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
	                           "\"supportedConnectionTypes\":[\"long-polling\"]}]",
	                           w, &h);
	cr_assert(successful(r, 0));
	snprintf(id, 64, "%s", field(r, 0, "clientId"));
	json_object_put(r);
	r = send_from(srv, browser, connect_body(id), w, &h);
	cr_assert_null(h, "the first connect is answered at once");
	json_object_put(r);
}

/* The connect reply's advice member of r as text ("" when none). */
static const char *advice_of(json_object *r)
{
	size_t n = json_object_array_length(r);
	return field(r, n - 1, "advice");
}

/* Finishes a released hold and returns its parsed reply. */
static json_object *finish(bx_server *srv, bx_hold *h)
{
	bx_response res;
	bx_response_init(&res);
	bx_hold_finish(srv, h, &res);
	cr_assert_eq(res.status, 200);
	json_object *out = json_tokener_parse(res.body.data);
	bx_response_free(&res);
	return out;
}

Test(browser, second_tab_gets_multiple_clients_advice_at_once)
{
	bx_server *srv = test_server(30000, 10000);
	fake_waker w1 = {0}, w2 = {0};
	char a[64], b[64];
	connected_session(srv, BROWSER_A, &w1, a);
	connected_session(srv, BROWSER_A, &w2, b);

	bx_hold *h1 = NULL, *h2 = NULL;
	json_object *r = send_from(srv, BROWSER_A, connect_body(a), &w1, &h1);
	cr_assert_not_null(h1, "the first tab's connect is held");
	cr_assert_null(r);
	cr_assert_eq(bx_browser_held(srv, BROWSER_A), 1);

	r = send_from(srv, BROWSER_A, connect_body(b), &w2, &h2);
	cr_assert_null(h2, "the second tab's connect is answered at once");
	cr_assert_eq(w2.suspended, 0);
	cr_assert(successful(r, 0));
	cr_assert_str_eq(field(r, 0, "id"), "c");
	json_object *adv = json_tokener_parse(advice_of(r));
	cr_assert_not_null(adv);
	json_object *v;
	cr_assert(json_object_object_get_ex(adv, "multiple-clients", &v) &&
	          json_object_get_boolean(v));
	cr_assert(json_object_object_get_ex(adv, "interval", &v));
	cr_assert_eq(json_object_get_int(v), 2000);
	cr_assert(json_object_object_get_ex(adv, "reconnect", &v));
	cr_assert_str_eq(json_object_get_string(v), "retry");
	json_object_put(adv);
	json_object_put(r);
	cr_assert_eq(bx_browser_held(srv, BROWSER_A), 1, "an unheld connect is not counted");

	bx_hold_abandon(srv, h1);
	cr_assert_eq(bx_browser_held(srv, BROWSER_A), 0, "an abandoned hold is uncounted");
	bx_server_free(srv);
}

Test(browser, extra_tab_is_held_again_once_the_first_is_released_and_advised_back)
{
	bx_server *srv = test_server(30000, 10000);
	fake_waker w1 = {0}, w2 = {0};
	char a[64], b[64];
	connected_session(srv, BROWSER_A, &w1, a);
	connected_session(srv, BROWSER_A, &w2, b);
	bx_hold *h1 = NULL, *h2 = NULL;
	cr_assert_null(send_from(srv, BROWSER_A, connect_body(a), &w1, &h1));
	cr_assert_not_null(h1);
	json_object_put(send_from(srv, BROWSER_A, connect_body(b), &w2, &h2));
	cr_assert_null(h2);

	/* The first tab leaves: its held connect ends with the session. */
	char disc[160];
	snprintf(disc, sizeof disc, "[{\"channel\":\"/meta/disconnect\",\"clientId\":\"%s\"}]", a);
	bx_hold *hd = NULL;
	json_object_put(send_from(srv, BROWSER_A, disc, &w1, &hd));
	cr_assert_eq(w1.resumed, 1);
	cr_assert_eq(bx_browser_held(srv, BROWSER_A), 0);
	json_object_put(finish(srv, h1));

	/* The second tab's next connect is held, and its reply tells the
	 * client to drop the multi-session interval. */
	cr_assert_null(send_from(srv, BROWSER_A, connect_body(b), &w2, &h2));
	cr_assert_not_null(h2);
	cr_assert_eq(bx_browser_held(srv, BROWSER_A), 1);
	fake_clock_ms += 30001;
	bx_timer_run(&srv->timer, fake_clock_ms);
	cr_assert_eq(w2.resumed, 1);
	cr_assert_eq(bx_browser_held(srv, BROWSER_A), 0, "a timed-out hold is uncounted");
	json_object *r = finish(srv, h2);
	const char *adv = advice_of(r);
	cr_assert(strstr(adv, "\"interval\": 0") != NULL, "advice: %s", adv);
	cr_assert(strstr(adv, "multiple-clients") == NULL, "advice: %s", adv);
	json_object_put(r);
	bx_server_free(srv);
}

Test(browser, three_tabs_with_a_limit_of_two_hold_two)
{
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.max_sessions_per_browser = 2;
	cfg.multi_session_interval_ms = 1500;
	cfg.log_level = BX_LOG_ERROR;
	bx_server *srv = NULL;
	cr_assert_eq(bx_server_new(&cfg, &srv), 0);
	srv->now = fake_now;
	fake_waker w[3] = {{0}};
	char id[3][64];
	bx_hold *h[3] = {0};
	for (int i = 0; i < 3; i++)
		connected_session(srv, BROWSER_A, &w[i], id[i]);
	cr_assert_null(send_from(srv, BROWSER_A, connect_body(id[0]), &w[0], &h[0]));
	cr_assert_null(send_from(srv, BROWSER_A, connect_body(id[1]), &w[1], &h[1]));
	cr_assert(h[0] && h[1]);
	json_object *r = send_from(srv, BROWSER_A, connect_body(id[2]), &w[2], &h[2]);
	cr_assert_null(h[2]);
	cr_assert(strstr(advice_of(r), "\"interval\": 1500") != NULL, "%s", advice_of(r));
	cr_assert(strstr(advice_of(r), "multiple-clients") != NULL);
	json_object_put(r);
	cr_assert_eq(bx_browser_held(srv, BROWSER_A), 2);
	bx_hold_abandon(srv, h[0]);
	bx_hold_abandon(srv, h[1]);
	bx_server_free(srv);
}

Test(browser, other_browsers_and_cookieless_clients_are_not_limited)
{
	bx_server *srv = test_server(30000, 10000);
	fake_waker wa = {0}, wb = {0}, wn1 = {0}, wn2 = {0};
	char a[64], b[64], n1[64], n2[64];
	connected_session(srv, BROWSER_A, &wa, a);
	connected_session(srv, BROWSER_B, &wb, b);
	bx_hold *ha = NULL, *hb = NULL, *hn1 = NULL, *hn2 = NULL;
	cr_assert_null(send_from(srv, BROWSER_A, connect_body(a), &wa, &ha));
	cr_assert_null(send_from(srv, BROWSER_B, connect_body(b), &wb, &hb));
	cr_assert(ha && hb, "one connect per browser is held");

	/* No cookie: the handshake hands out a fresh browser id each time. */
	connected_session(srv, NULL, &wn1, n1);
	connected_session(srv, NULL, &wn2, n2);
	cr_assert_null(send_from(srv, NULL, connect_body(n1), &wn1, &hn1));
	cr_assert_null(send_from(srv, NULL, connect_body(n2), &wn2, &hn2));
	cr_assert(hn1 && hn2);
	bx_hold_abandon(srv, ha);
	bx_hold_abandon(srv, hb);
	bx_hold_abandon(srv, hn1);
	bx_hold_abandon(srv, hn2);
	bx_server_free(srv);
}

Test(browser, a_newer_connect_of_the_same_tab_replaces_without_counting_twice)
{
	bx_server *srv = test_server(30000, 10000);
	fake_waker w = {0};
	char a[64];
	connected_session(srv, BROWSER_A, &w, a);
	bx_hold *h1 = NULL, *h2 = NULL;
	cr_assert_null(send_from(srv, BROWSER_A, connect_body(a), &w, &h1));
	cr_assert_null(send_from(srv, BROWSER_A, connect_body(a), &w, &h2));
	cr_assert(h1 && h2, "the newer connect is held, not refused as another tab");
	cr_assert_eq(w.resumed, 1, "the older connect was released");
	cr_assert_eq(bx_browser_held(srv, BROWSER_A), 1);
	bx_response res;
	bx_response_init(&res);
	bx_hold_finish(srv, h1, &res);
	cr_assert_eq(res.status, 500);
	bx_response_free(&res);
	bx_hold_abandon(srv, h2);
	cr_assert_eq(bx_browser_held(srv, BROWSER_A), 0);
	bx_server_free(srv);
}

Test(browser, limit_zero_means_no_limit)
{
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.max_sessions_per_browser = 0;
	cfg.log_level = BX_LOG_ERROR;
	bx_server *srv = NULL;
	cr_assert_eq(bx_server_new(&cfg, &srv), 0);
	srv->now = fake_now;
	fake_waker w1 = {0}, w2 = {0};
	char a[64], b[64];
	connected_session(srv, BROWSER_A, &w1, a);
	connected_session(srv, BROWSER_A, &w2, b);
	bx_hold *h1 = NULL, *h2 = NULL;
	cr_assert_null(send_from(srv, BROWSER_A, connect_body(a), &w1, &h1));
	cr_assert_null(send_from(srv, BROWSER_A, connect_body(b), &w2, &h2));
	cr_assert(h1 && h2);
	bx_hold_abandon(srv, h1);
	bx_hold_abandon(srv, h2);
	bx_server_free(srv);
}

/*---- JSONP --------------------------------------------------------------------*/

Test(jsonp, callback_names_of_the_cometd_client_and_plain_identifiers_are_accepted)
{
	const char *ok[] = {"_cometd_jsonp_0", "cb", "$", "_", "a.b.c", "jQuery123_456", "$x.y$"};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		cr_assert(bx_jsonp_callback_ok(ok[i]), "%s", ok[i]);
	char longest[65];
	memset(longest, 'a', 64);
	longest[64] = '\0';
	cr_assert(bx_jsonp_callback_ok(longest), "64 characters are allowed");
}

Test(jsonp, callback_names_that_could_inject_script_are_refused)
{
	const char *bad[] = {"",    "1cb",      ".cb",  "cb-1",     "cb;alert(1)", "cb(1)",
	                     "c b", "cb\n",     "a[0]", "alert`1`", "cb//",        "\xc3\xa9",
	                     "a=b", "<script>", "cb\"", "a'b"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_not(bx_jsonp_callback_ok(bad[i]), "%s", bad[i]);
	cr_assert_not(bx_jsonp_callback_ok(NULL));
	char toolong[66];
	memset(toolong, 'a', 65);
	toolong[65] = '\0';
	cr_assert_not(bx_jsonp_callback_ok(toolong), "65 characters are too many");
}

Test(jsonp, body_calls_the_callback_and_escapes_line_separators)
{
	/* "\u2028" and "\u2029" as raw UTF-8 inside a JSON string. */
	const char json[] = "[{\"data\":\"a\xe2\x80\xa8"
	                    "b\xe2\x80\xa9"
	                    "c\xe2\x80\xaa\"}]";
	bx_buf out;
	bx_buf_init(&out);
	bx_jsonp_wrap(&out, "_cometd_jsonp_3", json, sizeof json - 1);
	cr_assert_str_eq(out.data,
	                 "/**/_cometd_jsonp_3([{\"data\":\"a\\u2028b\\u2029c\xe2\x80\xaa\"}]);");
	bx_buf_free(&out);

	bx_buf_init(&out);
	bx_jsonp_wrap(&out, "cb", "[]", 2);
	cr_assert_str_eq(out.data, "/**/cb([]);");
	bx_buf_free(&out);
}

/*---- CORS ---------------------------------------------------------------------*/

static bx_server *cors_server(const char *const *origins, size_t n, int *rc)
{
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.allow_origins = origins;
	cfg.n_allow_origins = n;
	cfg.log_level = BX_LOG_ERROR;
	bx_server *srv = NULL;
	*rc = bx_server_new(&cfg, &srv);
	return srv;
}

Test(cors, no_origin_is_allowed_by_default)
{
	int rc;
	bx_server *srv = cors_server(NULL, 0, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_not(bx_cors_allowed(srv, "http://127.0.0.1:8080"));
	cr_assert_not(bx_cors_allowed(srv, "null"));
	bx_server_free(srv);
}

Test(cors, listed_origins_are_allowed_exactly)
{
	const char *o[] = {"https://app.example.com", "http://127.0.0.1:3000"};
	int rc;
	bx_server *srv = cors_server(o, 2, &rc);
	cr_assert_eq(rc, 0);
	cr_assert(bx_cors_allowed(srv, "https://app.example.com"));
	cr_assert(bx_cors_allowed(srv, "http://127.0.0.1:3000"));
	cr_assert_not(bx_cors_allowed(srv, "http://app.example.com"), "scheme differs");
	cr_assert_not(bx_cors_allowed(srv, "https://app.example.com:444"), "port differs");
	cr_assert_not(bx_cors_allowed(srv, "https://app.example.com.evil.net"));
	cr_assert_not(bx_cors_allowed(srv, "https://evil.example.com"));
	cr_assert_not(bx_cors_allowed(srv, NULL));
	cr_assert_not(bx_cors_allowed(srv, ""));
	bx_server_free(srv);
}

Test(cors, star_allows_any_origin_except_null)
{
	const char *o[] = {"*"};
	int rc;
	bx_server *srv = cors_server(o, 1, &rc);
	cr_assert_eq(rc, 0);
	cr_assert(bx_cors_allowed(srv, "https://anything.example"));
	cr_assert_not(bx_cors_allowed(srv, "null"));
	cr_assert_not(bx_cors_allowed(srv, "http://x\r\nSet-Cookie: a=b"), "not an origin");
	bx_server_free(srv);
}

Test(cors, malformed_origins_are_refused_at_configuration)
{
	const char *bad[] = {"app.example.com", "https://app.example.com/",
	                     "https://a.example/path", "HTTPS://A.EXAMPLE", ""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc;
		bx_server *srv = cors_server(&bad[i], 1, &rc);
		cr_assert_eq(rc, -BX_EINVAL, "%s", bad[i]);
		cr_assert_null(srv);
	}
}
