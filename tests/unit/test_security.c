/* The authentication extension and the ACL (src/auth.c, src/acl.c): the
 * pattern algebra, tokens, and the policy driven through bx_dispatch(). */
#include <sodium.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "security/security.h"

static const unsigned char KEY[] = "0123456789abcdef0123456789abcdef-test-key";
#define KEYLEN (sizeof KEY - 1)

/*---- Patterns --------------------------------------------------------------------*/

Test(patterns, a_grant_covers_exactly_what_it_matches)
{
	static const struct {
		const char *grant, *pattern;
		bool covers;
	} t[] = {
	        {"/chat/**", "/chat/a", true},
	        {"/chat/**", "/chat/a/b", true},
	        {"/chat/**", "/chat/*", true},
	        {"/chat/**", "/chat/**", true},
	        {"/chat/**", "/chat/a/**", true},
	        {"/chat/**", "/chat/a/*", true},
	        {"/chat/**", "/chat", false},
	        {"/chat/**", "/*", false},
	        {"/chat/**", "/**", false},
	        {"/chat/**", "/chat2/**", false},
	        {"/chat/**", "/cha/**", false},
	        {"/chat/**", "/other/chat/x", false},
	        {"/chat/*", "/chat/a", true},
	        {"/chat/*", "/chat/*", true},
	        {"/chat/*", "/chat/**", false},
	        {"/chat/*", "/chat/a/b", false},
	        {"/chat/*", "/chat/a/*", false},
	        {"/chat/*", "/chat", false},
	        {"/chat/a", "/chat/a", true},
	        {"/chat/a", "/chat/*", false},
	        {"/chat/a", "/chat/**", false},
	        {"/chat/a", "/chat/a/b", false},
	        {"/chat/a", "/chat/ab", false},
	        {"/**", "/anything/at/all", true},
	        {"/**", "/**", true},
	        {"/**", "/*", true},
	        {"/*", "/x", true},
	        {"/*", "/**", false},
	        {"/*", "/x/y", false},
	        {"/a/*", "/a/**", false},
	        {"/chat/**", "/meta/subscribe", false}, /* different first segment */
	        {"/chat/**", "", false},
	        {"/chat/**", "/chat/", false},
	        {"/chat/**", "/chat//x", false},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		cr_expect_eq(bx_pattern_covers(t[i].grant, t[i].pattern), t[i].covers,
		             "covers(%s, %s) should be %d", t[i].grant, t[i].pattern, t[i].covers);
}

Test(patterns, overlaps_finds_any_shared_channel)
{
	static const struct {
		const char *a, *b;
		bool overlap;
	} t[] = {
	        {"/chat/admin/**", "/chat/**", true},
	        {"/chat/admin/**", "/**", true},
	        {"/chat/admin/**", "/*", false},
	        {"/chat/admin/**", "/chat/*", false},
	        {"/chat/admin/**", "/chat/admin", false},
	        {"/chat/admin/**", "/chat/admin/x", true},
	        {"/chat/admin/*", "/chat/*/", false},
	        {"/a/*", "/b/**", false},
	        {"/a/*", "/a/**", true},
	        {"/a/*", "/*", false},
	        {"/a", "/*", true},
	        {"/a", "/**", true},
	        {"/a/b", "/a/b", true},
	        {"/a/b", "/a/c", false},
	        {"/a/b/c", "/a/*", false},
	        {"/a/b/c", "/a/**", true},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		cr_expect_eq(bx_pattern_overlaps(t[i].a, t[i].b), t[i].overlap,
		             "overlaps(%s, %s) should be %d", t[i].a, t[i].b, t[i].overlap);
		cr_expect_eq(bx_pattern_overlaps(t[i].b, t[i].a), t[i].overlap, "symmetric: %s %s",
		             t[i].b, t[i].a);
	}
}

/*---- Tokens ----------------------------------------------------------------------*/

static char *mint(const char *sub, int64_t exp)
{
	const char *subs[] = {"/chat/**", "/news/*"}, *pubs[] = {"/chat/**", "/service/echo"};
	char *t = bx_token_mint(KEY, KEYLEN, sub, exp, subs, 2, pubs, 2);
	cr_assert_not_null(t);
	return t;
}

Test(tokens, a_minted_token_verifies_and_carries_its_grants)
{
	cr_assert(sodium_init() >= 0);
	int64_t now = (int64_t)time(NULL);
	char *t = mint("alice", now + 60);
	cr_expect_null(strpbrk(t, "+/= \n"), "base64url without padding: %s", t);
	bx_grant *g = bx_token_verify(KEY, KEYLEN, t, strlen(t), now);
	cr_assert_not_null(g);
	cr_expect_str_eq(g->sub, "alice");
	cr_expect_eq(g->exp, now + 60);
	cr_expect_eq(g->nsubscribe, 2);
	cr_expect_str_eq(g->subscribe[1], "/news/*");
	cr_expect_str_eq(g->publish[1], "/service/echo");
	bx_grant_free(g);
	free(t);
}

Test(tokens, expired_forged_and_malformed_tokens_fail)
{
	cr_assert(sodium_init() >= 0);
	int64_t now = (int64_t)time(NULL);
	char *t = mint("alice", now + 60);
	size_t n = strlen(t);
	cr_expect_null(bx_token_verify(KEY, KEYLEN, t, n, now + 60), "expired at exp");
	cr_expect_null(bx_token_verify(KEY, KEYLEN - 1, t, n, now), "another key");
	char *dot = strchr(t, '.');
	for (size_t i = 0; i < n; i++) { /* every single-character change is refused */
		char *c = strdup(t);
		c[i] = c[i] == 'A' ? 'B' : 'A';
		bx_grant *g = bx_token_verify(KEY, KEYLEN, c, n, now);
		cr_expect_null(g, "changed character %zu of %s", i, t);
		bx_grant_free(g);
		free(c);
	}
	cr_expect_null(bx_token_verify(KEY, KEYLEN, t, (size_t)(dot - t), now), "payload only");
	cr_expect_null(bx_token_verify(KEY, KEYLEN, t, n - 1, now), "truncated mac");
	cr_expect_null(bx_token_verify(KEY, KEYLEN, "", 0, now));
	cr_expect_null(bx_token_verify(KEY, KEYLEN, ".", 1, now));
	cr_expect_null(bx_token_verify(KEY, KEYLEN, "a.b.c", 5, now));
	/* A payload with a valid MAC but granting /meta/**: refused at parse. */
	const char *bad[] = {"/meta/**"};
	cr_expect_null(bx_token_mint(KEY, KEYLEN, "x", now + 60, bad, 1, NULL, 0));
	free(t);
}

/*---- The policy through the dispatcher ---------------------------------------------*/

static bx_server *srv;
static bx_security *sec;
static fake_waker w;
static char secret_path[64], acl_path[64];

/* A server with --auth hmac (when auth) and --acl with rules (when acl). */
static void start(bool auth, const char *acl)
{
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.log_level = BX_LOG_ERROR;
	cr_assert_eq(bx_server_new(&cfg, &srv), 0);
	fake_clock_ms = 1000000;
	srv->now = fake_now;
	snprintf(secret_path, sizeof secret_path, "/tmp/bx-test-secret-XXXXXX");
	int fd = mkstemp(secret_path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, KEY, KEYLEN), (ssize_t)KEYLEN);
	close(fd);
	acl_path[0] = '\0';
	if (acl) {
		snprintf(acl_path, sizeof acl_path, "/tmp/bx-test-acl-XXXXXX");
		fd = mkstemp(acl_path);
		cr_assert(fd >= 0);
		cr_assert_eq(write(fd, acl, strlen(acl)), (ssize_t)strlen(acl));
		close(fd);
	}
	bx_security_opts o = {.auth = auth ? "hmac" : NULL,
	                      .auth_secret_file = auth ? secret_path : NULL,
	                      .acl_file = acl ? acl_path : NULL};
	char err[256] = "";
	cr_assert_eq(bx_security_install(srv, &o, &sec, err, sizeof err), 0, "%s", err);
}

