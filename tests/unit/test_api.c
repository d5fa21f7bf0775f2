/* The embedding API (include/bayeux.h: listeners, /service request/reply,
 * extensions, session listener, policy, bx_deliver) and backend publishing
 * (bx_request.backend), driven through the core with no sockets. */
#include "helpers.h"

BX_SERVER_SUITE(api);

/* Sends body (printf-style with one %s for a client id) as a backend or not;
 * returns the parsed reply array. */
static json_object *send_as(bool backend, const char *id, const char *fmt)
{
	char body[2048];
	snprintf(body, sizeof body, fmt, id ? id : "");
	bx_request req = {.body = body,
	                  .len = strlen(body),
	                  .transport = BX_CT_LONG_POLLING,
	                  .waker = {.suspend = fake_suspend, .resume = fake_resume, .arg = &w},
	                  .backend = backend};
	bx_response res;
	bx_response_init(&res);
	bx_dispatch(srv, &req, &res);
	cr_assert_eq(res.status, 200, "%s -> %d %s", body, res.status, res.body.data);
	cr_assert_null(res.hold, "%s was held", body);
	json_object *out = json_tokener_parse(res.body.data);
	cr_assert_not_null(out, "reply is not JSON: %s", res.body.data);
	bx_response_free(&res);
	return out;
}

static json_object *send_msg(const char *id, const char *fmt)
{
	return send_as(false, id, fmt);
}

/* A handshaken client whose first connect was answered. */
static const char *client(char *buf)
{
	snprintf(buf, 64, "%s", handshake(srv, &w));
	json_object_put(send_msg(buf, "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
	                              "\"connectionType\":\"long-polling\"}]"));
	return buf;
}

static void subscribe(const char *id, const char *pattern)
{
	char fmt[256];
	snprintf(fmt, sizeof fmt,
	         "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%%s\",\"subscription\":\"%s\"}]",
	         pattern);
	json_object *r = send_msg(id, fmt);
	cr_assert(successful(r, 0), "subscribe %s: %s", pattern, json_object_to_json_string(r));
	json_object_put(r);
}

/* What a connect answered at once delivers to id: the array of replies,
 * the connect reply last. */
static json_object *drain(const char *id)
{
	return send_msg(id, "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
	                    "\"connectionType\":\"long-polling\",\"advice\":{\"timeout\":0}}]");
}

/* The number of deliveries (messages with data) in a drained array. */
static size_t deliveries(json_object *arr)
{
	size_t n = 0;
	for (size_t i = 0; i < json_object_array_length(arr); i++)
		if (json_object_object_get_ex(json_object_array_get_idx(arr, i), "data", NULL))
			n++;
	return n;
}

