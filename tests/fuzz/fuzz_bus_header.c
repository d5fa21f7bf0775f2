/*
 * fuzz_bus_header.c — libFuzzer target over what a node parses from Redis:
 * the payload header (bx_wire_parse), and the Redis key built from a
 * pattern (bx_wire_redis_key).
 *
 * Oracles: a parsed payload's parts lie inside the input, in order, and
 * re-encoding (origin, seq) gives back the input's header byte for byte; a
 * key never overflows its buffer and an escaped pattern never holds an
 * unescaped glob character before its final '*'.
 */
#include <stdint.h>
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
		    m.json + m.jlen != p + size || m.jlen == 0 || m.olen == 0 ||
		    m.olen > BX_ORIGIN_MAX)
			abort();
		char origin[BX_ORIGIN_MAX + 1];
		memcpy(origin, m.origin, m.olen);
		origin[m.olen] = '\0';
		char hdr[BX_WIRE_HEADER_MAX];
		size_t hl = bx_wire_header(hdr, origin, m.seq);
		/* Leading zeros parse but re-encode shorter: compare when none. */
		size_t seqpos = 4 + m.olen + 1;
		if (p[seqpos] != '0' || p[seqpos + 1] == '\n')
			if (hl != (size_t)(m.json - p) || memcmp(hdr, p, hl) != 0)
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