static void stop(void)
{
	bx_server_free(srv);
	bx_security_free(sec);
	unlink(secret_path);
	if (acl_path[0])
		unlink(acl_path);
}

TestSuite(auth, .fini = stop);

/* Sends text in which each %s is id; returns the reply array. */
static json_object *as(const char *id, const char *fmt)
{
	static char body[8192];
	size_t n = 0;
	for (const char *p = fmt; *p && n + 200 < sizeof body; p++) {
		if (p[0] == '%' && p[1] == 's') {
			n += (size_t)snprintf(body + n, sizeof body - n, "%s", id);
			p++;
		} else {
			body[n++] = *p;
		}
	}
	body[n] = '\0';
	int st = 0;
	json_object *r = send_req(srv, body, &w, &st, NULL);
	cr_assert_eq(st, 200, "%s", body);
	return r;
}

/* Handshakes with ext (JSON text or NULL); fills id, returns the reply. */
static json_object *handshake_ext(const char *ext, char *id)
{
	char body[4096];
	snprintf(body, sizeof body,
	         "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
	         "\"supportedConnectionTypes\":[\"long-polling\"]%s%s}]",
	         ext ? ",\"ext\":" : "", ext ? ext : "");
	json_object *r = send_req(srv, body, &w, NULL, NULL);
	cr_assert_not_null(r);
	if (id)
		snprintf(id, BX_ID_LEN + 1, "%.22s", field(r, 0, "clientId"));
	return r;
}

