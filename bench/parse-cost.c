/*
 * parse-cost.c — what a request body costs to parse, and what the census
 * before parsing (src/core/json_scan.c) adds: for each body shape, the
 * census's time, json-c's parse time (bx_json_parse, as bx_dispatch uses
 * it), the bytes glibc reports allocated for the tree (mallinfo2), the
 * census's estimate, and the ratio to the body. One line per shape;
 * bench/parse-cost.mjs prints the same for Node's JSON.parse (what Faye's
 * and CometD's Node servers parse with) for a side-by-side figure.
 *
 *   build/bench/parse-cost [REPEATS]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json.h"
#include "core/json_scan.h"

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* "[" + n copies of unit joined by "," + "]", wrapped in prefix/suffix. */
static char *build(const char *prefix, const char *unit, size_t n, const char *suffix, size_t *len)
{
	size_t ul = strlen(unit), pl = strlen(prefix), sl = strlen(suffix);
	char *b = malloc(pl + n * (ul + 1) + sl + 1);
	size_t k = 0;
	memcpy(b, prefix, pl);
	k = pl;
	for (size_t i = 0; i < n; i++) {
		if (i)
			b[k++] = ',';
		memcpy(b + k, unit, ul);
		k += ul;
	}
	memcpy(b + k, suffix, sl);
	k += sl;
	b[k] = '\0';
	*len = k;
	return b;
}

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 20;
	static const struct {
		const char *name, *prefix, *unit, *suffix;
		size_t n;
	} shapes[] = {
	        {"publish batch (100 chat messages)", "[", "{\"channel\":\"/chat/lobby\",\"data\":{\"user\":\"alice\",\"text\":\"hello there, how are you?\"},\"id\":\"17\",\"clientId\":\"3kd8Qm2LxP0aZr7TbN4vWy\"}", "]", 100},
	        {"connect", "[", "{\"channel\":\"/meta/connect\",\"connectionType\":\"long-polling\",\"advice\":{\"timeout\":0},\"id\":\"5\",\"clientId\":\"3kd8Qm2LxP0aZr7TbN4vWy\"}", "]", 1},
	        {"400 KB of strings in data", "[{\"channel\":\"/a\",\"data\":[", "\"some text of moderate length here, about a hundred bytes of it, as a log line would be....\"", "]}]", 4000},
	        {"4096 empty messages (at --max-batch)", "[", "{}", "]", 4096},
	        {"100,000 empty messages (refused)", "[", "{}", "]", 100000},
	        {"300,000 {} in data (refused, 413)", "[{\"channel\":\"/a\",\"data\":[", "{}", "]}]", 300000},
	};
	printf("%-38s %9s %11s %11s %12s %12s %8s %8s\n", "body", "bytes", "census us", "parse us",
	       "tree bytes", "estimate", "tree/x", "est/x");
	for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
		size_t len;
		char *b = build(shapes[i].prefix, shapes[i].unit, shapes[i].n, shapes[i].suffix, &len);
		bx_json_census c;
		double t0 = now_s();
		for (int r = 0; r < reps; r++)
			bx_json_scan(b, len, BX_JSON_MAX_DEPTH, &c);
		double census = (now_s() - t0) / reps;
		double parse = 0;
		size_t tree = 0;
		for (int r = 0; r < reps; r++) {
			size_t end;
			enum json_tokener_error err;
			struct mallinfo2 m0 = mallinfo2();
			double p0 = now_s();
			json_object *v = bx_json_parse(b, len, &end, &err);
			parse += now_s() - p0;
			struct mallinfo2 m1 = mallinfo2();
			tree = m1.uordblks - m0.uordblks;
			json_object_put(v);
		}
		parse /= reps;
		printf("%-38s %9zu %11.1f %11.1f %12zu %12zu %8.1f %8.1f\n", shapes[i].name, len,
		       census * 1e6, parse * 1e6, tree, c.cost, (double)tree / (double)len,
		       (double)c.cost / (double)len);
		free(b);
	}
	return 0;
}
