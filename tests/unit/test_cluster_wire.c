/*
 * test_cluster_wire.c — what bayeuxd nodes put in Redis (src/cluster/wire.c):
 * the payload header, Bayeux patterns as Redis subscriptions, --redis URLs.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cluster/wire.h"

static const char *key(const char *prefix, const char *pattern, bool wild, bool *is_pattern)
{
	static char out[1200];
	size_t n = bx_wire_redis_key(prefix, pattern, strlen(pattern), wild, out, sizeof out,
	                             is_pattern);
	cr_assert(n > 0, "no key for %s", pattern);
	cr_assert_eq(n, strlen(out));
	return out;
}

Test(wire, exact_channel_is_a_plain_subscribe_with_the_prefix)
{
	bool pat = true;
	cr_assert_str_eq(key("bayeux", "/chat/room", false, &pat), "bayeux:/chat/room");
	cr_assert(!pat);
}

Test(wire, exact_channel_keeps_glob_characters_unescaped)
{
	bool pat = true;
	/* SUBSCRIBE takes names literally: no escaping. */
	cr_assert_str_eq(key("p", "/a[1]/b?", false, &pat), "p:/a[1]/b?");
}

Test(wire, one_and_any_wildcards_become_the_same_redis_pattern)
{
	bool pat = false;
	cr_assert_str_eq(key("bayeux", "/chat/*", true, &pat), "bayeux:/chat/*");
	cr_assert(pat);
	cr_assert_str_eq(key("bayeux", "/chat/**", true, &pat), "bayeux:/chat/*");
	cr_assert_str_eq(key("bayeux", "/*", true, &pat), "bayeux:/*");
	cr_assert_str_eq(key("bayeux", "/**", true, &pat), "bayeux:/*");
}

Test(wire, glob_characters_in_a_wildcard_pattern_are_escaped)
{
	bool pat;
	cr_assert_str_eq(key("bayeux", "/a[1]/b?/c\\d/*", true, &pat),
	                 "bayeux:/a\\[1\\]/b\\?/c\\\\d/*");
}

Test(wire, a_key_that_does_not_fit_gives_zero)
{
	char out[9];
	bool pat;
	cr_assert_eq(bx_wire_redis_key("bayeux", "/chat/room", 10, false, out, 8, &pat), 0);
	cr_assert_eq(bx_wire_redis_key("bay", "/a/*", 4, true, out, 8, &pat), 0);
	cr_assert_eq(bx_wire_redis_key("bay", "/a/*", 4, true, out, 9, &pat), 8);
	cr_assert_str_eq(out, "bay:/a/*");
}

Test(wire, header_round_trips)
{
	char buf[BX_WIRE_HEADER_MAX + 64];
	size_t n = bx_wire_header(buf, "node-1~0011223344556677", 18446744073709551615ULL);
	cr_assert_str_eq(buf, "bx1 node-1~0011223344556677 18446744073709551615\n");
	memcpy(buf + n, "{\"a\":1}", 7);
	bx_wire_msg m;
	cr_assert_eq(bx_wire_parse(buf, n + 7, &m), 0);
	cr_assert_eq(m.olen, strlen("node-1~0011223344556677"));
	cr_assert(memcmp(m.origin, "node-1~0011223344556677", m.olen) == 0);
	cr_assert_eq(m.seq, 18446744073709551615ULL);
	cr_assert_eq(m.jlen, 7);
	cr_assert(memcmp(m.json, "{\"a\":1}", 7) == 0);
}

static int parse(const char *s)
{
	bx_wire_msg m;
	return bx_wire_parse(s, strlen(s), &m);
}

Test(wire, malformed_headers_are_refused)
{
	cr_assert_eq(parse("bx1 n 1\n{}"), 0);
	cr_assert_eq(parse(""), -1);
	cr_assert_eq(parse("bx2 n 1\n{}"), -1);           /* magic */
	cr_assert_eq(parse("bx1  1\n{}"), -1);            /* empty origin */
	cr_assert_eq(parse("bx1 n\n{}"), -1);             /* no seq */
	cr_assert_eq(parse("bx1 n \n{}"), -1);            /* empty seq */
	cr_assert_eq(parse("bx1 n 1x\n{}"), -1);          /* junk in seq */
	cr_assert_eq(parse("bx1 n 1\n"), -1);             /* no JSON */
	cr_assert_eq(parse("bx1 n 1"), -1);               /* no newline */
	cr_assert_eq(parse("bx1 n/x 1\n{}"), -1);         /* bad origin character */
	cr_assert_eq(parse("bx1 n 18446744073709551616\n{}"), -1); /* > UINT64_MAX */
	cr_assert_eq(parse("bx1 n 000000000000000000001\n{}"), -1); /* 21 digits */
	char longo[BX_ORIGIN_MAX + 32];
	memset(longo, 'a', sizeof longo);
	memcpy(longo, "bx1 ", 4);
	snprintf(longo + 4 + BX_ORIGIN_MAX + 1, 16, " 1\n{}");
	cr_assert_eq(parse(longo), -1); /* origin one too long */
	longo[4 + BX_ORIGIN_MAX] = ' ';
	snprintf(longo + 4 + BX_ORIGIN_MAX + 1, 16, "1\n{}");
	cr_assert_eq(parse(longo), 0); /* longest origin */
}

