/*
 * wire.h — what bayeuxd nodes put in Redis and how Bayeux patterns become
 * Redis subscriptions. Pure functions (no I/O, no locks), unit-tested and
 * fuzzed on their own (tests/unit/test_cluster_wire.c, tests/fuzz/fuzz_bus_header.c).
 *
 * A node publishes one Redis message per Bayeux publish, on the Redis channel
 * "<prefix>:<bayeux channel>", with this payload:
 *
 *     bx1 <origin> <seq>\n<delivered JSON>
 *
 * A retained channel's message (history in Redis Streams: the node's append
 * script adds it to "<prefix>:history:<channel>" under the replay id taken
 * from "<prefix>:histseq:<channel>", and publishes it in the same script)
 * carries that id:
 *
 *     bx1 <origin> <seq> r<replay id>\n<delivered JSON, without ext.replayId>
 *
 * and a replay's cut (see redis.c) is a message with no JSON that only its
 * origin reads:
 *
 *     bx1 <origin> <token> c\n
 *
 * origin is the publishing process's token ("<node-id>~<instance>", the
 * instance random per start); seq counts that process's publishes from 1.
 * Redis hands a node the messages of one publisher in the order they were
 * published, so a receiver drops the echo of its own publishes and any
 * (origin, seq) it has seen already (the same PUBLISH reaching it through a
 * SUBSCRIBE and a PSUBSCRIBE).
 */
#ifndef BX_CLUSTER_WIRE_H
#define BX_CLUSTER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest --node-id, and longest origin token (node id, '~', 16 hex). */
#define BX_NODE_ID_MAX 64
#define BX_ORIGIN_MAX  (BX_NODE_ID_MAX + 1 + 16)
/* Longest --redis-prefix. */
#define BX_REDIS_PREFIX_MAX 64
/* Room for a payload's header: "bx1 " origin " " 20 digits "\n". */
#define BX_WIRE_HEADER_MAX (4 + BX_ORIGIN_MAX + 1 + 20 + 1)

/* True when name may be a --node-id or --redis-prefix: 1 to max bytes of
 * [A-Za-z0-9._-]. */
bool bx_wire_name_ok(const char *name, size_t max);

/* Writes the header for (origin, seq) into out (BX_WIRE_HEADER_MAX bytes);
 * returns its length. */
size_t bx_wire_header(char *out, const char *origin, uint64_t seq);

/* One parsed payload; pointers point into the parsed buffer. */
typedef struct bx_wire_msg {
	const char *origin;
	size_t olen;
	uint64_t seq;       /* or a cut's token */
	uint64_t replay_id; /* 0: none */
	bool cut;           /* a replay's cut: no JSON */
	const char *json;
	size_t jlen;
} bx_wire_msg;

/* Writes a cut for token into out (BX_WIRE_HEADER_MAX bytes); returns its
 * length. */
size_t bx_wire_cut(char *out, const char *origin, uint64_t token);

/* Parses a payload. Returns 0, or -1 when it is not ours or malformed
 * (wrong magic, origin not 1..BX_ORIGIN_MAX of [A-Za-z0-9._~-], seq not 1 to
 * 20 digits within uint64, a fourth field other than r<id> (id 1 to 20
 * digits, not 0) or c, no newline, empty JSON, a cut with JSON). */
int bx_wire_parse(const char *p, size_t len, bx_wire_msg *out);

/* A stream entry id as the append script writes it ("<replay id>-0"): sets
 * *id; -1 when it is anything else. */
int bx_wire_stream_id(const char *p, size_t len, uint64_t *id);
/* A decimal integer (a stream entry's time): -1 when it is not one. */
int bx_wire_number(const char *p, size_t len, int64_t *v);

/* The Redis subscription for a Bayeux pattern (checked by bx_channel_check):
 * an exact channel is SUBSCRIBE "<prefix>:<channel>"; /a/ * and /a/ ** are both
 * PSUBSCRIBE "<escaped prefix>:/a/ *" (Redis's * crosses '/', so the router
 * filters what arrives). Writes NUL-terminated key into out (cap bytes) and
 * sets *pattern. Returns the key's length, or 0 when it does not fit. */
size_t bx_wire_redis_key(const char *prefix, const char *pattern, size_t len, bool wild,
                         char *out, size_t cap, bool *is_pattern);

/* Where Redis is: --redis redis://HOST[:PORT][/DB] or unix:/PATH. */
typedef struct bx_redis_addr {
	char host[256]; /* "" for a socket path */
	unsigned port;
	char path[108]; /* unix socket path, or "" */
	unsigned db;
} bx_redis_addr;

/* Parses url; returns 0, or -1 with a message in err (errlen bytes). */
int bx_redis_url_parse(const char *url, bx_redis_addr *out, char *err, size_t errlen);

#endif
