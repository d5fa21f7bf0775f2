/* Request parsing and reply building (src/dispatch.c and the verbs). */
#include "helpers.h"

BX_SERVER_SUITE(dispatch);

/* Sends a request expected to fail at the HTTP level; returns the status. */
static int status_of(const char *body)
{
	int st = 0;
	json_object *r = send_req(srv, body, &w, &st, NULL);
	json_object_put(r);
	return st;
}

/* Sends a body in which every %s stands for the client id id. */
static json_object *as(const char *id, const char *fmt)
{
	char body[1024];
	size_t n = 0;
	for (const char *p = fmt; *p && n + BX_ID_LEN + 1 < sizeof body; p++) {
		if (p[0] == '%' && p[1] == 's') {
			n += (size_t)snprintf(body + n, sizeof body - n, "%s", id);
			p++;
		} else {
			body[n++] = *p;
		}
	}
	body[n] = '\0';
	int st = 0;
	json_object *r = send_req(srv, body, &w, &st, NULL);
	cr_assert_eq(st, 200, "%s", body);
	return r;
}

Test(dispatch, malformed_json_is_http_400)
{
	cr_expect_eq(status_of("[{\"channel\":"), 400);
	cr_expect_eq(status_of("not json"), 400);
	cr_expect_eq(status_of(""), 400);
	cr_expect_eq(status_of("[{}] trailing"), 400);
	cr_expect_eq(status_of("[]"), 400, "never answer []");
	cr_expect_eq(status_of("42"), 400);
	cr_expect_eq(status_of("[\"\xff\xfe\"]"), 400, "invalid UTF-8");
}

Test(dispatch, deep_nesting_is_refused)
{
	char body[4096] = "[{\"channel\":\"/a\",\"data\":";
	for (int i = 0; i < 100; i++)
		strcat(body, "[");
	for (int i = 0; i < 100; i++)
		strcat(body, "]");
	strcat(body, "}]");
	cr_expect_eq(status_of(body), 400);
}

Test(dispatch, json_object_is_accepted_as_one_message)
{
	json_object *r = send_req(srv,
	                          "{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
	                          "\"supportedConnectionTypes\":[\"long-polling\"],\"id\":\"7\"}",
	                          &w, NULL, NULL);
	cr_assert_eq(json_object_array_length(r), 1);
	cr_expect(successful(r, 0));
	cr_expect_str_eq(field(r, 0, "id"), "7");
	json_object_put(r);
}

Test(dispatch, handshake_reply_negotiates_and_advises)
{
	json_object *r = send_req(srv,
	                          "[{\"channel\":\"/meta/"
	                          "handshake\",\"version\":\"1.0\",\"supportedConnectionTypes\":"
	                          "[\"websocket\",\"long-polling\"],\"id\":\"h1\"}]",
	                          &w, NULL, NULL);
	cr_assert(successful(r, 0));
	cr_expect_str_eq(field(r, 0, "channel"), "/meta/handshake");
	cr_expect_str_eq(field(r, 0, "version"), "1.0");
	cr_expect_str_eq(field(r, 0, "id"), "h1");
	cr_expect_eq(strlen(field(r, 0, "clientId")), BX_ID_LEN);
	json_object *m = json_object_array_get_idx(r, 0), *adv, *v;
	cr_assert(json_object_object_get_ex(m, "advice", &adv));
	cr_assert(json_object_object_get_ex(adv, "reconnect", &v));
	cr_expect_str_eq(json_object_get_string(v), "retry");
	cr_assert(json_object_object_get_ex(adv, "timeout", &v));
	cr_expect_eq(json_object_get_int(v), 30000);
	json_object_put(r);
}

Test(dispatch, unknown_connection_types_are_refused_with_ours_listed)
{
	json_object *r = send_req(srv,
	                          "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
	                          "\"supportedConnectionTypes\":[\"carrier-pigeon\"]}]",
	                          &w, NULL, NULL);
	cr_expect_not(successful(r, 0));
	cr_expect_str_eq(field(r, 0, "error"), "301::connection_types_unsupported");
	cr_expect(strstr(field(r, 0, "supportedConnectionTypes"), "long-polling"));
	cr_expect_eq(bx_session_count(srv), 0);
	json_object_put(r);
}

