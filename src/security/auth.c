/*
 * auth.c — the HMAC authentication extension (--auth hmac) and the policy
 * that joins it with the ACL (acl.c). docs/SECURITY.md documents the token.
 *
 * A client sends, in its handshake:
 *     "ext": {"auth": {"token": "<payload>.<mac>"}}
 * payload = base64url(JSON {"sub":"alice","exp":1767225600,
 *                           "subscribe":["/chat/**"],"publish":["/chat/**"]})
 * mac     = base64url(HMAC-SHA256(secret, "bayeux-token-v1." + payload))
 * A missing, malformed, forged or expired token → 403::handshake_denied
 * with advice {reconnect:"none"}. The session may then subscribe only to
 * patterns that one of its subscribe patterns covers (every channel the
 * subscription could match is granted), and publish only on channels one
 * of its publish patterns matches.
 *
 * The grants are tied to the session through the public hooks: the policy
 * verifies the token of a handshake and leaves the grants in a slot of the
 * calling thread; the session listener, which runs next on the same thread when the
 * handshake creates the session, moves them to the session's entry. Every
 * session is created by a handshake, and every handshake clears the slot
 * first, so a slot can never reach another handshake's session.
 *
 * Tokens are secrets: ext.auth is removed from every message other than the
 * handshake by an incoming extension (so no listener or extension sees it),
 * and neither the token nor its payload is ever logged.
 */
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/channel.h"
#include "core/log.h"
#include "core/swap.h"
#include "security.h"

static const char token_domain[] = "bayeux-token-v1.";

/*---- Patterns ------------------------------------------------------------------*/

typedef struct segs {
	const char *s[BX_CHANNEL_MAX_DEPTH];
	size_t n[BX_CHANNEL_MAX_DEPTH];
	size_t count; /* segments before the wildcard */
	int wild;     /* 0, 1 (*) or 2 (**) */
} segs;

static bool split(const char *p, segs *out)
{
	unsigned flags;
	size_t len = strlen(p);
	if (!bx_channel_check(p, len, &flags))
		return false;
	out->count = bx_channel_split(p, len, out->s, out->n);
	out->wild = (flags & BX_CH_WILD_ANY) ? 2 : (flags & BX_CH_WILD_ONE) ? 1 : 0;
	if (out->wild)
		out->count--;
	return true;
}

static bool seg_eq(const segs *a, size_t i, const segs *b, size_t k)
{
	return a->n[i] == b->n[k] && memcmp(a->s[i], b->s[k], a->n[i]) == 0;
}

bool bx_pattern_covers(const char *grant, const char *pattern)
{
	segs g, p;
	if (!split(grant, &g) || !split(pattern, &p))
		return false;
	/* The pattern's literal segments, then its wildcard counted as one
	 * more segment of unknown content. */
	size_t plen = p.count + (p.wild ? 1 : 0);
	switch (g.wild) {
	case 0: /* one channel: only itself */
		if (p.wild || p.count != g.count)
			return false;
		break;
	case 1: /* prefix + exactly one segment */
		if (p.wild == 2 || plen != g.count + 1)
			return false;
		break;
	default: /* prefix + one or more segments */
		if (plen < g.count + 1)
			return false;
	}
	for (size_t i = 0; i < g.count; i++)
		if (i >= p.count || !seg_eq(&g, i, &p, i))
			return false;
	return true;
}

bool bx_pattern_overlaps(const char *a, const char *b)
{
	segs x, y;
	if (!split(a, &x) || !split(b, &y))
		return false;
	/* Common literal prefix must agree. */
	size_t common = x.count < y.count ? x.count : y.count;
	for (size_t i = 0; i < common; i++)
		if (!seg_eq(&x, i, &y, i))
			return false;
	/* Lengths (in segments) each can match: [min, max]. */
	size_t xmin = x.count + (x.wild ? 1 : 0), xmax = x.wild == 2 ? SIZE_MAX : xmin;
	size_t ymin = y.count + (y.wild ? 1 : 0), ymax = y.wild == 2 ? SIZE_MAX : ymin;
	size_t lo = xmin > ymin ? xmin : ymin, hi = xmax < ymax ? xmax : ymax;
	if (lo > hi)
		return false;
	/* A literal segment of one must fall where the other has a literal
	 * (checked above) or a wildcard: always fine. */
	return true;
}

/*---- Tokens --------------------------------------------------------------------*/

