/*
 * fuzz_json_scan.c — libFuzzer target for the pre-parse census
 * (src/core/json_scan.c), with json-c as its oracle.
 *
 * Every input is scanned (the sanitizers watch for reads past the end: the
 * input is copied into a buffer of exactly its size). When json-c, in the
 * strict mode bx_json_parse() uses, accepts the whole input, the census
 * must agree with the tree: the top-level element count, the number of
 * objects, arrays, keys, nulls and other scalars (at least as many when a
 * key repeats: json-c keeps the last member), and the scan never says "too
 * deep" of text json-c accepts.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct tally {
	size_t objects, arrays, keys, scalars, nulls;
} tally;

static void count(json_object *v, tally *t)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		t->nulls++;
		break;
	case json_type_object: {
		t->objects++;
		json_object_object_foreach(v, key, val)
		{
			(void)key;
			t->keys++;
			count(val, t);
		}
		break;
	}
	case json_type_array: {
		t->arrays++;
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++)
			count(json_object_array_get_idx(v, i), t);
		break;
	}
	default:
		t->scalars++;
		break;
	}
}

static void fail(const char *what, size_t got, size_t want)
{
	fprintf(stderr, "json_scan disagrees with json-c on %s: %zu, tree has %zu\n", what, got,
	        want);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data, size);
	bx_json_census c;
	bx_json_scan(p, size, 32, &c);

	if (size == 0 || size > 1 << 20) {
		free(p);
		return 0;
	}
	json_tokener *tok = json_tokener_new_ex(32);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *v = json_tokener_parse_ex(tok, p, (int)size);
	enum json_tokener_error err = json_tokener_get_error(tok);
	if (err == json_tokener_continue) {
		v = json_tokener_parse_ex(tok, "", 1);
		err = json_tokener_get_error(tok);
	} else if (err == json_tokener_success) {
		/* Only white space may follow. */
		for (size_t i = json_tokener_get_parse_end(tok); i < size; i++)
			if (!strchr(" \t\r\n", p[i]))
				err = json_tokener_error_parse_unexpected;
	}
	json_tokener_free(tok);
	if (err == json_tokener_success) {
		if (c.too_deep)
			fail("too_deep on text json-c accepts", 1, 0);
		tally t = {0};
		count(v, &t);
		size_t top = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 1;
		if (c.top_array != json_object_is_type(v, json_type_array))
			fail("top_array", c.top_array, json_object_is_type(v, json_type_array));
		if (c.top != top)
			fail("top", c.top, top);
		/* A repeated key replaces the earlier member (and its subtree) in
		 * json-c's tree: then the census may only count more. */
		bool exact = c.keys == t.keys;
		if (exact ? c.objects != t.objects : c.objects < t.objects)
			fail("objects", c.objects, t.objects);
		if (exact ? c.arrays != t.arrays : c.arrays < t.arrays)
			fail("arrays", c.arrays, t.arrays);
		if (c.keys < t.keys)
			fail("keys", c.keys, t.keys);
		if (exact ? c.scalars != t.scalars : c.scalars < t.scalars)
			fail("scalars", c.scalars, t.scalars);
		if (exact ? c.nulls != t.nulls : c.nulls < t.nulls)
			fail("nulls", c.nulls, t.nulls);
		if (c.cost < size)
			fail("cost below the text", c.cost, size);
	}
	json_object_put(v);
	free(p);
	return 0;
}
