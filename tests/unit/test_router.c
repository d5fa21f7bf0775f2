/* Subscription trie and wildcard matching (src/router.c). */
#include "helpers.h"

static bx_server *srv;

static void setup(void)
{
	srv = test_server(30000, 10000);
}

static void teardown(void)
{
	bx_server_free(srv);
}

static bx_session *new_session(void)
{
	bool full;
	bx_session *s = bx_session_create(srv, NULL, &full);
	cr_assert_not_null(s);
	return s;
}

static void sub(bx_session *s, const char *p)
{
	cr_assert_eq(bx_router_subscribe(&srv->router, s, p, strlen(p)), 0);
}

/* Whether a publish on channel reaches s, and how many sessions it reaches. */
static size_t reach(const char *channel, bx_session *s, bool *hit)
{
	bx_sessvec v = {0};
	bx_router_match(&srv->router, channel, strlen(channel), &v);
	*hit = false;
	for (size_t i = 0; i < v.n; i++)
		if (v.v[i] == s)
			*hit = true;
	size_t n = v.n;
	bx_sessvec_release(&v);
	return n;
}

static bool matches(const char *pattern, const char *channel)
{
	bx_session *s = new_session();
	sub(s, pattern);
	bool hit;
	reach(channel, s, &hit);
	bx_session_remove(srv, s, BX_WAKE_DISCONNECT);
	bx_session_unref(s);
	return hit;
}

TestSuite(router, .init = setup, .fini = teardown);

Test(router, exact_subscription_matches_only_that_channel)
{
	cr_expect(matches("/a/b", "/a/b"));
	cr_expect_not(matches("/a/b", "/a"));
	cr_expect_not(matches("/a/b", "/a/b/c"));
	cr_expect_not(matches("/a/b", "/a/bb"));
	cr_expect_not(matches("/a/b", "/b/b"));
}

Test(router, single_wildcard_matches_exactly_one_more_segment)
{
	cr_expect(matches("/a/*", "/a/b"));
	cr_expect(matches("/a/*", "/a/zzz"));
	cr_expect_not(matches("/a/*", "/a"));
	cr_expect_not(matches("/a/*", "/a/b/c"));
	cr_expect_not(matches("/a/*", "/b/c"));
	cr_expect(matches("/*", "/x"));
	cr_expect_not(matches("/*", "/x/y"));
}

Test(router, double_wildcard_matches_deeper_channels)
{
	cr_expect(matches("/a/**", "/a/b"));
	cr_expect(matches("/a/**", "/a/b/c"));
	cr_expect(matches("/a/**", "/a/b/c/d/e"));
	cr_expect_not(matches("/a/**", "/a"));
	cr_expect_not(matches("/a/**", "/ab/c"));
	cr_expect(matches("/**", "/x/y/z"));
	cr_expect(matches("/a/b/**", "/a/b/c"));
	cr_expect_not(matches("/a/b/**", "/a/c/d"));
}

Test(router, subscriber_matched_by_several_subscriptions_gets_one_copy)
{
	bx_session *s = new_session();
	sub(s, "/a/b");
	sub(s, "/a/*");
	sub(s, "/a/**");
	sub(s, "/**");
	bool hit;
	cr_expect_eq(reach("/a/b", s, &hit), 1);
	cr_expect(hit);
	bx_session_unref(s);
}

Test(router, each_of_many_subscribers_is_reached_once)
{
	bx_session *s[50];
	for (int i = 0; i < 50; i++) {
		s[i] = new_session();
		sub(s[i], i % 2 ? "/x/**" : "/x/y");
	}
	bool hit;
	cr_expect_eq(reach("/x/y", s[0], &hit), 50);
	cr_expect_eq(reach("/x/z", s[1], &hit), 25);
	for (int i = 0; i < 50; i++)
		bx_session_unref(s[i]);
}

Test(router, subscribing_twice_is_one_subscription)
{
	bx_session *s = new_session();
	sub(s, "/a");
	sub(s, "/a");
	cr_expect_eq(s->nsubs, 1);
	cr_expect(bx_router_unsubscribe(&srv->router, s, "/a", 2));
	bool hit;
	cr_expect_eq(reach("/a", s, &hit), 0);
	bx_session_unref(s);
}

Test(router, unsubscribe_stops_matching_and_prunes_the_trie)
{
	bx_session *s = new_session();
	sub(s, "/p/q/r");
	sub(s, "/p/q/*");
	cr_expect(bx_router_unsubscribe(&srv->router, s, "/p/q/r", 6));
	bool hit;
	reach("/p/q/r", s, &hit);
	cr_expect(hit, "still reached through /p/q/*");
	cr_expect(bx_router_unsubscribe(&srv->router, s, "/p/q/*", 6));
	reach("/p/q/r", s, &hit);
	cr_expect_not(hit);
	cr_expect_not(bx_router_unsubscribe(&srv->router, s, "/p/q/*", 6), "not subscribed");
	cr_expect(bx_router_is_empty(&srv->router), "empty branches are freed");
	bx_session_unref(s);
}

Test(router, removing_a_session_removes_all_its_subscriptions)
{
	bx_session *s = new_session();
	sub(s, "/r/1");
	sub(s, "/r/**");
	bx_session_remove(srv, s, BX_WAKE_DISCONNECT);
	bool hit;
	cr_expect_eq(reach("/r/1", s, &hit), 0);
	cr_expect_eq(s->nsubs, 0);
	bx_session_unref(s);
}

Test(router, thousands_of_sibling_channels_each_reach_their_own_subscriber)
{
	enum { N = 3000 };
	static bx_session *s[N];
	char name[32];
	for (int i = 0; i < N; i++) {
		s[i] = new_session();
		snprintf(name, sizeof name, "/many/%d", i);
		sub(s[i], name);
	}
	for (int i = 0; i < N; i += 7) {
		bool hit;
		snprintf(name, sizeof name, "/many/%d", i);
		cr_assert_eq(reach(name, s[i], &hit), 1);
		cr_assert(hit);
	}
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof name, "/many/%d", i);
		cr_assert(bx_router_unsubscribe(&srv->router, s[i], name, strlen(name)));
		bx_session_unref(s[i]);
	}
	cr_expect(bx_router_is_empty(&srv->router));
}

Test(router, a_removed_session_cannot_be_subscribed_again)
{
	/* A request that found the session just before another thread removed
	 * it must not leave it in the trie (it would dangle once freed). */
	bx_session *s = new_session();
	bx_session_remove(srv, s, BX_WAKE_DISCONNECT);
	cr_expect_neq(bx_router_subscribe(&srv->router, s, "/late", 5), 0);
	bool hit;
	cr_expect_eq(reach("/late", s, &hit), 0);
	cr_expect(bx_router_is_empty(&srv->router));
	bx_session_unref(s);
}