static void mac_of(const unsigned char *key, size_t keylen, const char *payload, size_t plen,
                   unsigned char out[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)token_domain,
	                              sizeof token_domain - 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)payload, plen);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

static json_object *pattern_array(const char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; a && i < n; i++) {
		unsigned flags;
		if (!bx_channel_check(v[i], strlen(v[i]), &flags) || (flags & BX_CH_META)) {
			json_object_put(a);
			return NULL;
		}
		json_object_array_add(a, json_object_new_string(v[i]));
	}
	return a;
}

char *bx_token_mint(const unsigned char *key, size_t keylen, const char *sub, int64_t exp,
                    const char *const *subscribe, size_t nsubscribe, const char *const *publish,
                    size_t npublish)
{
	if (!sub || nsubscribe > BX_AUTH_PATTERNS_MAX || npublish > BX_AUTH_PATTERNS_MAX)
		return NULL;
	json_object *o = json_object_new_object();
	json_object *sa = pattern_array(subscribe, nsubscribe);
	json_object *pa = pattern_array(publish, npublish);
	if (!o || !sa || !pa) {
		json_object_put(o);
		json_object_put(sa);
		json_object_put(pa);
		return NULL;
	}
	json_object_object_add(o, "sub", json_object_new_string(sub));
	json_object_object_add(o, "exp", json_object_new_int64(exp));
	json_object_object_add(o, "subscribe", sa);
	json_object_object_add(o, "publish", pa);
	size_t jlen = 0;
	const char *json = json_object_to_json_string_length(
	        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &jlen);
	size_t plen = sodium_base64_ENCODED_LEN(jlen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	size_t mlen = sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES,
	                                        sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *out = malloc(plen + mlen + 1);
	if (out) {
		sodium_bin2base64(out, plen, (const unsigned char *)json, jlen,
		                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		size_t p = strlen(out);
		unsigned char mac[crypto_auth_hmacsha256_BYTES];
		mac_of(key, keylen, out, p, mac);
		out[p] = '.';
		sodium_bin2base64(out + p + 1, mlen, mac, sizeof mac,
		                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	}
	json_object_put(o);
	return out;
}

void bx_grant_free(bx_grant *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nsubscribe; i++)
		free(g->subscribe[i]);
	for (size_t i = 0; i < g->npublish; i++)
		free(g->publish[i]);
	free(g->subscribe);
	free(g->publish);
	free(g->sub);
	free(g);
}

/* Copies a JSON array of valid, non-meta patterns; false when malformed. */
static bool read_patterns(json_object *o, const char *key, char ***v, size_t *n)
{
	json_object *a;
	*v = NULL;
	*n = 0;
	if (!json_object_object_get_ex(o, key, &a))
		return true; /* none granted */
	if (!json_object_is_type(a, json_type_array) ||
	    json_object_array_length(a) > BX_AUTH_PATTERNS_MAX)
		return false;
	size_t len = json_object_array_length(a);
	*v = calloc(len ? len : 1, sizeof **v);
	if (!*v)
		return false;
	for (size_t i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(a, i);
		unsigned flags;
		if (!json_object_is_type(e, json_type_string) ||
		    !bx_channel_check(json_object_get_string(e),
		                      (size_t)json_object_get_string_len(e), &flags) ||
		    (flags & BX_CH_META) ||
		    strlen(json_object_get_string(e)) != (size_t)json_object_get_string_len(e))
			return false;
		if (!((*v)[i] = strdup(json_object_get_string(e))))
			return false;
		(*n)++;
	}
	return true;
}

bx_grant *bx_token_verify(const unsigned char *key, size_t keylen, const char *token, size_t len,
                          int64_t now)
{
	if (!token || len == 0 || len > BX_AUTH_TOKEN_MAX)
		return NULL;
	const char *dot = memchr(token, '.', len);
	if (!dot)
		return NULL;
	size_t plen = (size_t)(dot - token);
	unsigned char mac[crypto_auth_hmacsha256_BYTES], want[crypto_auth_hmacsha256_BYTES];
	size_t maclen = 0;
	const char *end = NULL;
	if (sodium_base642bin(mac, sizeof mac, dot + 1, len - plen - 1, NULL, &maclen, &end,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    maclen != sizeof mac || end != token + len)
		return NULL;
	mac_of(key, keylen, token, plen, want);
	if (sodium_memcmp(mac, want, sizeof mac) != 0)
		return NULL;

	/* Authentic: now decode and check what it says. */
	unsigned char *json = malloc(plen + 1);
	size_t jlen = 0;
	if (!json)
		return NULL;
	if (sodium_base642bin(json, plen, token, plen, NULL, &jlen, &end,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    end != dot) {
		free(json);
		return NULL;
	}
	json[jlen] = '\0';
	json_object *o = json_tokener_parse((const char *)json);
	free(json);
	bx_grant *g = calloc(1, sizeof *g);
	json_object *sub, *exp;
	bool ok = g && o && json_object_is_type(o, json_type_object) &&
	          json_object_object_get_ex(o, "sub", &sub) &&
	          json_object_is_type(sub, json_type_string) &&
	          json_object_object_get_ex(o, "exp", &exp) &&
	          json_object_is_type(exp, json_type_int) && json_object_get_int64(exp) > now;
	if (ok) {
		g->exp = json_object_get_int64(exp);
		ok = (g->sub = strdup(json_object_get_string(sub))) != NULL &&
		     read_patterns(o, "subscribe", &g->subscribe, &g->nsubscribe) &&
		     read_patterns(o, "publish", &g->publish, &g->npublish);
	}
	json_object_put(o);
	if (!ok) {
		bx_grant_free(g);
		return NULL;
	}
	return g;
}

/*---- Secret files ----------------------------------------------------------------*/

int bx_read_secret_file(const char *flag, const char *path, unsigned char *buf, size_t cap,
                        size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot read %s '%s': %s", flag, path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		bx_warn("%s '%s' is readable by other users; chmod 600 it", flag, path);
	size_t n = fread(buf, 1, cap, f);
	bool more = fgetc(f) != EOF;
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
	             buf[n - 1] == '\t'))
		n--;
	if (more || n < BX_AUTH_SECRET_MIN) {
		sodium_memzero(buf, cap);
		snprintf(err, errlen,
		         "%s '%s' must hold %d to %d bytes of secret, got %s%zu; make one with: "
		         "head -c 48 /dev/urandom | base64 > FILE",
		         flag, path, BX_AUTH_SECRET_MIN, (int)cap, more ? "more than " : "",
		         more ? cap : n);
		return -1;
	}
	*len = n;
	return 0;
}

/*---- The policy -------------------------------------------------------------------*/

typedef struct grant_ent {
	struct grant_ent *next;
	const bx_session *session;
	bx_grant *grant;
} grant_ent;

/* The grants of the handshake a thread is handling (see the top): one
 * entry per thread, kept in a list (not thread-local storage) so that what
 * a failed handshake leaves is freed with the policy, not leaked. */
typedef struct pending_ent {
	struct pending_ent *next;
	pthread_t thread;
	bx_grant *grant;
} pending_ent;

#define GRANT_BUCKETS 4096

/* The HMAC key; replaced whole on reload. */
typedef struct sec_key {
	size_t len;
	unsigned char key[BX_AUTH_SECRET_MAX];
} sec_key;

struct bx_security {
	bool auth;
	/* Both replaced while the server runs (bx_security_set_key/_acl) under
	 * readers that never wait: a handshake, subscribe or publish reads them
	 * between bx_swap_enter() and bx_swap_leave(), never locking. */
	bx_swap key;          /* sec_key *, or NULL without --auth */
	bx_swap acl;          /* bx_acl *, or NULL without --acl */
	pthread_mutex_t lock; /* guards the grant table and `pending` */
	grant_ent *grants[GRANT_BUCKETS];
	pending_ent *pending;
};

/* Replaces this thread's pending grants with g (NULL: clears); returns the
 * previous ones, which the caller frees. */
static bx_grant *pending_swap(bx_security *sec, bx_grant *g)
{
	pthread_t self = pthread_self();
	bx_grant *old = NULL;
	pthread_mutex_lock(&sec->lock);
	pending_ent **pp = &sec->pending;
	while (*pp && !pthread_equal((*pp)->thread, self))
		pp = &(*pp)->next;
	if (*pp) {
		old = (*pp)->grant;
		(*pp)->grant = g;
	} else if (g) {
		pending_ent *e = malloc(sizeof *e);
		if (e) {
			e->thread = self;
			e->grant = g;
			e->next = sec->pending;
			sec->pending = e;
		} else {
			old = g; /* cannot keep it: the session gets no grants */
		}
	}
	pthread_mutex_unlock(&sec->lock);
	return old;
}

static size_t ptr_hash(const void *p)
{
	uintptr_t x = (uintptr_t)p;
	x ^= x >> 17;
	x *= 0xed5ad4bbU;
	x ^= x >> 11;
	return (size_t)x & (GRANT_BUCKETS - 1);
}

/* The session's grants (borrowed; valid while the session lives), or NULL. */
static const bx_grant *grant_of(bx_security *sec, const bx_session *s)
{
	const bx_grant *g = NULL;
	pthread_mutex_lock(&sec->lock);
	for (grant_ent *e = sec->grants[ptr_hash(s)]; e; e = e->next)
		if (e->session == s) {
			g = e->grant;
			break;
		}
	pthread_mutex_unlock(&sec->lock);
	return g;
}

static void on_session(void *arg, bx_session *s, bool added)
{
	bx_security *sec = arg;
	if (added) {
		bx_grant *g = pending_swap(sec, NULL);
		if (!g)
			return;
		grant_ent *e = malloc(sizeof *e);
		if (!e) {
			bx_grant_free(g); /* the session then may do nothing */
			return;
		}
		e->session = s;
		e->grant = g;
		pthread_mutex_lock(&sec->lock);
		e->next = sec->grants[ptr_hash(s)];
		sec->grants[ptr_hash(s)] = e;
		pthread_mutex_unlock(&sec->lock);
		return;
	}
	pthread_mutex_lock(&sec->lock);
	for (grant_ent **pp = &sec->grants[ptr_hash(s)]; *pp; pp = &(*pp)->next)
		if ((*pp)->session == s) {
			grant_ent *e = *pp;
			*pp = e->next;
			bx_grant_free(e->grant);
			free(e);
			break;
		}
	pthread_mutex_unlock(&sec->lock);
}

/* Verifies the handshake's ext.auth.token; the grants, or NULL. */
static bx_grant *handshake_grant(bx_security *sec, const bx_message *m)
{
	size_t elen = 0;
	const char *ext = bx_message_ext(m, &elen);
	if (!ext)
		return NULL;
	json_object *o = json_tokener_parse(ext), *auth, *tok;
	bx_grant *g = NULL;
	if (o && json_object_object_get_ex(o, "auth", &auth) &&
	    json_object_object_get_ex(auth, "token", &tok) &&
	    json_object_is_type(tok, json_type_string)) {
		unsigned ticket;
		const sec_key *k = bx_swap_enter(&sec->key, &ticket);
		if (k)
			g = bx_token_verify(k->key, k->len, json_object_get_string(tok),
			                    (size_t)json_object_get_string_len(tok),
			                    (int64_t)time(NULL));
		bx_swap_leave(&sec->key, ticket);
	}
	json_object_put(o);
	return g;
}

/* True when one of the patterns covers channel (a subscription pattern, or
 * a publish's channel name: a name is covered when it is matched). */
static bool any_covers(char *const *v, size_t n, const char *channel)
{
	for (size_t i = 0; i < n; i++)
		if (bx_pattern_covers(v[i], channel))
			return true;
	return false;
}

static bool policy(void *arg, enum bx_policy_op op, bx_session *s, const char *channel,
                   const bx_message *m)
{
	bx_security *sec = arg;
	if (op == BX_POLICY_HANDSHAKE) {
		bx_grant_free(pending_swap(sec, NULL));
		if (!sec->auth)
			return true;
		bx_grant *g = handshake_grant(sec, m);
		if (!g) {
			bx_info("handshake denied: missing, malformed, forged or expired auth "
			        "token");
			return false;
		}
		bx_grant_free(pending_swap(sec, g));
		return true;
	}
	if (!s)
		return true; /* a backend's publish, authorized by its publish token */
	const bx_grant *g = grant_of(sec, s);
	if (sec->auth) {
		if (!g || g->exp <= (int64_t)time(NULL))
			return false;
		bool sub = op == BX_POLICY_SUBSCRIBE;
		if (!(sub ? any_covers(g->subscribe, g->nsubscribe, channel)
		          : any_covers(g->publish, g->npublish, channel)))
			return false;
	}
	if (!bx_swap_peek(&sec->acl))
		return true;
	unsigned ticket;
	const bx_acl *acl = bx_swap_enter(&sec->acl, &ticket);
	bool ok =
	        !acl || bx_acl_allows(acl, g ? g->sub : NULL,
	                              op == BX_POLICY_SUBSCRIBE ? BX_ACL_SUBSCRIBE : BX_ACL_PUBLISH,
	                              channel);
	bx_swap_leave(&sec->acl, ticket);
	return ok;
}

/* Removes ext.auth from every message but the handshake: tokens go no
 * further than the policy. */
static const char *strip_auth(void *arg, bx_message *m)
{
	(void)arg;
	if (strcmp(bx_message_channel(m), "/meta/handshake") == 0)
		return NULL;
	size_t len = 0;
	const char *ext = bx_message_ext(m, &len);
	if (!ext || !memmem(ext, len, "\"auth\"", 6))
		return NULL;
	json_object *o = json_tokener_parse(ext);
	if (o && json_object_is_type(o, json_type_object)) {
		json_object_object_del(o, "auth");
		size_t n = 0;
		const char *t = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);
		if (bx_message_set_ext(m, t, n) != 0) {
			json_object_put(o);
			return "500::out_of_memory";
		}
	}
	json_object_put(o);
	return NULL;
}

int bx_security_install(bx_server *srv, const bx_security_opts *o, bx_security **out, char *err,
                        size_t errlen)
{
	*out = NULL;
	if (o->auth && strcmp(o->auth, "hmac") != 0) {
		snprintf(err, errlen, "--auth must be 'hmac', got '%s'", o->auth);
		return -BX_EINVAL;
	}
	if (o->auth && !o->auth_secret_file) {
		snprintf(err, errlen, "--auth hmac needs --auth-secret-file FILE");
		return -BX_EINVAL;
	}
	if (!o->auth && o->auth_secret_file) {
		snprintf(err, errlen, "--auth-secret-file needs --auth hmac");
		return -BX_EINVAL;
	}
	if (!o->auth && !o->acl_file)
		return 0;
	bx_security *sec = calloc(1, sizeof *sec);
	if (!sec)
		return -BX_ENOMEM;
	pthread_mutex_init(&sec->lock, NULL);
	bx_swap_init(&sec->key, NULL);
	bx_swap_init(&sec->acl, NULL);
	if (o->auth) {
		sec->auth = true;
		sec_key *k = malloc(sizeof *k);
		if (!k || bx_read_secret_file("--auth-secret-file", o->auth_secret_file, k->key,
		                              sizeof k->key, &k->len, err, errlen) != 0) {
			if (!k)
				snprintf(err, errlen, "out of memory");
			free(k);
			bx_security_free(sec);
			return -BX_EINVAL;
		}
		bx_swap_replace(&sec->key, k);
	}
	if (o->acl_file) {
		bx_acl *acl = bx_acl_load(o->acl_file, err, errlen);
		if (!acl) {
			bx_security_free(sec);
			return -BX_EINVAL;
		}
		bx_swap_replace(&sec->acl, acl);
	}
	int rc = bx_server_set_policy(srv, policy, sec);
	if (rc == 0)
		rc = bx_server_add_session_listener(srv, on_session, sec);
	if (rc == 0)
		rc = bx_server_add_extension(srv, strip_auth, NULL, sec);
	if (rc != 0) {
		snprintf(err, errlen, "cannot install the security policy: %s", bx_strerror(rc));
		bx_security_free(sec);
		return rc;
	}
	*out = sec;
	return 0;
}

static void free_key(sec_key *k)
{
	if (k) {
		sodium_memzero(k, sizeof *k);
		free(k);
	}
}

int bx_security_set_key(bx_security *sec, const unsigned char *key, size_t len)
{
	if (!sec || !sec->auth)
		return -BX_ESTATE;
	if (len < BX_AUTH_SECRET_MIN || len > BX_AUTH_SECRET_MAX)
		return -BX_EINVAL;
	sec_key *k = malloc(sizeof *k);
	if (!k)
		return -BX_ENOMEM;
	memcpy(k->key, key, len);
	k->len = len;
	free_key(bx_swap_replace(&sec->key, k));
	return 0;
}

int bx_security_set_acl(bx_security *sec, bx_acl *acl)
{
	if (!sec || !bx_swap_peek(&sec->acl) || !acl)
		return -BX_ESTATE;
	bx_acl_free(bx_swap_replace(&sec->acl, acl));
	return 0;
}

bool bx_security_has_acl(bx_security *sec)
{
	return sec && bx_swap_peek(&sec->acl) != NULL;
}

bool bx_security_has_auth(const bx_security *sec)
{
	return sec && sec->auth;
}

void bx_security_free(bx_security *sec)
{
	if (!sec)
		return;
	for (size_t i = 0; i < GRANT_BUCKETS; i++) {
		grant_ent *e = sec->grants[i];
		while (e) {
			grant_ent *n = e->next;
			bx_grant_free(e->grant);
			free(e);
			e = n;
		}
	}
	while (sec->pending) {
		pending_ent *n = sec->pending->next;
		bx_grant_free(sec->pending->grant);
		free(sec->pending);
		sec->pending = n;
	}
	bx_acl_free(bx_swap_destroy(&sec->acl));
	free_key(bx_swap_destroy(&sec->key));
	pthread_mutex_destroy(&sec->lock);
	free(sec);
}

void bx_security_usage(FILE *f)
{
	fprintf(f, "  --auth hmac          require a signed token in the handshake's ext.auth\n"
	           "                       (docs/SECURITY.md); mint them with 'bayeuxd token'\n"
	           "  --auth-secret-file FILE\n"
	           "                       the HMAC-SHA256 key of --auth hmac (32 to 4096 bytes;\n"
	           "                       keep FILE mode 0600)\n"
	           "  --acl FILE           who may subscribe, publish and use /service channels\n"
	           "                       (rules: docs/SECURITY.md, \"ACL\")\n");
}

/*---- bayeuxd token ----------------------------------------------------------------*/

int bx_token_command(int argc, char **argv)
{
	const char *secret = NULL, *sub = NULL;
	const char *subs[BX_AUTH_PATTERNS_MAX], *pubs[BX_AUTH_PATTERNS_MAX];
	size_t nsubs = 0, npubs = 0;
	long long ttl = 3600;
	for (int i = 1; i < argc; i += 2) { /* FLAG VALUE pairs */
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0) {
			printf("Usage: bayeuxd token --secret-file FILE --sub SUBJECT\n"
			       "                     [--subscribe PATTERN]... [--publish "
			       "PATTERN]...\n"
			       "                     [--ttl SECONDS]\n"
			       "Prints a token for the handshake's ext.auth.token (--auth hmac).\n"
			       "PATTERN is a channel or a wildcard (/chat/*, /chat/**); "
			       "/service/...\n"
			       "patterns grant services. --ttl defaults to 3600.\n");
			return 0;
		}
		if (!v) {
			fprintf(stderr, "bayeuxd token: %s needs a value (see --help)\n", a);
			return 2;
		}
		if (strcmp(a, "--secret-file") == 0)
			secret = v;
		else if (strcmp(a, "--sub") == 0)
			sub = v;
		else if (strcmp(a, "--subscribe") == 0 && nsubs < BX_AUTH_PATTERNS_MAX)
			subs[nsubs++] = v;
		else if (strcmp(a, "--publish") == 0 && npubs < BX_AUTH_PATTERNS_MAX)
			pubs[npubs++] = v;
		else if (strcmp(a, "--ttl") == 0) {
			char *end;
			ttl = strtoll(v, &end, 10);
			if (*end || ttl < 1 || ttl > 366LL * 86400) {
				fprintf(stderr,
				        "bayeuxd token: --ttl must be 1 to 31622400 seconds\n");
				return 2;
			}
		} else {
			fprintf(stderr, "bayeuxd token: unknown or repeated too often: %s\n", a);
			return 2;
		}
	}
	if (!secret || !sub) {
		fprintf(stderr,
		        "bayeuxd token: --secret-file and --sub are required (see --help)\n");
		return 2;
	}
	for (size_t i = 0; i < nsubs + npubs; i++) {
		const char *p = i < nsubs ? subs[i] : pubs[i - nsubs];
		unsigned flags;
		if (!bx_channel_check(p, strlen(p), &flags) || (flags & BX_CH_META)) {
			fprintf(stderr,
			        "bayeuxd token: '%s' is not a channel or wildcard pattern outside "
			        "/meta (e.g. /chat/**)\n",
			        p);
			return 2;
		}
	}
	if (sodium_init() < 0)
		return 1;
	static unsigned char key[BX_AUTH_SECRET_MAX];
	size_t keylen = 0;
	char err[512];
	if (bx_read_secret_file("--secret-file", secret, key, sizeof key, &keylen, err,
	                        sizeof err) != 0) {
		fprintf(stderr, "bayeuxd token: %s\n", err);
		return 1;
	}
	char *t = bx_token_mint(key, keylen, sub, (int64_t)time(NULL) + ttl, subs, nsubs, pubs,
	                        npubs);
	sodium_memzero(key, sizeof key);
	if (!t) {
		fprintf(stderr, "bayeuxd token: out of memory\n");
		return 1;
	}
	printf("%s\n", t);
	free(t);
	return 0;
}