static void handshake_token(const char *token, char *id)
{
	char ext[2048];
	snprintf(ext, sizeof ext, "{\"auth\":{\"token\":\"%s\"}}", token);
	json_object *r = handshake_ext(ext, id);
	cr_assert(successful(r, 0), "handshake with a valid token: %s", field(r, 0, "error"));
	json_object_put(r);
}

static const char *subscribe_error(const char *id, const char *pattern)
{
	static char err[128];
	char fmt[512];
	snprintf(fmt, sizeof fmt,
	         "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%%s\",\"subscription\":\"%s\"}]",
	         pattern);
	json_object *r = as(id, fmt);
	snprintf(err, sizeof err, "%s", successful(r, 0) ? "" : field(r, 0, "error"));
	json_object_put(r);
	return err;
}

static const char *publish_error(const char *id, const char *channel)
{
	static char err[128];
	char fmt[512];
	snprintf(fmt, sizeof fmt, "[{\"channel\":\"%s\",\"clientId\":\"%%s\",\"data\":1}]",
	         channel);
	json_object *r = as(id, fmt);
	snprintf(err, sizeof err, "%s", successful(r, 0) ? "" : field(r, 0, "error"));
	json_object_put(r);
	return err;
}

#define DENIED_SUB "403:denied_by_security_policy:subscribe_denied"
#define DENIED_PUB "403:denied_by_security_policy:publish_denied"

Test(auth, handshake_without_a_valid_token_is_denied_with_reconnect_none)
{
	start(true, NULL);
	int64_t now = (int64_t)time(NULL);
	char *expired = mint("alice", now - 1);
	char *good = mint("alice", now + 60);
	char forged[2048];
	snprintf(forged, sizeof forged, "%s", good);
	forged[strlen(forged) - 2] ^= 1;
	char e1[2200], e2[2200];
	snprintf(e1, sizeof e1, "{\"auth\":{\"token\":\"%s\"}}", expired);
	snprintf(e2, sizeof e2, "{\"auth\":{\"token\":\"%s\"}}", forged);
	const char *exts[] = {NULL,
	                      "{}",
	                      "{\"auth\":null}",
	                      "{\"auth\":{}}",
	                      "{\"auth\":\"x\"}",
	                      "{\"auth\":{\"token\":5}}",
	                      e1,
	                      e2};
	for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
		json_object *r = handshake_ext(exts[i], NULL);
		cr_expect_not(successful(r, 0), "ext %zu", i);
		cr_expect_str_eq(field(r, 0, "error"), "403::handshake_denied", "ext %zu", i);
		cr_expect_str_eq(field(r, 0, "advice"), "{ \"reconnect\": \"none\" }", "ext %zu",
		                 i);
		json_object_put(r);
	}
	cr_expect_eq(bx_session_count(srv), 0);
	free(expired);
	free(good);
}

Test(auth, a_session_subscribes_and_publishes_only_within_its_grants)
{
	start(true, NULL);
	char *t = mint("alice", (int64_t)time(NULL) + 60);
	char id[BX_ID_LEN + 1];
	handshake_token(t, id);
	cr_expect_str_eq(subscribe_error(id, "/chat/room"), "");
	cr_expect_str_eq(subscribe_error(id, "/chat/*"), "");
	cr_expect_str_eq(subscribe_error(id, "/chat/**"), "");
	cr_expect_str_eq(subscribe_error(id, "/news/today"), "");
	const char *denied[] = {"/**",      "/*",      "/chat",      "/news/**",     "/news/a/b",
	                        "/chat2/x", "/secret", "/secret/**", "/service/echo"};
	for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++)
		cr_expect_str_eq(subscribe_error(id, denied[i]), DENIED_SUB, "%s", denied[i]);
	/* One denied pattern in an array refuses the whole subscription. */
	json_object *r = as(id, "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
	                        "\"subscription\":[\"/chat/x\",\"/**\"]}]");
	cr_expect_str_eq(field(r, 0, "error"), DENIED_SUB);
	json_object_put(r);

	cr_expect_str_eq(publish_error(id, "/chat/room"), "");
	cr_expect_str_eq(publish_error(id, "/chat/a/b"), "");
	cr_expect_str_eq(publish_error(id, "/news/today"), DENIED_PUB);
	cr_expect_str_eq(publish_error(id, "/chat"), DENIED_PUB);
	cr_expect_str_eq(publish_error(id, "/service/other"), DENIED_PUB);
	cr_expect_str_eq(publish_error(id, "/service/echo"), "");
	free(t);
}

