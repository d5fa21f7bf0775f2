/* Hostile input to the core (src/dispatch.c and the verbs): what a client
 * may send that is valid to a lenient parser but must never reach other
 * clients. Findings of tests/fuzz and tests/integration/bad-input land
 * here first, as a failing test, then get fixed. */
#include <math.h>

#include "helpers.h"

BX_SERVER_SUITE(hostile);

/* Sends a body in which every %s stands for id; returns the HTTP status and
 * the reply array (NULL unless 200) in *out. */
static int send_as(const char *id, const char *fmt, json_object **out)
{
	char body[2048];
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
	if (out)
		*out = r;
	else
		json_object_put(r);
	return st;
}

/* A subscriber of /a whose first connect is done; fills id. */
static void subscriber(char *id)
{
	const char *hs = handshake(srv, &w);
	cr_assert_eq(strlen(hs), BX_ID_LEN);
	memcpy(id, hs, BX_ID_LEN + 1);
	cr_assert_eq(send_as(id,
	                     "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
	                     "\"connectionType\":\"long-polling\"}]",
	                     NULL),
	             200);
	json_object *r = NULL;
	cr_assert_eq(send_as(id,
	                     "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
	                     "\"subscription\":\"/a\"}]",
	                     &r),
	             200);
	cr_assert(successful(r, 0));
	json_object_put(r);
}

/* True when text is JSON a browser's JSON.parse accepts: strict grammar,
 * valid UTF-8, and no NaN or Infinity (which json-c writes as bare words). */
static bool strict_json(const char *text)
{
	if (strstr(text, "NaN") || strstr(text, "Infinity"))
		return false;
	json_tokener *tok = json_tokener_new();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *v = json_tokener_parse_ex(tok, text, (int)strlen(text));
	bool ok = v && json_tokener_get_error(tok) == json_tokener_success;
	json_object_put(v);
	json_tokener_free(tok);
	return ok;
}

/* The raw text of the subscriber's next connect reply (static buffer). */
static const char *next_reply(const char *id)
{
	static char text[4096];
	char body[256];
	snprintf(body, sizeof body,
	         "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
	         "\"connectionType\":\"long-polling\",\"advice\":{\"timeout\":0}}]",
	         id);
	bx_request req = {.body = body,
	                  .len = strlen(body),
	                  .transport = BX_CT_LONG_POLLING,
	                  .waker = {.suspend = fake_suspend, .resume = fake_resume, .arg = &w}};
	bx_response res;
	bx_response_init(&res);
	bx_dispatch(srv, &req, &res);
	cr_assert_null(res.hold);
	cr_assert_eq(res.status, 200);
	snprintf(text, sizeof text, "%s", res.body.data);
	bx_response_free(&res);
	return text;
}

/* json-c accepts NaN, Infinity and -Infinity even in strict mode and writes
 * them back as bare words: one publisher would make every subscriber's
 * connect reply unparseable (JSON.parse throws), losing the other messages
 * of that reply too. Numbers that overflow a double (1e400) parse to
 * infinity as well. They are refused as invalid JSON. */
Test(hostile, non_finite_numbers_are_invalid_json)
{
	const char *bodies[] = {
	        "[{\"channel\":\"/a\",\"clientId\":\"%s\",\"data\":NaN}]",
	        "[{\"channel\":\"/a\",\"clientId\":\"%s\",\"data\":Infinity}]",
	        "[{\"channel\":\"/a\",\"clientId\":\"%s\",\"data\":-Infinity}]",
	        "[{\"channel\":\"/a\",\"clientId\":\"%s\",\"data\":{\"x\":[1,NaN]}}]",
	        "[{\"channel\":\"/a\",\"clientId\":\"%s\",\"data\":1e400}]",
	        "[{\"channel\":\"/a\",\"clientId\":\"%s\",\"data\":-1e999}]",
	        "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\",\"connectionType\":"
	        "\"long-polling\",\"advice\":{\"timeout\":NaN}}]",
	};
	char id[BX_ID_LEN + 1];
	subscriber(id);
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
		cr_expect_eq(send_as(id, bodies[i], NULL), 400, "%s", bodies[i]);
	const char *text = next_reply(id);
	cr_expect(strict_json(text), "a subscriber got: %s", text);
	cr_expect_null(strstr(text, "\"data\""), "nothing was delivered: %s", text);
}

