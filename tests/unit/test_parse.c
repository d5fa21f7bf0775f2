/* The census before parsing (src/core/json_scan.c) and what bx_dispatch()
 * refuses with it: a batch over --max-batch and a body whose tree would
 * cost more than BX_PARSE_MULT times its size, before json-c builds it. */
#include <malloc.h>
#include <stdlib.h>

#include "helpers.h"

#include "core/json_scan.h"

static bx_json_census scan(const char *s)
{
	bx_json_census c;
	bx_json_scan(s, strlen(s), BX_JSON_MAX_DEPTH, &c);
	return c;
}

Test(json_scan, counts_top_level_elements)
{
	cr_expect_eq(scan("[]").top, 0);
	cr_expect_eq(scan(" [ ] ").top, 0);
	cr_expect_eq(scan("[1]").top, 1);
	cr_expect_eq(scan("[1,\"a\",null,true,{},[]]").top, 6);
	cr_expect_eq(scan("[{\"a\":[1,2,3]},{\"b\":{\"c\":[4]}}]").top, 2);
	cr_expect_eq(scan("{\"a\":[1,2]}").top, 1);
	cr_expect(!scan("{\"a\":[1,2]}").top_array);
	cr_expect_eq(scan("\"x\"").top, 1);
	cr_expect_eq(scan("").top, 0);
	cr_expect_eq(scan("[-1.5e3, 20 ,\n3]").top, 3);
}

Test(json_scan, strings_hide_structure_and_escapes_are_followed)
{
	bx_json_census c = scan("[\"[{,\",\"\\\"],{\",\"\\\\\",{\"k\\\"\":\"v\"}]");
	cr_expect_eq(c.top, 4);
	cr_expect_eq(c.objects, 1);
	cr_expect_eq(c.arrays, 1);
	cr_expect_eq(c.keys, 1);
	cr_expect_eq(c.scalars, 4);
}

Test(json_scan, runs_of_backslashes_before_a_quote)
{
	/* ["a\\\"b", "c\\\\", {}]: an odd run escapes the quote, an even one
	 * does not. */
	bx_json_census c = scan("[\"a\\\\\\\"b\",\"c\\\\\\\\\",{}]");
	cr_expect_eq(c.top, 3);
	cr_expect_eq(c.scalars, 2);
	cr_expect_eq(c.objects, 1);
	cr_expect_eq(scan("[\"\\\\\",1]").top, 2, "a string of one escaped backslash");
	cr_expect_eq(scan("[\"\\\"\",1]").top, 2, "a string of one escaped quote");
	cr_expect_eq(scan("[\"\\\",1]").top, 1, "unterminated: its only quote is escaped");
}

Test(json_scan, counts_nodes_and_keys)
{
	bx_json_census c = scan("[{\"channel\":\"/a\",\"data\":{\"x\":[1,2,null]},\"id\":\"1\"}]");
	cr_expect_eq(c.objects, 2);
	cr_expect_eq(c.arrays, 2);
	cr_expect_eq(c.keys, 4);
	cr_expect_eq(c.scalars, 4); /* "/a", 1, 2, "1" */
	cr_expect_eq(c.nulls, 1);
}

Test(json_scan, truncated_and_garbage_text_never_reads_past_the_end)
{
	const char *cases[] = {"[", "[\"", "[\"\\", "{\"a", "[1,", "]]]]", "}{", "[\"\\u12"};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		size_t n = strlen(cases[i]);
		char *p = malloc(n); /* exactly n bytes: ASan sees an over-read */
		memcpy(p, cases[i], n);
		bx_json_census c;
		bx_json_scan(p, n, BX_JSON_MAX_DEPTH, &c);
		free(p);
	}
}

Test(json_scan, the_estimate_bounds_json_c)
{
	/* The census's cost is at least what glibc's allocator counts for the
	 * tree json-c builds from shapes at both ends of the cost range. */
	const char *units[] = {"{}", "[]", "0", "\"\"", "{\"a\":1}", "{\"a\":{}}",
	                       "\"abcdefghijklmnopqrstuvwxyz\"", "null", "true", "1.5"};
	for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
		size_t ul = strlen(units[u]), n = 2000;
		char *b = malloc(n * (ul + 1) + 3);
		size_t k = 0;
		b[k++] = '[';
		for (size_t i = 0; i < n; i++) {
			if (i)
				b[k++] = ',';
			memcpy(b + k, units[u], ul);
			k += ul;
		}
		b[k++] = ']';
		b[k] = '\0';
		bx_json_census c;
		bx_json_scan(b, k, BX_JSON_MAX_DEPTH, &c);
		struct mallinfo2 before = mallinfo2();
		json_object *v = json_tokener_parse(b);
		struct mallinfo2 after = mallinfo2();
		cr_assert_not_null(v);
		size_t used = after.uordblks - before.uordblks;
		if (used == 0) { /* a sanitizer's allocator: glibc's counts are not kept */
			json_object_put(v);
			free(b);
			cr_skip_test("mallinfo2() counts nothing under this allocator");
		}
		cr_expect_geq(c.cost, used, "%s: estimate %zu < %zu allocated", units[u], c.cost, used);
		cr_expect_leq(c.cost, used * 2 + k + 4096, "%s: estimate %zu far above %zu",
		              units[u], c.cost, used);
		json_object_put(v);
		free(b);
	}
}

/*---- Refusal in bx_dispatch ------------------------------------------------*/

BX_SERVER_SUITE(parse);

/* n copies of unit in a JSON array. */
static char *repeat(const char *unit, size_t n, const char *prefix, const char *suffix)
{
	size_t ul = strlen(unit);
	char *b = malloc(strlen(prefix) + n * (ul + 1) + strlen(suffix) + 3);
	size_t k = 0;
	k += (size_t)sprintf(b, "%s", prefix);
	for (size_t i = 0; i < n; i++) {
		if (i)
			b[k++] = ',';
		memcpy(b + k, unit, ul);
		k += ul;
	}
	k += (size_t)sprintf(b + k, "%s", suffix);
	return b;
}

static int status_of(const char *body, char *text, size_t cap)
{
	bx_request req = {.body = body, .len = strlen(body), .transport = BX_CT_LONG_POLLING};
	bx_response res;
	bx_response_init(&res);
	bx_dispatch(srv, &req, &res);
	snprintf(text, cap, "%s", res.body.data ? res.body.data : "");
	int st = res.status;
	bx_response_free(&res);
	return st;
}

Test(parse, a_batch_over_max_batch_is_refused_before_parsing)
{
	char *b = repeat("{}", 100000, "[", "]");
	char text[256];
	cr_expect_eq(status_of(b, text, sizeof text), 400);
	cr_expect(strstr(text, "too many messages in one request: 100000 (limit 4096)"), "%s", text);
	free(b);
}

Test(parse, a_body_whose_tree_would_cost_too_much_is_refused_with_413)
{
	/* One message whose data holds 20,000 empty objects: 60 KB of text,
	 * ~16 MB as a tree. */
	char *b = repeat("{}", 20000, "[{\"channel\":\"/a\",\"data\":[", "]}]");
	char text[256];
	cr_expect_eq(status_of(b, text, sizeof text), 413);
	cr_expect(strstr(text, "memory"), "%s", text);
	free(b);
	/* The same data in strings is cheap and goes through (a 402: no session). */
	b = repeat("\"{}\"", 20000, "[{\"channel\":\"/a\",\"data\":[", "]}]");
	cr_expect_eq(status_of(b, text, sizeof text), 200, "%s", text);
	free(b);
}