Test(wire, names_for_node_id_and_prefix)
{
	cr_assert(bx_wire_name_ok("node-1.a_b", 64));
	cr_assert(!bx_wire_name_ok("", 64));
	cr_assert(!bx_wire_name_ok(NULL, 64));
	cr_assert(!bx_wire_name_ok("a b", 64));
	cr_assert(!bx_wire_name_ok("a:b", 64));
	cr_assert(!bx_wire_name_ok("abcd", 3));
}

Test(wire, redis_urls)
{
	bx_redis_addr a;
	char err[256];
	cr_assert_eq(bx_redis_url_parse("redis://127.0.0.1:6380/2", &a, err, sizeof err), 0);
	cr_assert_str_eq(a.host, "127.0.0.1");
	cr_assert_eq(a.port, 6380);
	cr_assert_eq(a.db, 2);
	cr_assert_eq(bx_redis_url_parse("redis://localhost", &a, err, sizeof err), 0);
	cr_assert_eq(a.port, 6379);
	cr_assert_eq(a.db, 0);
	cr_assert_eq(bx_redis_url_parse("redis://h/", &a, err, sizeof err), 0);
	cr_assert_eq(bx_redis_url_parse("unix:/run/redis.sock", &a, err, sizeof err), 0);
	cr_assert_str_eq(a.path, "/run/redis.sock");
	cr_assert_str_eq(a.host, "");
	const char *bad[] = {"",           "http://h",         "redis://",    "redis://:1",
	                     "redis://h:0", "redis://h:65536", "redis://h:x", "redis://h/x",
	                     "unix:rel",    "redis://a:b@h",   "redis://h:1x", "redis://h/1/2"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		cr_assert_eq(bx_redis_url_parse(bad[i], &a, err, sizeof err), -1, "%s", bad[i]);
		cr_assert(strstr(err, "--redis") != NULL);
	}
}

Test(wire, retained_messages_carry_their_replay_id)
{
	bx_wire_msg m;
	const char *s = "bx1 n~1 7 r42\n{\"a\":1}";
	cr_assert_eq(bx_wire_parse(s, strlen(s), &m), 0);
	cr_assert_eq(m.seq, 7);
	cr_assert_eq(m.replay_id, 42);
	cr_assert_not(m.cut);
	cr_assert_eq(m.jlen, 7);
	s = "bx1 n~1 7\n{}";
	cr_assert_eq(bx_wire_parse(s, strlen(s), &m), 0);
	cr_assert_eq(m.replay_id, 0, "a plain publish has none");
	cr_assert_eq(parse("bx1 n 1 r0\n{}"), -1);     /* ids start at 1 */
	cr_assert_eq(parse("bx1 n 1 r\n{}"), -1);      /* no digits */
	cr_assert_eq(parse("bx1 n 1 rx\n{}"), -1);
	cr_assert_eq(parse("bx1 n 1 r5 \n{}"), -1);    /* junk after */
	cr_assert_eq(parse("bx1 n 1 q5\n{}"), -1);     /* unknown field */
	cr_assert_eq(parse("bx1 n 1 r5\n"), -1);       /* no JSON */
	cr_assert_eq(parse("bx1 n 1 r18446744073709551616\n{}"), -1);
}

Test(wire, cuts_have_a_token_and_no_json)
{
	char buf[BX_WIRE_HEADER_MAX];
	size_t n = bx_wire_cut(buf, "node~ab", 9);
	cr_assert_str_eq(buf, "bx1 node~ab 9 c\n");
	bx_wire_msg m;
	cr_assert_eq(bx_wire_parse(buf, n, &m), 0);
	cr_assert(m.cut);
	cr_assert_eq(m.seq, 9);
	cr_assert_eq(m.jlen, 0);
	cr_assert_eq(parse("bx1 n 1 c\n{}"), -1);      /* a cut has no JSON */
	cr_assert_eq(parse("bx1 n 1 cc\n"), -1);
}

Test(wire, stream_entry_values)
{
	uint64_t id;
	cr_assert_eq(bx_wire_stream_id("12-0", 4, &id), 0);
	cr_assert_eq(id, 12);
	cr_assert_eq(bx_wire_stream_id("18446744073709551615-0", 22, &id), 0);
	cr_assert_eq(id, UINT64_MAX);
	cr_assert_eq(bx_wire_stream_id("0-0", 3, &id), -1);   /* ids start at 1 */
	cr_assert_eq(bx_wire_stream_id("12-1", 4, &id), -1);  /* not ours */
	cr_assert_eq(bx_wire_stream_id("12", 2, &id), -1);
	cr_assert_eq(bx_wire_stream_id("-0", 2, &id), -1);
	cr_assert_eq(bx_wire_stream_id("1700000000000-0x", 16, &id), -1);
	int64_t v;
	cr_assert_eq(bx_wire_number("1764560000000", 13, &v), 0);
	cr_assert_eq(v, 1764560000000LL);
	cr_assert_eq(bx_wire_number("-5", 2, &v), 0);
	cr_assert_eq(v, -5);
	cr_assert_eq(bx_wire_number("", 0, &v), -1);
	cr_assert_eq(bx_wire_number("-", 1, &v), -1);
	cr_assert_eq(bx_wire_number("5x", 2, &v), -1);
	cr_assert_eq(bx_wire_number("9223372036854775808", 19, &v), -1);
}
