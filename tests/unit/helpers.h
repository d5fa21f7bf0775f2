/* helpers.h — drive the core with no sockets: a server that is never
 * started, a clock the test moves, and a waker that records calls. */
#ifndef BX_TEST_HELPERS_H
#define BX_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <json-c/json.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/settings.h"
#include "core/server.h"
#include "core/dispatch.h"
#include "core/table.h"
#include "core/stream.h"
#include "core/verbs.h"
#include "core/json.h"
#include "http/http.h"

typedef struct fake_waker {
	int suspended, resumed;
} fake_waker;

static int64_t fake_clock_ms;

static inline int64_t fake_now(void *arg)
{
	(void)arg;
	return fake_clock_ms;
}

static inline void fake_suspend(void *arg)
{
	((fake_waker *)arg)->suspended++;
}

static inline void fake_resume(void *arg)
{
	((fake_waker *)arg)->resumed++;
}

/* A core with a fake clock, long polling enabled, and no HTTP. */
static inline bx_server *test_server(int64_t timeout_ms, int64_t max_interval_ms)
{
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.timeout_ms = timeout_ms;
	cfg.max_interval_ms = max_interval_ms;
	cfg.log_level = BX_LOG_ERROR;
	bx_server *srv = NULL;
	cr_assert_eq(bx_server_new(&cfg, &srv), 0);
	fake_clock_ms = 1000000;
	srv->now = fake_now;
	return srv;
}

/* Sends body; returns the parsed reply array (caller puts it), or NULL when
 * the request was held (*hold set) or failed (*status set). */
static inline json_object *send_req(bx_server *srv, const char *body, fake_waker *w, int *status,
				    bx_hold **hold)
{
	bx_request req = {.body = body,
			  .len = strlen(body),
			  .browser = NULL,
			  .transport = BX_CT_LONG_POLLING,
			  .waker = {.suspend = fake_suspend, .resume = fake_resume, .arg = w}};
	bx_response res;
	bx_response_init(&res);
	bx_dispatch(srv, &req, &res);
	if (status)
		*status = res.status;
	if (hold)
		*hold = res.hold;
	json_object *out = NULL;
	if (!res.hold && res.status == 200) {
		out = json_tokener_parse(res.body.data);
		cr_assert_not_null(out, "reply is not JSON: %s", res.body.data);
		cr_assert(json_object_is_type(out, json_type_array));
		cr_assert_gt(json_object_array_length(out), 0, "never answer []");
	}
	bx_response_free(&res);
	return out;
}

/* Member `key` of reply i as a string ("" when absent). */
static inline const char *field(json_object *arr, size_t i, const char *key)
{
	json_object *m = json_object_array_get_idx(arr, i), *v;
	if (!m || !json_object_object_get_ex(m, key, &v))
		return "";
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_SPACED |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
}

static inline bool successful(json_object *arr, size_t i)
{
	json_object *m = json_object_array_get_idx(arr, i), *v;
	return m && json_object_object_get_ex(m, "successful", &v) && json_object_get_boolean(v);
}

/* A suite whose every test gets a fresh server (timeout 30 s, max-interval
 * 10 s) in `srv` and a zeroed fake waker `w`. */
#define BX_SERVER_SUITE(name)                                                                      \
	static bx_server *srv;                                                                     \
	static fake_waker w;                                                                       \
	static void setup(void)                                                                    \
	{                                                                                          \
		srv = test_server(30000, 10000);                                                   \
		memset(&w, 0, sizeof w);                                                           \
	}                                                                                          \
	static void teardown(void)                                                                 \
	{                                                                                          \
		bx_server_free(srv);                                                               \
	}                                                                                          \
	TestSuite(name, .init = setup, .fini = teardown)

/* Handshakes and returns the client id (static buffer). */
static inline const char *handshake(bx_server *srv, fake_waker *w)
{
	static char id[64];
	json_object *r = send_req(srv,
				  "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
				  "\"supportedConnectionTypes\":[\"long-polling\"],\"id\":\"1\"}]",
				  w, NULL, NULL);
	cr_assert(successful(r, 0));
	snprintf(id, sizeof id, "%s", field(r, 0, "clientId"));
	json_object_put(r);
	return id;
}

#endif
