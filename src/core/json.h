/*
 * json.h — the one way requests are parsed: json-c with our depth limit and
 * strict, UTF-8-validating rules, finite numbers only.
 */
#ifndef BX_JSON_H
#define BX_JSON_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* JSON nesting accepted in a request. */
#define BX_JSON_MAX_DEPTH 32

/* Parses len bytes of JSON (no NUL needed). Returns the value, or NULL with
 * *err set; *end is where parsing stopped (trailing bytes are the caller's
 * to judge). */
json_object *bx_json_parse(const char *p, size_t len, size_t *end, enum json_tokener_error *err);

/* Parses one complete JSON text (surrounding whitespace allowed). Returns
 * the value (NULL for "null") with *ok true, or NULL with *ok false when it
 * does not parse. */
json_object *bx_json_parse_all(const char *p, size_t len, bool *ok);

#endif
