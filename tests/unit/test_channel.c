/* Channel-name grammar (src/channel.c). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "core/channel.h"

static bool check(const char *s, unsigned *flags)
{
	return bx_channel_check(s, strlen(s), flags);
}

Test(channel, plain_names_are_valid)
{
	const char *ok[] = {"/foo", "/foo/bar", "/a-b/c_d/e.f!~()$@", "/0/1/2", "/meta/connect",
			    "/service/echo"};
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
		unsigned f = 99;
		cr_expect(check(ok[i], &f), "%s should be valid", ok[i]);
		cr_expect_eq(f & BX_CH_WILD, 0, "%s is no pattern", ok[i]);
	}
}

Test(channel, wildcards_only_as_whole_last_segment)
{
	unsigned f;
	cr_expect(check("/foo/*", &f));
	cr_expect_eq(f, BX_CH_WILD_ONE);
	cr_expect(check("/foo/**", &f));
	cr_expect_eq(f, BX_CH_WILD_ANY);
	cr_expect(check("/*", &f));
	cr_expect(check("/**", &f));
	cr_expect_not(check("/foo/*/bar", &f));
	cr_expect_not(check("/foo/**/bar", &f));
	cr_expect_not(check("/foo/a*", &f));
	cr_expect_not(check("/foo/***", &f));
}

Test(channel, malformed_names_are_invalid)
{
	const char *bad[] = {"", "foo", "/", "//", "/foo/", "/foo//bar", "/foo bar", "/f\xc3\xb6\xc3\xb6",
			     "/a\"b", "/a\\b", "/a<b>", "/a?b", "/a#b"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		cr_expect_not(check(bad[i], NULL), "'%s' should be invalid", bad[i]);
}

Test(channel, embedded_nul_is_invalid)
{
	cr_expect_not(bx_channel_check("/a\0b", 4, NULL));
}

Test(channel, meta_and_service_are_classified_by_first_segment_only)
{
	unsigned f;
	cr_assert(check("/meta/subscribe", &f));
	cr_expect(f & BX_CH_META);
	cr_assert(check("/service/x/y", &f));
	cr_expect(f & BX_CH_SERVICE);
	cr_assert(check("/chat/meta", &f));
	cr_expect_eq(f & (BX_CH_META | BX_CH_SERVICE), 0);
	cr_assert(check("/metadata", &f));
	cr_expect_eq(f & BX_CH_META, 0, "/metadata is not /meta");
	cr_assert(check("/meta/**", &f));
	cr_expect(f & BX_CH_META);
	cr_expect(f & BX_CH_WILD_ANY);
}

Test(channel, length_and_depth_limits)
{
	char name[BX_CHANNEL_MAX_LEN + 2];
	name[0] = '/';
	memset(name + 1, 'a', BX_CHANNEL_MAX_LEN);
	cr_expect(bx_channel_check(name, BX_CHANNEL_MAX_LEN, NULL));
	cr_expect_not(bx_channel_check(name, BX_CHANNEL_MAX_LEN + 1, NULL));

	char deep[4 * (BX_CHANNEL_MAX_DEPTH + 1) + 1] = "";
	for (int i = 0; i < BX_CHANNEL_MAX_DEPTH; i++)
		strcat(deep, "/a");
	cr_expect(check(deep, NULL));
	strcat(deep, "/a");
	cr_expect_not(check(deep, NULL));
}

Test(channel, split_gives_segments)
{
	const char *seg[BX_CHANNEL_MAX_DEPTH];
	size_t len[BX_CHANNEL_MAX_DEPTH];
	const char *name = "/a/bc/**";
	size_t n = bx_channel_split(name, strlen(name), seg, len);
	cr_assert_eq(n, 3);
	cr_expect_eq(len[0], 1);
	cr_expect_eq(strncmp(seg[1], "bc", len[1]), 0);
	cr_expect_eq(len[2], 2);
}