Test(dispatch, handshake_must_be_alone_in_its_request)
{
	cr_expect_eq(status_of("[{\"channel\":\"/meta/handshake\",\"supportedConnectionTypes\":"
	                       "[\"long-polling\"]},{\"channel\":\"/a\",\"data\":1}]"),
	             400);
	cr_expect_eq(bx_session_count(srv), 0);
}

Test(dispatch, unknown_client_gets_402_with_handshake_advice)
{
	json_object *r = as("AAAAAAAAAAAAAAAAAAAAAA", "[{\"channel\":\"/meta/connect\","
	                                              "\"clientId\":\"%s\",\"id\":\"9\"}]");
	cr_expect_not(successful(r, 0));
	cr_expect_str_eq(field(r, 0, "error"), "402::session_unknown");
	cr_expect_str_eq(field(r, 0, "id"), "9");
	json_object *m = json_object_array_get_idx(r, 0), *adv, *v;
	cr_assert(json_object_object_get_ex(m, "advice", &adv));
	cr_assert(json_object_object_get_ex(adv, "reconnect", &v));
	cr_expect_str_eq(json_object_get_string(v), "handshake");
	json_object_put(r);
}

Test(dispatch, channel_missing_and_invalid)
{
	const char *id = handshake(srv, &w);
	json_object *r = as(id, "[{\"clientId\":\"%s\",\"data\":1,\"id\":\"a\"},"
	                        "{\"channel\":\"/bad//name\",\"clientId\":\"%s\",\"data\":1}]");
	cr_expect_str_eq(field(r, 0, "error"), "400::channel_missing");
	cr_expect_str_eq(field(r, 0, "id"), "a");
	json_object_put(r);
	r = as(id, "[{\"channel\":\"no-slash\",\"clientId\":\"%s\",\"data\":1}]");
	cr_expect_str_eq(field(r, 0, "error"), "405::channel_invalid");
	json_object_put(r);
	r = as(id, "[{\"channel\":\"/a/*\",\"clientId\":\"%s\",\"data\":1}]");
	cr_expect_str_eq(field(r, 0, "error"), "405::channel_invalid", "no publishing to patterns");
	json_object_put(r);
}

Test(dispatch, publish_to_unknown_meta_channel_is_denied)
{
	const char *id = handshake(srv, &w);
	json_object *r = as(id, "[{\"channel\":\"/meta/foo\",\"clientId\":\"%s\",\"data\":1}]");
	cr_expect_not(successful(r, 0));
	cr_expect_str_eq(field(r, 0, "error"),
	                 "403:denied_by_security_policy:channel_create_denied");
	json_object_put(r);
}

Test(dispatch, subscribe_echoes_and_refuses_meta)
{
	const char *id = handshake(srv, &w);
	json_object *r = as(id, "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
	                        "\"subscription\":[\"/a\",\"/b/**\"],\"id\":\"s\"}]");
	cr_expect(successful(r, 0));
	cr_expect_str_eq(field(r, 0, "subscription"), "[ \"/a\", \"/b/**\" ]");
	json_object_put(r);
	r = as(id, "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
	           "\"subscription\":\"/meta/**\"}]");
	cr_expect_not(successful(r, 0));
	cr_expect_str_eq(field(r, 0, "error"), "403:denied_by_security_policy:subscribe_denied");
	json_object_put(r);
	r = as(id, "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\"}]");
	cr_expect_str_eq(field(r, 0, "error"), "403::subscription_missing");
	json_object_put(r);
	r = as(id, "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
	           "\"subscription\":\"/a/*/b\"}]");
	cr_expect_str_eq(field(r, 0, "error"), "403::subscription_invalid");
	json_object_put(r);
}

Test(dispatch, publish_ack_has_no_data_and_service_is_not_broadcast)
{
	const char *id = handshake(srv, &w);
	json_object *r = as(id, "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
	                        "\"subscription\":[\"/**\",\"/service/**\"]}]");
	cr_assert(successful(r, 0));
	json_object_put(r);
	r = as(id, "[{\"channel\":\"/service/x\",\"clientId\":\"%s\",\"data\":1,\"id\":\"p\"},"
	           "{\"channel\":\"/c/d\",\"clientId\":\"%s\",\"data\":2,\"id\":\"q\"}]");
	cr_expect(successful(r, 0));
	cr_expect(successful(r, 1));
	cr_expect_str_eq(field(r, 1, "id"), "q");
	json_object *m = json_object_array_get_idx(r, 1), *v;
	cr_expect_not(json_object_object_get_ex(m, "data", &v), "ack carries no data");
	json_object_put(r);
	r = as(id, "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\",\"id\":\"c\"}]");
	cr_assert_eq(json_object_array_length(r), 2, "only /c/d was delivered");
	cr_expect_str_eq(field(r, 0, "channel"), "/c/d");
	cr_expect_str_eq(field(r, 1, "channel"), "/meta/connect");
	json_object_put(r);
}

