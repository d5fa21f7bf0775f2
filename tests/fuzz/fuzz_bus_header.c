/*
 * fuzz_bus_header.c — libFuzzer target over what a node parses from Redis:
 * the payload header (bx_wire_parse, with its replay id or cut), the
 * values of a replayed stream entry (bx_wire_stream_id, bx_wire_number),
 * and the Redis key built from a pattern (bx_wire_redis_key).
 *
 * Oracles: a parsed payload's parts lie inside the input, in order, and
 * re-encoding (origin, seq[, r<id> | c]) gives back the input's header byte
 * for byte; a stream id or number printed again gives back the input; a
 * key never overflows its buffer and an escaped pattern never holds an
 * unescaped glob character before its final '*'.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	bx_wire_msg m;
	if (bx_wire_parse(p, size, &m) == 0) {
		if (m.origin < p || m.origin + m.olen > p + size || m.json <= m.origin ||
		    m.json + m.jlen != p + size || (m.jlen == 0) != m.cut || m.olen == 0 ||
		    m.olen > BX_ORIGIN_MAX || (m.cut && m.replay_id))
			abort();
		char origin[BX_ORIGIN_MAX + 1];
		memcpy(origin, m.origin, m.olen);
		origin[m.olen] = '\0';
		char hdr[BX_WIRE_HEADER_MAX + 24];
		size_t hl;
		if (m.cut) {
			hl = bx_wire_cut(hdr, origin, m.seq);
		} else {
			hl = bx_wire_header(hdr, origin, m.seq);
			if (m.replay_id) /* the append script's form: " r<id>" before '\n' */
				hl = hl - 1 + (size_t)snprintf(hdr + hl - 1, sizeof hdr - hl + 1,
				                               " r%llu\n",
				                               (unsigned long long)m.replay_id);
		}
		/* Leading zeros parse but re-encode shorter: compare when none. */
		bool zeros = false;
		for (size_t i = 4 + m.olen; i + 1 < (size_t)(m.json - p); i++)
			if ((p[i] == ' ' || p[i] == 'r') && p[i + 1] == '0' && i + 2 < size &&
			    p[i + 2] >= '0' && p[i + 2] <= '9')
				zeros = true;
		if (!zeros && (hl != (size_t)(m.json - p) || memcmp(hdr, p, hl) != 0))
			abort();
	}
	/* The input as a replayed entry's id and time. */
	uint64_t id;
	if (bx_wire_stream_id(p, size, &id) == 0) {
		char back[32];
		int n = snprintf(back, sizeof back, "%llu-0", (unsigned long long)id);
		if (id == 0 || ((size_t)n != size || memcmp(back, p, size) != 0) && p[0] != '0')
			abort();
	}
	int64_t v;
	if (bx_wire_number(p, size, &v) == 0) {
		char back[32];
		int n = snprintf(back, sizeof back, "%lld", (long long)v);
		bool zeros = size > 1 && (p[0] == '0' || (p[0] == '-' && p[1] == '0'));
		if (!zeros && ((size_t)n != size || memcmp(back, p, size) != 0))
			abort();
	}
	/* The input as a pattern body: a key that fits, escaped. */
	char out[256];
	bool pat;
	size_t n = size > 200 ? 200 : size;
	char *pattern = malloc(n + 3);
	if (!pattern)
		return 0;
	memcpy(pattern, p, n);
	memcpy(pattern + n, "/*", 3);
	size_t k = bx_wire_redis_key("pre", pattern, n + 2, true, out, sizeof out, &pat);
	if (k) {
		if (k >= sizeof out || out[k] != '\0' || out[k - 1] != '*' || !pat)
			abort();
		for (size_t i = 0; i + 1 < k; i++) {
			if (out[i] == '\\') {
				i++;
				continue;
			}
			if (out[i] == '*' || out[i] == '?' || out[i] == '[' || out[i] == ']')
				abort();
		}
	}
	free(pattern);
	return 0;
}
