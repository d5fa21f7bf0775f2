/*
 * reload.h — what bayeuxd re-reads on SIGHUP: the config file (--config)
 * and the files it names, applying what can change while the server runs —
 * the ACL (--acl), the auth secret (--auth-secret-file), the publish token
 * (--publish-token-file) and the log level — and keeping every session and
 * held connect. All or nothing: a file that cannot be read or parsed, or a
 * bad value, keeps every setting as it was and says where and why.
 */
#ifndef BXD_RELOAD_H
#define BXD_RELOAD_H

#include <getopt.h>
#include <stdbool.h>
#include <sodium.h>

#include "bayeux.h"
#include "config.h"
#include "security/security.h"

typedef struct bxd_reload {
	const char *config_path;                    /* --config, or NULL */
	const struct option *opts;                  /* the daemon's options (names are settings) */
	bool (*given)(void *arg, const char *name); /* true: on the command line */
	void *given_arg;
	bx_server *srv;
	bx_security *sec; /* may be NULL (neither --auth nor --acl) */

	/* In force now (malloc'd copies; NULL: not set). */
	char *acl, *secret, *token;
	int level;
	bxd_conf conf; /* the file as last applied, to name what needs a restart */
	/* Hashes of the files' contents, to log "changed" or "unchanged". */
	unsigned char acl_hash[crypto_generichash_BYTES], secret_hash[crypto_generichash_BYTES],
	        token_hash[crypto_generichash_BYTES];
} bxd_reload;

/* Records the settings in force at start (paths are copied; conf, the
 * parsed file or NULL, is taken over). Returns 0 or -1 (out of memory). */
int bxd_reload_init(bxd_reload *r, const char *acl, const char *secret, const char *token,
                    int level, bxd_conf *conf);
void bxd_reload_free(bxd_reload *r);

/* Re-reads and applies, logging each change ("reload: ...") and ending
 * with "reload: done" (0) or "reload: refused, ..." (-1). */
int bxd_reload_run(bxd_reload *r);

/* Reads a publish token file (trailing white space dropped) into buf:
 * 0, or -1 with a message naming the flag and the file in err. */
int bxd_read_token_file(const char *path, char *buf, size_t cap, char *err, size_t errlen);

/* The log level named s (error, warn, info, debug), or -1. */
int bxd_log_level(const char *s);
extern const char *const bxd_log_levels[4];

#endif