Test(dispatch, disconnect_then_old_client_id_is_unknown)
{
	const char *id = handshake(srv, &w);
	json_object *r = as(id, "[{\"channel\":\"/meta/disconnect\",\"clientId\":\"%s\"}]");
	cr_expect(successful(r, 0));
	json_object_put(r);
	r = as(id, "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\"}]");
	cr_expect_str_eq(field(r, 0, "error"), "402::session_unknown");
	json_object_put(r);
}

Test(dispatch, batch_answers_each_message_in_order_with_connect_after_queue)
{
	const char *id = handshake(srv, &w);
	char body[1024];
	snprintf(body, sizeof body,
	         "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"subscription\":\"/"
	         "z\",\"id\":"
	         "\"1\"},{\"channel\":\"/z\",\"clientId\":\"%s\",\"data\":\"hi\",\"id\":\"2\"},"
	         "{\"channel\":\"/meta/connect\",\"clientId\":\"%s\",\"id\":\"3\"}]",
	         id, id, id);
	bx_hold *h = NULL;
	json_object *r = send_req(srv, body, &w, NULL, &h);
	cr_assert_null(h, "a connect in a batch is answered at once");
	cr_assert_eq(json_object_array_length(r), 4);
	cr_expect_str_eq(field(r, 0, "id"), "1");
	cr_expect_str_eq(field(r, 1, "id"), "2");
	cr_expect_str_eq(field(r, 2, "data"), "hi");
	cr_expect_str_eq(field(r, 3, "channel"), "/meta/connect");
	json_object_put(r);
}

Test(dispatch, nul_bytes_in_data_survive_delivery)
{
	const char *id = handshake(srv, &w);
	json_object_put(as(id, "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
	                       "\"subscription\":\"/nul\"}]"));
	json_object_put(
	        as(id, "[{\"channel\":\"/nul\",\"clientId\":\"%s\",\"data\":\"a\\u0000b\"}]"));
	json_object *r = as(id, "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\"}]");
	json_object *m = json_object_array_get_idx(r, 0), *d;
	cr_assert(json_object_object_get_ex(m, "data", &d));
	cr_expect_eq(json_object_get_string_len(d), 3);
	cr_expect_eq(memcmp(json_object_get_string(d), "a\0b", 3), 0);
	json_object_put(r);
}

Test(dispatch, non_object_messages_get_an_error_reply)
{
	json_object *r = send_req(srv, "[1,\"x\",null]", &w, NULL, NULL);
	cr_assert_eq(json_object_array_length(r), 3);
	cr_expect_str_eq(field(r, 2, "error"), "400::message_invalid");
	json_object_put(r);
}

Test(dispatch, too_many_messages_is_http_400)
{
	bx_server_free(srv);
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.max_batch = 2;
	cfg.log_level = BX_LOG_ERROR;
	cr_assert_eq(bx_server_new(&cfg, &srv), 0);
	cr_expect_eq(status_of("[{},{},{}]"), 400);
	cr_expect_eq(status_of("[{},{}]"), 200);
}

Test(dispatch, subscription_array_with_non_strings_is_invalid_and_echoed_as_sent)
{
	/* Found by the fuzzer: a null element was echoed through a NULL pointer. */
	const char *id = handshake(srv, &w);
	json_object *r = as(id, "[{\"channel\":\"/meta/unsubscribe\",\"clientId\":\"%s\","
	                        "\"subscription\":[\"/a\",null,true,7]}]");
	cr_expect_not(successful(r, 0));
	cr_expect_str_eq(field(r, 0, "error"), "403::subscription_invalid");
	cr_expect_str_eq(field(r, 0, "subscription"), "[ \"/a\", null, true, 7 ]");
	json_object_put(r);
}
