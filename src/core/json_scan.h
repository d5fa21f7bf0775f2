/*
 * json_scan.h — a census of JSON text taken before any tree is built.
 *
 * json-c builds the whole tree of a request before anyone can look at it,
 * and its nodes are large (an empty object costs ~780 bytes on 64-bit glibc,
 * 260 times the 3 bytes "{}," it came from). bx_json_scan() walks the text
 * once, with no allocation, and counts what the tree would hold, so that a
 * batch over --max-batch, or a body whose tree would cost more than
 * BX_PARSE_MULT times its size, is refused before json-c sees it
 * (docs/SECURITY.md, "Parse memory").
 *
 * The scan does not validate: it follows strings, escapes and nesting and
 * counts tokens; json-c still judges the text. On text json-c accepts (in
 * strict mode) the counts equal the tree's (tests/fuzz/fuzz_json_scan.c
 * checks that against json-c as its oracle).
 */
#ifndef BX_JSON_SCAN_H
#define BX_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>

/* A parsed request may cost at most BX_PARSE_MULT times its body in memory,
 * or BX_PARSE_FLOOR bytes, whichever is more (a small body is never refused
 * for its shape). */
#define BX_PARSE_MULT 64
#define BX_PARSE_FLOOR (1024 * 1024)

/* What json-c allocates per node (json-c 0.16, glibc, 64-bit; measured, see
 * docs/SECURITY.md), rounded up, each including its slot in the parent. */
#define BX_COST_OBJECT 800 /* json_object + lh_table of 16 entries */
#define BX_COST_ARRAY  160 /* json_object + array_list of 32 slots */
#define BX_COST_SCALAR 112 /* a number, string (plus its bytes), true, false */
#define BX_COST_KEY    40  /* an object member's key (plus its bytes) */

typedef struct bx_json_census {
	bool top_array;      /* the text starts with '[' (after white space) */
	size_t top;          /* values directly in the top-level array; 1 when the
	                        top is not an array; 0 for empty text or "[]" */
	size_t objects;      /* '{' outside strings */
	size_t arrays;       /* '[' outside strings, the top-level one included */
	size_t keys;         /* strings in key position */
	size_t scalars;      /* other strings, numbers, true, false (not null) */
	size_t string_bytes; /* bytes between quotes, escapes as written */
	size_t nulls;
	bool too_deep;       /* containers nest deeper than max_depth: the scan
	                        stopped there, where json-c stops too, and the
	                        counts are of the text before */
	size_t cost;         /* estimated bytes of json-c's tree (see above) */
} bx_json_census;

/* Takes the census of len bytes at p (no NUL needed, never reads past len).
 * max_depth is json-c's depth limit (BX_JSON_MAX_DEPTH): at the first
 * container nested deeper the scan stops (c->too_deep). */
void bx_json_scan(const char *p, size_t len, size_t max_depth, bx_json_census *c);

/* The most a request of len bytes may cost parsed: max(BX_PARSE_MULT * len,
 * BX_PARSE_FLOOR). */
size_t bx_parse_budget(size_t len);

#endif