/* Member key of element i as JSON text. */
static const char *json_of(json_object *arr, size_t i, const char *key)
{
	json_object *v = NULL;
	json_object_object_get_ex(json_object_array_get_idx(arr, i), key, &v);
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

/*---- Backend publishing ----------------------------------------------------*/

Test(api, publish_without_client_id_is_denied_with_a_hint_unless_backend)
{
	char a[64];
	client(a);
	subscribe(a, "/x");
	json_object *r = send_msg(NULL, "[{\"channel\":\"/x\",\"data\":1,\"id\":\"4\"}]");
	cr_expect_not(successful(r, 0));
	cr_expect_str_eq(field(r, 0, "error"), "403::publish_denied");
	cr_expect_str_eq(field(r, 0, "id"), "4");
	cr_expect_neq(strlen(field(r, 0, "hint")), 0, "the refusal says what to do");
	json_object_put(r);
	r = drain(a);
	cr_expect_eq(deliveries(r), 0, "a refused publish is delivered to nobody");
	json_object_put(r);
}

Test(api, backend_publish_without_client_id_is_delivered)
{
	char a[64];
	client(a);
	subscribe(a, "/x/**");
	json_object *r = send_as(true, NULL,
	                         "[{\"channel\":\"/x/y\",\"data\":{\"n\":1},\"id\":\"7\"},"
	                         "{\"channel\":\"/x/z\",\"data\":2}]");
	cr_expect(successful(r, 0));
	cr_expect(successful(r, 1));
	cr_expect_str_eq(field(r, 0, "id"), "7");
	cr_expect_not(json_object_object_get_ex(json_object_array_get_idx(r, 0), "data", NULL),
	              "a publish ack carries no data");
	json_object_put(r);
	r = drain(a);
	cr_assert_eq(deliveries(r), 2);
	cr_expect_str_eq(field(r, 0, "channel"), "/x/y");
	cr_expect_str_eq(json_of(r, 0, "data"), "{\"n\":1}");
	cr_expect_str_eq(json_of(r, 1, "data"), "2");
	json_object_put(r);
}

Test(api, backend_with_unknown_client_id_still_gets_402)
{
	json_object *r = send_as(true, "AAAAAAAAAAAAAAAAAAAAAA",
	                         "[{\"channel\":\"/x\",\"data\":1,\"clientId\":\"%s\"}]");
	cr_expect_str_eq(field(r, 0, "error"), "402::session_unknown");
	json_object_put(r);
}

Test(api, backend_cannot_use_meta_verbs_without_a_session)
{
	json_object *r =
	        send_as(true, NULL, "[{\"channel\":\"/meta/subscribe\",\"subscription\":\"/x\"}]");
	cr_expect_str_eq(field(r, 0, "error"), "402::session_unknown");
	json_object_put(r);
}

/*---- Listeners and /service request/reply --------------------------------------*/

static bool echo(void *arg, bx_message *m)
{
	(*(int *)arg)++;
	size_t len;
	const char *data = bx_message_data(m, &len);
	cr_assert_not_null(data);
	cr_expect_eq(bx_reply(m, data, len), 0);
	return true;
}

Test(api, service_listener_replies_to_the_sender_only)
{
	int calls = 0;
	cr_assert_eq(bx_server_add_listener(srv, "/service/echo", echo, &calls), 0);
	char a[64], b[64];
	client(a);
	client(b);
	subscribe(b, "/service/echo");
	subscribe(b, "/**");
	json_object *r = send_msg(a, "[{\"channel\":\"/service/echo\",\"clientId\":\"%s\","
	                             "\"data\":{\"q\":\"hi\"},\"id\":\"12\"}]");
	cr_expect(successful(r, 0));
	json_object_put(r);
	cr_expect_eq(calls, 1);

	r = drain(a);
	cr_assert_eq(deliveries(r), 1, "%s", json_object_to_json_string(r));
	cr_expect_str_eq(field(r, 0, "channel"), "/service/echo");
	cr_expect_str_eq(field(r, 0, "id"), "12", "the reply has the request's id");
	cr_expect_str_eq(json_of(r, 0, "data"), "{\"q\":\"hi\"}");
	cr_expect_not(json_object_object_get_ex(json_object_array_get_idx(r, 0), "clientId", NULL));
	json_object_put(r);
	r = drain(b);
	cr_expect_eq(deliveries(r), 0, "another client never sees the reply");
	json_object_put(r);
}

static bool drop(void *arg, bx_message *m)
{
	(void)arg;
	return strcmp(bx_message_channel(m), "/chat/secret") != 0;
}

Test(api, listener_returning_false_deletes_the_message)
{
	cr_assert_eq(bx_server_add_listener(srv, "/chat/*", drop, NULL), 0);
	char a[64];
	client(a);
	subscribe(a, "/chat/*");
	char body[512];
	snprintf(body, sizeof body,
	         "[{\"channel\":\"/chat/secret\",\"clientId\":\"%s\",\"data\":1},"
	         "{\"channel\":\"/chat/open\",\"clientId\":\"%s\",\"data\":2}]",
	         a, a);
	json_object *r = send_msg(NULL, body);
	cr_expect_not(successful(r, 0));
	cr_expect_str_eq(field(r, 0, "error"), "404::message_deleted");
	cr_expect(successful(r, 1));
	json_object_put(r);
	r = drain(a);
	cr_expect_eq(deliveries(r), 1);
	cr_expect_str_eq(field(r, 0, "channel"), "/chat/open");
	json_object_put(r);
}

static int matched;
static bool count_match(void *arg, bx_message *m)
{
	(void)arg;
	(void)m;
	matched++;
	return true;
}

Test(api, listener_patterns_match_like_subscriptions)
{
	cr_assert_eq(bx_server_add_listener(srv, "/a/*", count_match, NULL), 0);
	cr_assert_eq(bx_server_add_listener(srv, "/b/**", count_match, NULL), 0);
	cr_expect_eq(bx_server_add_listener(srv, "/meta/handshake", count_match, NULL),
	             -BX_ECHANNEL);
	cr_expect_eq(bx_server_add_listener(srv, "no-slash", count_match, NULL), -BX_ECHANNEL);
	const struct {
		const char *channel;
		int hits;
	} cases[] = {{"/a", 0}, {"/a/x", 1}, {"/a/x/y", 0}, {"/ab/x", 0},
	             {"/b", 0}, {"/b/x", 1}, {"/b/x/y", 1}, {"/bb/x", 0}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		matched = 0;
		char body[256];
		snprintf(body, sizeof body, "[{\"channel\":\"%s\",\"data\":1}]", cases[i].channel);
		json_object_put(send_as(true, NULL, body));
		cr_expect_eq(matched, cases[i].hits, "%s", cases[i].channel);
	}
}

/*---- Extensions ------------------------------------------------------------------*/

static const char *reject_forbidden(void *arg, bx_message *m)
{
	(void)arg;
	size_t len;
	const char *data = bx_message_data(m, &len);
	if (data && strstr(data, "forbidden"))
		return "403::forbidden_word";
	if (data && strcmp(data, "\"upper\"") == 0)
		cr_assert_eq(bx_message_set_data(m, "\"UPPER\"", 7), 0);
	return NULL;
}

Test(api, incoming_extension_can_modify_or_reject_with_an_error)
{
	cr_assert_eq(bx_server_add_extension(srv, reject_forbidden, NULL, NULL), 0);
	char a[64];
	client(a);
	subscribe(a, "/t");
	char body[512];
	snprintf(body, sizeof body,
	         "[{\"channel\":\"/t\",\"clientId\":\"%s\",\"data\":\"forbidden\",\"id\":\"1\"},"
	         "{\"channel\":\"/t\",\"clientId\":\"%s\",\"data\":\"upper\"}]",
	         a, a);
	json_object *r = send_msg(NULL, body);
	cr_expect_not(successful(r, 0));
	cr_expect_str_eq(field(r, 0, "error"), "403::forbidden_word");
	cr_expect_str_eq(field(r, 0, "id"), "1");
	cr_expect(successful(r, 1));
	json_object_put(r);
	r = drain(a);
	cr_assert_eq(deliveries(r), 1);
	cr_expect_str_eq(json_of(r, 0, "data"), "\"UPPER\"");
	json_object_put(r);
}

static const char *stamp_or_reject(void *arg, bx_message *m)
{
	(void)arg;
	if (strcmp(bx_message_channel(m), "/blocked") == 0)
		return "403::blocked";
	cr_expect_null(bx_message_ext(m, NULL));
	cr_assert_eq(bx_message_set_ext(m, "{\"stamp\":42}", 12), 0);
	cr_expect_eq(bx_message_set_ext(m, "[1]", 3), -BX_EJSON, "ext is an object");
	cr_expect_eq(bx_message_set_data(m, "{bad", 4), -BX_EJSON);
	return NULL;
}

Test(api, outgoing_extension_changes_what_every_recipient_gets_or_rejects)
{
	cr_assert_eq(bx_server_add_extension(srv, NULL, stamp_or_reject, NULL), 0);
	char a[64], b[64];
	client(a);
	client(b);
	subscribe(a, "/**");
	subscribe(b, "/**");
	cr_expect_eq(bx_publish(srv, "/news", "{\"n\":1}", 7), 2);
	cr_expect_eq(bx_publish(srv, "/blocked", "1", 1), -BX_EREJECTED);
	json_object *r = send_msg(a, "[{\"channel\":\"/blocked\",\"clientId\":\"%s\",\"data\":1}]");
	cr_expect_str_eq(field(r, 0, "error"), "403::blocked");
	json_object_put(r);
	const char *ids[] = {a, b};
	for (int i = 0; i < 2; i++) {
		r = drain(ids[i]);
		cr_assert_eq(deliveries(r), 1, "%s", json_object_to_json_string(r));
		cr_expect_str_eq(field(r, 0, "channel"), "/news");
		cr_expect_str_eq(json_of(r, 0, "ext"), "{\"stamp\":42}");
		cr_expect_str_eq(json_of(r, 0, "data"), "{\"n\":1}");
		json_object_put(r);
	}
}

/*---- Session listener and policy ----------------------------------------------*/

static int added, removed;
static bx_session *last;
static void on_session(void *arg, bx_session *s, bool add)
{
	(void)arg;
	cr_expect_eq(strlen(bx_session_id(s)), 22);
	if (add) {
		added++;
		last = s;
	} else {
		removed++;
	}
}

Test(api, session_listener_sees_handshake_and_disconnect)
{
	added = removed = 0;
	cr_assert_eq(bx_server_add_session_listener(srv, on_session, NULL), 0);
	char a[64];
	client(a);
	cr_expect_eq(added, 1);
	cr_expect_str_eq(bx_session_id(last), a);
	/* A reference keeps the session valid for bx_deliver() after it ends. */
	bx_session *held = last;
	bx_session_ref(held);
	cr_expect_eq(bx_deliver(held, "/direct", "{\"only\":\"you\"}", 14, "\"9\""), 0);
	json_object *r = drain(a);
	cr_assert_eq(deliveries(r), 1);
	cr_expect_str_eq(field(r, 0, "channel"), "/direct");
	cr_expect_str_eq(field(r, 0, "id"), "9");
	json_object_put(r);
	json_object_put(send_msg(a, "[{\"channel\":\"/meta/disconnect\",\"clientId\":\"%s\"}]"));
	cr_expect_eq(removed, 1);
	cr_expect_eq(bx_deliver(held, "/direct", "1", 1, NULL), -BX_ESTATE);
	cr_expect_eq(bx_deliver(held, "/meta/x", "1", 1, NULL), -BX_ECHANNEL);
	cr_expect_eq(bx_deliver(held, "/a/*", "1", 1, NULL), -BX_ECHANNEL);
	cr_expect_eq(bx_deliver(held, "/a", "{", 1, NULL), -BX_EJSON);
	cr_expect_eq(bx_deliver(held, "/a", "1", 1, "{}"), -BX_EJSON);
	bx_session_unref(held);
}

static bool policy(void *arg, enum bx_policy_op op, bx_session *s, const char *channel,
                   const bx_message *m)
{
	(void)arg;
	size_t len;
	const char *ext = bx_message_ext(m, &len);
	switch (op) {
	case BX_POLICY_HANDSHAKE:
		cr_expect_null(s);
		return ext && strstr(ext, "\"letmein\"");
	case BX_POLICY_SUBSCRIBE:
		cr_expect_not_null(s);
		return strncmp(channel, "/private", 8) != 0;
	case BX_POLICY_PUBLISH:
		return s != NULL || strcmp(channel, "/from-backend") == 0;
	}
	return false;
}

Test(api, policy_decides_handshake_subscribe_and_publish)
{
	cr_assert_eq(bx_server_set_policy(srv, policy, NULL), 0);
	json_object *r = send_msg(NULL, "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
	                                "\"supportedConnectionTypes\":[\"long-polling\"]}]");
	cr_expect_str_eq(field(r, 0, "error"), "403::handshake_denied");
	cr_expect_str_eq(json_of(r, 0, "advice"), "{\"reconnect\":\"none\"}");
	json_object_put(r);
	cr_expect_eq(bx_session_count(srv), 0);

	r = send_msg(NULL, "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
	                   "\"supportedConnectionTypes\":[\"long-polling\"],"
	                   "\"ext\":{\"auth\":\"letmein\"}}]");
	cr_assert(successful(r, 0));
	char a[64];
	snprintf(a, sizeof a, "%s", field(r, 0, "clientId"));
	json_object_put(r);

	r = send_msg(a, "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
	                "\"subscription\":[\"/public\",\"/private/x\"]}]");
	cr_expect_str_eq(field(r, 0, "error"), "403:denied_by_security_policy:subscribe_denied");
	json_object_put(r);
	r = send_as(true, NULL, "[{\"channel\":\"/elsewhere\",\"data\":1}]");
	cr_expect_str_eq(field(r, 0, "error"), "403:denied_by_security_policy:publish_denied");
	json_object_put(r);
	r = send_as(true, NULL, "[{\"channel\":\"/from-backend\",\"data\":1}]");
	cr_expect(successful(r, 0));
	json_object_put(r);
}

/*---- Registration ------------------------------------------------------------------*/

Test(api, hooks_are_registered_before_start_only)
{
	cr_expect_eq(bx_server_add_extension(srv, NULL, NULL, NULL), -BX_EINVAL);
	bx_server_free(srv);
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.listen_port = 0;
	cfg.threads = 1;
	cfg.log_level = BX_LOG_ERROR;
	cr_assert_eq(bx_server_new(&cfg, &srv), 0);
	cr_assert_eq(bx_server_start(srv), 0);
	cr_expect_eq(bx_server_add_listener(srv, "/a", count_match, NULL), -BX_ESTATE);
	cr_expect_eq(bx_server_add_extension(srv, reject_forbidden, NULL, NULL), -BX_ESTATE);
	cr_expect_eq(bx_server_add_session_listener(srv, on_session, NULL), -BX_ESTATE);
	cr_expect_eq(bx_server_set_policy(srv, policy, NULL), -BX_ESTATE);
	bx_server_stop(srv);
}

Test(api, publish_token_is_checked_by_bx_server_new)
{
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.log_level = BX_LOG_ERROR;
	bx_server *s2 = NULL;
	cfg.publish_token = "short";
	cr_expect_eq(bx_server_new(&cfg, &s2), -BX_EINVAL);
	cfg.publish_token = "sixteen chars ok";
	cr_expect_eq(bx_server_new(&cfg, &s2), -BX_EINVAL, "no spaces");
	cfg.publish_token = "0123456789abcdef0123";
	cr_expect_eq(bx_server_new(&cfg, &s2), 0);
	bx_server_free(s2);
}
