/*
 * security.h — the daemon's security policy (docs/SECURITY.md): the HMAC
 * authentication extension (auth.c) and the channel ACL (acl.c), installed
 * on a server through the public hooks of bayeux.h (the policy, a session
 * listener and an incoming extension), like any embedding program would.
 */
#ifndef BX_SECURITY_H
#define BX_SECURITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bayeux.h"

/* Shortest and longest --auth-secret-file content (bytes, after trailing
 * white space is dropped), and the longest token accepted. */
#define BX_AUTH_SECRET_MIN 32
#define BX_AUTH_SECRET_MAX 4096
#define BX_AUTH_TOKEN_MAX  8192
/* Most channel patterns in one token or one ACL rule. */
#define BX_AUTH_PATTERNS_MAX 64

typedef struct bx_security_opts {
	const char *auth;             /* NULL (off) or "hmac" */
	const char *auth_secret_file; /* the HMAC key's file (--auth-secret-file) */
	const char *acl_file;         /* NULL (off) or the rules file (--acl) */
} bx_security_opts;

typedef struct bx_security bx_security;

/* Reads the files of o and installs the policy on srv (before
 * bx_server_start()). Returns 0 and sets *out (NULL when o turns nothing
 * on), or -BX_EINVAL / -BX_ENOMEM with a message naming the flag in err.
 * Free *out with bx_security_free() after bx_server_free(). */
int bx_security_install(bx_server *srv, const bx_security_opts *o, bx_security **out, char *err,
                        size_t errlen);
void bx_security_free(bx_security *sec);

/*
 * Reloads (the daemon's SIGHUP), while the server runs; no request waits
 * for them: handshakes, subscribes and publishes read the key and the
 * rules through a bx_swap (core/swap.h), and the old ones are freed once
 * no request uses them.
 *
 * bx_security_set_key: the HMAC key of --auth hmac (len bytes, copied;
 * BX_AUTH_SECRET_MIN to _MAX). Sessions keep the grants of the token they
 * handshook with; new handshakes need tokens of the new key. Returns 0,
 * -BX_ESTATE (sec is NULL or --auth is off: turning it on needs a restart),
 * -BX_EINVAL (length), -BX_ENOMEM.
 *
 * bx_security_set_acl: the rules (from bx_acl_load(); taken over on
 * success: do not free them). Returns 0, or -BX_ESTATE when sec has no ACL
 * (turning --acl on or off needs a restart) or acl is NULL; the caller
 * then still owns acl.
 */
int bx_security_set_key(bx_security *sec, const unsigned char *key, size_t len);
typedef struct bx_acl bx_acl;
int bx_security_set_acl(bx_security *sec, bx_acl *acl);
/* Whether sec (may be NULL) has an ACL, and --auth hmac. */
bool bx_security_has_acl(bx_security *sec);
bool bx_security_has_auth(const bx_security *sec);

/* The --auth and --acl lines of the daemon's --help. */
void bx_security_usage(FILE *f);

/*---- Tokens (auth.c) ---------------------------------------------------------*/

/*
 * Mints a token: "<payload>.<mac>", both base64url without padding; payload
 * is the JSON {"sub":…,"exp":…,"subscribe":[…],"publish":[…]} and mac is
 * HMAC-SHA256(key, "bayeux-token-v1." + payload). Returns a malloc'd string,
 * or NULL (a pattern is not a valid channel name or pattern, or OOM).
 */
char *bx_token_mint(const unsigned char *key, size_t keylen, const char *sub, int64_t exp,
                    const char *const *subscribe, size_t nsubscribe, const char *const *publish,
                    size_t npublish);

/* The grants a valid token carries. */
typedef struct bx_grant {
	char *sub;
	int64_t exp;
	char **subscribe, **publish;
	size_t nsubscribe, npublish;
} bx_grant;

/* Verifies token (len bytes) at time now (Unix seconds): NULL when it is
 * malformed, forged or expired, else the grants (free with
 * bx_grant_free()). */
bx_grant *bx_token_verify(const unsigned char *key, size_t keylen, const char *token, size_t len,
                          int64_t now);
void bx_grant_free(bx_grant *g);

/*
 * True when every channel that pattern (a valid name or wildcard) matches is
 * matched by grant (a valid name or wildcard): /chat/** covers /chat/a,
 * /chat/*, /chat/a/** but not /chat, /*, /** nor /chat2/**.
 */
bool bx_pattern_covers(const char *grant, const char *pattern);
/* True when some channel is matched by both a and b (valid names or
 * wildcards): /a/** and /* overlap (at /a/x); /a/* and /b/** do not. */
bool bx_pattern_overlaps(const char *a, const char *b);

/* `bayeuxd token ...`: mints a token from the command line (argv[0] is
 * "token"). Returns the exit status. */
int bx_token_command(int argc, char **argv);

/* Reads a secret file into buf (trailing white space dropped); 0, or -1
 * with a message in err. Warns when others may read it. */
int bx_read_secret_file(const char *flag, const char *path, unsigned char *buf, size_t cap,
                        size_t *len, char *err, size_t errlen);

/*---- ACL (acl.c) ---------------------------------------------------------------*/

typedef struct bx_acl bx_acl;

/* Parses the rules file at path (format: docs/SECURITY.md, "ACL"). Returns
 * the rules, or NULL with "FILE:LINE: what is wrong" in err. */
bx_acl *bx_acl_load(const char *path, char *err, size_t errlen);
void bx_acl_free(bx_acl *acl);

enum bx_acl_op { BX_ACL_SUBSCRIBE, BX_ACL_PUBLISH };

/* True when subject (NULL: anonymous) may op on channel (a pattern for
 * subscribe, a name for publish; /service/... are the service rules). */
bool bx_acl_allows(const bx_acl *acl, const char *subject, enum bx_acl_op op, const char *channel);

#endif