Test(auth, a_forged_client_id_gets_nothing_and_meta_names_are_exact)
{
	start(true, NULL);
	char *t = mint("alice", (int64_t)time(NULL) + 60);
	char id[BX_ID_LEN + 1];
	handshake_token(t, id);
	char forged[BX_ID_LEN + 1];
	memcpy(forged, id, sizeof forged);
	forged[0] = forged[0] == 'a' ? 'b' : 'a';
	cr_expect_str_eq(subscribe_error(forged, "/chat/x"), "402::session_unknown");
	cr_expect_str_eq(publish_error(forged, "/chat/x"), "402::session_unknown");
	/* Faye's 2020 bypass: a meta-looking channel must not be handled as
	 * the meta verb, nor escape the policy. */
	const char *meta[] = {"/meta/subscribe/x", "/meta/subscribe/", "/meta/subscribe/..",
	                      "/meta/handshake/x", "/meta/Subscribe",  "/meta/*",
	                      "/meta/**"};
	for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++) {
		char fmt[512];
		snprintf(fmt, sizeof fmt,
		         "[{\"channel\":\"%s\",\"clientId\":\"%%s\",\"subscription\":\"/secret\","
		         "\"data\":1}]",
		         meta[i]);
		json_object *r = as(id, fmt);
		cr_expect_not(successful(r, 0), "%s", meta[i]);
		json_object_put(r);
	}
	/* Without a clientId at all, a handshake-less subscribe gets nothing. */
	json_object *r = as(id, "[{\"channel\":\"/meta/subscribe\",\"subscription\":\"/chat/x\"}]");
	cr_expect_str_eq(field(r, 0, "error"), "402::session_unknown");
	json_object_put(r);
	free(t);
}

Test(auth, ext_auth_never_reaches_subscribers)
{
	start(true, NULL);
	char *t = mint("alice", (int64_t)time(NULL) + 60);
	char id[BX_ID_LEN + 1];
	handshake_token(t, id);
	cr_assert_str_eq(subscribe_error(id, "/chat/x"), "");
	/* A listener-free server forwards no ext; an extension that did would
	 * still not see auth: it is removed before any hook. */
	json_object *r = as(id, "[{\"channel\":\"/chat/x\",\"clientId\":\"%s\",\"data\":1,"
	                        "\"ext\":{\"auth\":{\"token\":\"SECRET-TOKEN\"},\"keep\":1}}]");
	cr_expect(successful(r, 0));
	json_object_put(r);
	r = as(id, "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
	           "\"connectionType\":\"long-polling\",\"advice\":{\"timeout\":0}}]");
	const char *text = json_object_to_json_string(r);
	cr_expect_null(strstr(text, "SECRET-TOKEN"), "%s", text);
	cr_expect_null(strstr(text, t), "%s", text);
	json_object_put(r);
	free(t);
}

/*---- ACL -------------------------------------------------------------------------*/

static const char *RULES = "# test rules\n"
                           "allow anyone      subscribe /public/**\n"
                           "allow anonymous   publish   /public/chat\n"
                           "allow authenticated subscribe /chat/**   # members\n"
                           "allow authenticated publish /chat/**\n"
                           "deny  anyone      subscribe /chat/admin/**\n"
                           "deny  anyone      publish   /chat/readonly\n"
                           "allow user:alice  subscribe /chat/admin/** /ops/*\n"
                           "allow anyone      service   /service/echo\n"
                           "allow user:alice  service   /service/**\n";