Test(hostile, finite_numbers_still_pass)
{
	char id[BX_ID_LEN + 1];
	subscriber(id);
	json_object *r = NULL;
	cr_assert_eq(send_as(id,
	                     "[{\"channel\":\"/a\",\"clientId\":\"%s\","
	                     "\"data\":[0,-0,1.5e300,-2.5E-300,9223372036854775807,"
	                     "123456789012345678901234567890]}]",
	                     &r),
	             200);
	cr_expect(successful(r, 0));
	json_object_put(r);
	const char *text = next_reply(id);
	cr_expect(strict_json(text), "%s", text);
	cr_expect_not_null(strstr(text, "1.5e300"), "%s", text);
}

Test(hostile, backend_publish_refuses_non_finite_numbers)
{
	cr_expect_eq(bx_publish(srv, "/a", "NaN", 3), -BX_EJSON);
	cr_expect_eq(bx_publish(srv, "/a", "[Infinity]", 10), -BX_EJSON);
	cr_expect_eq(bx_publish(srv, "/a", "{\"v\":1e400}", 11), -BX_EJSON);
	cr_expect_eq(bx_publish(srv, "/a", "[1.5]", 5), 0);
}

/* Lone surrogates and U+0000 in data reach subscribers as valid JSON. */
Test(hostile, surrogates_and_nul_in_strings_stay_valid)
{
	char id[BX_ID_LEN + 1];
	subscriber(id);
	cr_assert_eq(send_as(id,
	                     "[{\"channel\":\"/a\",\"clientId\":\"%s\","
	                     "\"data\":[\"\\ud800\",\"\\udc00x\",\"a\\u0000b\"]}]",
	                     NULL),
	             200);
	const char *text = next_reply(id);
	cr_expect(strict_json(text), "%s", text);
	cr_expect_not_null(strstr(text, "a\\u0000b"), "%s", text);
}

/* json-c's UTF-8 check lets through overlong forms, UTF-16 surrogates
 * encoded in UTF-8 and code points past U+10FFFF; RFC 3629 (and every
 * browser's decoder) refuses them. A request must be well-formed UTF-8. */
Test(hostile, malformed_utf8_is_invalid_json)
{
	const char *bad[] = {
	        "\xc0\xaf",         /* overlong '/' */
	        "\xe0\x80\xaf",     /* overlong, 3 bytes */
	        "\xed\xa0\x80",     /* U+D800 in UTF-8 */
	        "\xf4\x90\x80\x80", /* U+110000 */
	        "\xf8\x88\x80\x80\x80",
	        "\xff",
	        "\x80",
	        "\xc3",
	        "\xe2\x82",
	};
	char id[BX_ID_LEN + 1];
	subscriber(id);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char fmt[256];
		snprintf(fmt, sizeof fmt,
		         "[{\"channel\":\"/a\",\"clientId\":\"%%s\",\"data\":\"x%sy\"}]", bad[i]);
		cr_expect_eq(send_as(id, fmt, NULL), 400, "byte sequence %zu", i);
	}
	const char *text = next_reply(id);
	cr_expect_null(strstr(text, "\"data\""), "nothing was delivered: %s", text);
}

Test(hostile, wellformed_utf8_passes)
{
	char id[BX_ID_LEN + 1];
	subscriber(id);
	/* é, €, U+10FFFF, U+1F600 */
	json_object *r = NULL;
	cr_assert_eq(send_as(id,
	                     "[{\"channel\":\"/a\",\"clientId\":\"%s\",\"data\":"
	                     "\"\xc3\xa9\xe2\x82\xac\xf4\x8f\xbf\xbf\xf0\x9f\x98\x80\"}]",
	                     &r),
	             200);
	cr_expect(successful(r, 0));
	json_object_put(r);
	const char *text = next_reply(id);
	cr_expect_not_null(strstr(text, "\xc3\xa9\xe2\x82\xac\xf4\x8f\xbf\xbf\xf0\x9f\x98\x80"),
	                   "%s", text);
}

/* JSON null parses to no object at all: it is a body of the wrong shape,
 * not a parse error that "succeeded". */
Test(hostile, null_body_is_the_wrong_shape)
{
	bx_request req = {.body = "null", .len = 4, .transport = BX_CT_LONG_POLLING};
	bx_response res;
	bx_response_init(&res);
	bx_dispatch(srv, &req, &res);
	cr_expect_eq(res.status, 400);
	cr_expect_str_eq(res.body.data,
	                 "a Bayeux request body is a JSON array of message objects\n");
	bx_response_free(&res);
}
