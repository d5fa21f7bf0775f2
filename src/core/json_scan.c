/*
 * json_scan.c — the census of JSON text before parsing (json_scan.h).
 *
 * One pass, no allocation. Outside strings the structural characters count
 * containers and track whether the next string in an object is a key; a
 * value starts at the first character of a token after '[', ',' or ':' (or
 * at the very start), which is what counts the top-level array's elements.
 * Nesting deeper than we track (json-c refuses past BX_JSON_MAX_DEPTH
 * anyway) only loses the key/value distinction: a key is then counted as a
 * scalar, which costs more, so the estimate stays an upper bound.
 */
#include "json_scan.h"

#include <stdint.h>
#include <string.h>

#define TRACK_DEPTH 64 /* levels whose container kind we remember */

static size_t sat_add(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
	return b && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

void bx_json_scan(const char *p, size_t len, size_t max_depth, bx_json_census *c)
{
	*c = (bx_json_census){0};
	/* kind[d]: 1 = object, 0 = array, for levels 1..TRACK_DEPTH. */
	unsigned char kind[TRACK_DEPTH + 1] = {0};
	size_t depth = 0;
	bool want_value = true; /* the next token starts a value */
	bool want_key = false;  /* ...or, inside an object, a key */
	bool seen_top = false;  /* the first token was seen */

	size_t i;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];
		switch (ch) {
		case ' ': case '\t': case '\r': case '\n':
			continue;
		case '"': {
			/* The closing quote is the next one not escaped, i.e. not
			 * after an odd run of backslashes (memchr: the bulk of a
			 * body is strings). Each backslash is looked at once. */
			size_t start = ++i;
			for (;;) {
				const char *q = i < len ? memchr(p + i, '"', len - i) : NULL;
				if (!q) {
					i = len;
					break;
				}
				size_t j = (size_t)(q - p), bs = 0;
				while (j - bs > start && p[j - bs - 1] == '\\')
					bs++;
				i = j;
				if (bs % 2 == 0)
					break;
				i++;
			}
			size_t n = i - start;
			c->string_bytes += n;
			bool key = want_key && depth >= 1 && depth <= TRACK_DEPTH && kind[depth] == 1;
			if (key) {
				c->keys++;
			} else {
				if (want_value && depth == 1 && c->top_array)
					c->top++;
				c->scalars++;
			}
			want_value = want_key = false;
			break;
		}
		case '{':
		case '[':
			if (depth >= max_depth) {
				c->too_deep = true;
				goto done;
			}
			if (!seen_top)
				c->top_array = ch == '[';
			else if (want_value && depth == 1 && c->top_array)
				c->top++;
			if (ch == '{')
				c->objects++;
			else
				c->arrays++;
			depth++;
			if (depth <= TRACK_DEPTH)
				kind[depth] = ch == '{';
			want_value = ch == '[';
			want_key = ch == '{';
			break;
		case '}':
		case ']':
			if (depth)
				depth--;
			want_value = want_key = false;
			break;
		case ',':
			want_value = true;
			want_key = depth >= 1 && depth <= TRACK_DEPTH && kind[depth] == 1;
			break;
		case ':':
			want_value = true;
			want_key = false;
			break;
		default:
			/* A bare token: number, true, false, null (or garbage, for
			 * json-c to refuse). Counted once, at its first character. */
			if (want_value || want_key || !seen_top) {
				if (want_value && depth == 1 && c->top_array)
					c->top++;
				if (ch == 'n')
					c->nulls++;
				else
					c->scalars++;
			}
			want_value = want_key = false;
			break;
		}
		seen_top = true;
	}
done:
	if (seen_top && !c->top_array)
		c->top = 1;

	size_t cost = i < len ? i : len; /* the text json-c reads */
	cost = sat_add(cost, sat_mul(c->objects, BX_COST_OBJECT));
	cost = sat_add(cost, sat_mul(c->arrays, BX_COST_ARRAY));
	cost = sat_add(cost, sat_mul(c->scalars, BX_COST_SCALAR));
	cost = sat_add(cost, sat_mul(c->keys, BX_COST_KEY));
	cost = sat_add(cost, sat_mul(c->nulls, 8));
	cost = sat_add(cost, c->string_bytes);
	c->cost = cost;
}

size_t bx_parse_budget(size_t len)
{
	size_t b = sat_mul(len, BX_PARSE_MULT);
	return b > BX_PARSE_FLOOR ? b : BX_PARSE_FLOOR;
}
