/*
 * json.c — request parsing: json-c with a depth limit, strict, with our own
 * UTF-8 check and finite numbers only (json.h).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "json.h"

/* True when every number in v is finite. json-c accepts NaN, Infinity and
 * overflowing numbers (1e400) even in strict mode and writes the first two
 * back as bare words, which no client's JSON.parse accepts: one publisher
 * would break every subscriber's connect reply. Depth is bounded by the
 * tokener's. */
static bool all_finite(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_double:
		return isfinite(json_object_get_double(v));
	case json_type_array: {
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++)
			if (!all_finite(json_object_array_get_idx(v, i)))
				return false;
		return true;
	}
	case json_type_object: {
		json_object_object_foreach(v, key, val)
		{
			(void)key;
			if (!all_finite(val))
				return false;
		}
		return true;
	}
	default:
		return true;
	}
}

/* True when p is well-formed UTF-8 (RFC 3629): json-c's own check lets
 * overlong forms, encoded surrogates and code points past U+10FFFF through,
 * which clients' decoders refuse or replace. */
static bool utf8_valid(const unsigned char *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
		if (c >= 0xC2 && c <= 0xDF)
			n = 1;
		else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			if (c == 0xE0)
				lo = 0xA0; /* overlong */
			else if (c == 0xED)
				hi = 0x9F; /* U+D800..U+DFFF */
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			if (c == 0xF0)
				lo = 0x90; /* overlong */
			else if (c == 0xF4)
				hi = 0x8F; /* past U+10FFFF */
		} else
			return false;
		if (len - i <= n || p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
		i += n + 1;
	}
	return true;
}

json_object *bx_json_parse(const char *p, size_t len, size_t *end, enum json_tokener_error *err)
{
	*end = 0;
	if (len == 0 || len >= (size_t)INT32_MAX) {
		*err = json_tokener_error_parse_eof;
		return NULL;
	}
	if (!utf8_valid((const unsigned char *)p, len)) {
		*err = json_tokener_error_parse_utf8_string;
		return NULL;
	}
	json_tokener *tok = json_tokener_new_ex(BX_JSON_MAX_DEPTH);
	if (!tok) {
		*err = json_tokener_error_depth; /* json-c has no out-of-memory code */
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *v = json_tokener_parse_ex(tok, p, (int)len);
	*err = json_tokener_get_error(tok);
	*end = json_tokener_get_parse_end(tok);
	if (*err == json_tokener_continue) {
		/* A bare number at the very end needs to see the end of input. */
		v = json_tokener_parse_ex(tok, "", 1);
		*err = json_tokener_get_error(tok);
		*end = len;
	}
	json_tokener_free(tok);
	if (*err == json_tokener_success && !all_finite(v))
		*err = json_tokener_error_parse_number;
	if (*err != json_tokener_success) {
		json_object_put(v);
		return NULL;
	}
	return v;
}

json_object *bx_json_parse_all(const char *p, size_t len, bool *ok)
{
	*ok = false;
	if (!p || len == 0 || len >= (size_t)INT32_MAX)
		return NULL;
	json_tokener *tok = json_tokener_new_ex(BX_JSON_MAX_DEPTH);
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *v = json_tokener_parse_ex(tok, p, (int)len);
	size_t end = json_tokener_get_parse_end(tok);
	enum json_tokener_error e = json_tokener_get_error(tok);
	if (e == json_tokener_continue) {
		/* A bare number at the very end needs to see the end of input. */
		v = json_tokener_parse_ex(tok, "", 1);
		e = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);
	bool good = e == json_tokener_success;
	for (; good && end < len; end++)
		if (!p[end] || !strchr(" \t\r\n", p[end]))
			good = false;
	if (!good) {
		json_object_put(v);
		return NULL;
	}
	*ok = true;
	return v; /* NULL for the JSON text "null" */
}