Test(auth, acl_for_anonymous_clients)
{
	start(false, RULES);
	json_object *r = handshake_ext(NULL, NULL);
	cr_assert(successful(r, 0), "no --auth: anonymous handshakes pass");
	char id[BX_ID_LEN + 1];
	snprintf(id, sizeof id, "%.22s", field(r, 0, "clientId"));
	json_object_put(r);
	cr_expect_str_eq(subscribe_error(id, "/public/x"), "");
	cr_expect_str_eq(subscribe_error(id, "/public/**"), "");
	cr_expect_str_eq(subscribe_error(id, "/chat/x"), DENIED_SUB);
	cr_expect_str_eq(subscribe_error(id, "/**"), DENIED_SUB);
	cr_expect_str_eq(subscribe_error(id, "/*"), DENIED_SUB);
	cr_expect_str_eq(publish_error(id, "/public/chat"), "");
	cr_expect_str_eq(publish_error(id, "/public/other"), DENIED_PUB);
	cr_expect_str_eq(publish_error(id, "/service/echo"), "");
	cr_expect_str_eq(publish_error(id, "/service/admin"), DENIED_PUB);
}

Test(auth, acl_with_subjects_and_deny_rules_against_every_wildcard_form)
{
	start(true, RULES);
	int64_t exp = (int64_t)time(NULL) + 60;
	const char *all[] = {"/**"};
	char *bob = bx_token_mint(KEY, KEYLEN, "bob", exp, all, 1, all, 1);
	char *alice = bx_token_mint(KEY, KEYLEN, "alice", exp, all, 1, all, 1);
	char b[BX_ID_LEN + 1], a[BX_ID_LEN + 1];
	handshake_token(bob, b);
	handshake_token(alice, a);
	cr_expect_str_eq(subscribe_error(b, "/chat/room"), "");
	cr_expect_str_eq(subscribe_error(b, "/chat/*"), "");
	/* Each of these could reach /chat/admin/...: denied for bob. */
	const char *reach[] = {"/chat/admin/x", "/chat/admin/*", "/chat/admin/**", "/chat/**",
	                       "/**"};
	for (size_t i = 0; i < sizeof reach / sizeof reach[0]; i++)
		cr_expect_str_eq(subscribe_error(b, reach[i]), DENIED_SUB, "bob: %s", reach[i]);
	/* /chat/admin itself is no channel of /chat/admin/**: /chat/** allows it. */
	cr_expect_str_eq(subscribe_error(b, "/chat/admin"), "");
	/* The deny holds for alice too (deny rules win), except that /chat/admin
	 * itself is no channel of /chat/admin/**. */
	cr_expect_str_eq(subscribe_error(a, "/chat/admin/x"), DENIED_SUB);
	cr_expect_str_eq(subscribe_error(a, "/ops/x"), "");
	cr_expect_str_eq(subscribe_error(b, "/ops/x"), DENIED_SUB);
	cr_expect_str_eq(publish_error(b, "/chat/readonly"), DENIED_PUB);
	cr_expect_str_eq(publish_error(b, "/chat/room"), "");
	cr_expect_str_eq(publish_error(b, "/public/chat"), DENIED_PUB, "anonymous only");
	cr_expect_str_eq(publish_error(a, "/service/admin"), "");
	cr_expect_str_eq(publish_error(b, "/service/admin"), DENIED_PUB);
	free(bob);
	free(alice);
}

Test(auth, acl_files_with_mistakes_are_refused_with_the_line)
{
	const char *bad[] = {"allow anyone subscribe\n",          "permit anyone subscribe /a\n",
	                     "allow someone subscribe /a\n",      "allow anyone read /a\n",
	                     "allow anyone subscribe /meta/**\n", "allow anyone subscribe /a/*/b\n",
	                     "allow anyone publish /service/x\n", "allow anyone service /chat/x\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char path[64];
		snprintf(path, sizeof path, "/tmp/bx-test-acl-XXXXXX");
		int fd = mkstemp(path);
		cr_assert(fd >= 0);
		cr_assert(write(fd, "# ok\n", 5) == 5);
		cr_assert(write(fd, bad[i], strlen(bad[i])) == (ssize_t)strlen(bad[i]));
		close(fd);
		char err[256] = "";
		bx_acl *acl = bx_acl_load(path, err, sizeof err);
		cr_expect_null(acl, "%s", bad[i]);
		cr_expect_not_null(strstr(err, ":2: "), "names line 2: %s", err);
		bx_acl_free(acl);
		unlink(path);
	}
	srv = NULL;
	sec = NULL;
	secret_path[0] = '\0';
	acl_path[0] = '\0';
}
