/*
 * reload.c — SIGHUP: re-read the config file and the files it names, and
 * apply what may change while running (reload.h). Everything is read and
 * checked first; only then is anything swapped in, so a refused reload
 * leaves no half-applied state.
 */
#include "reload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/settings.h"
#include "notify.h"

const char *const bxd_log_levels[4] = {"error", "warn", "info", "debug"};

int bxd_log_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, bxd_log_levels[i]) == 0)
			return i;
	return -1;
}

int bxd_read_token_file(const char *path, char *buf, size_t cap, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot read --publish-token-file '%s': %s", path,
		         strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		bx_warn("--publish-token-file '%s' is readable by other users; chmod 600 it", path);
	size_t n = fread(buf, 1, cap - 1, f);
	bool more = fgetc(f) != EOF;
	fclose(f);
	buf[n] = '\0';
	while (n && strchr(" \t\r\n", buf[n - 1]))
		buf[--n] = '\0';
	if (more || n < BX_PUBLISH_TOKEN_MIN || n > BX_PUBLISH_TOKEN_MAX ||
	    strcspn(buf, " \t\r\n") != n) {
		sodium_memzero(buf, cap);
		snprintf(err, errlen,
		         "--publish-token-file '%s' must hold one token of %d to %d characters "
		         "with no spaces, got %s%zu; make one with: head -c 32 /dev/urandom | "
		         "base64",
		         path, BX_PUBLISH_TOKEN_MIN, BX_PUBLISH_TOKEN_MAX, more ? "more than " : "",
		         more ? cap - 1 : n);
		return -1;
	}
	return 0;
}

static void hash_of(const void *p, size_t n, unsigned char out[crypto_generichash_BYTES])
{
	crypto_generichash(out, crypto_generichash_BYTES, p, n, NULL, 0);
}

/* Hash of a whole file's content (at most 16 MiB); 0, or -1 unreadable. */
static int hash_file(const char *path, unsigned char out[crypto_generichash_BYTES])
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, crypto_generichash_BYTES);
	unsigned char buf[8192];
	size_t n, total = 0;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0 && total < 16u << 20) {
		crypto_generichash_update(&st, buf, n);
		total += n;
	}
	fclose(f);
	crypto_generichash_final(&st, out, crypto_generichash_BYTES);
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int bxd_reload_init(bxd_reload *r, const char *acl, const char *secret, const char *token,
                    int level, bxd_conf *conf)
{
	r->acl = dup_or_null(acl);
	r->secret = dup_or_null(secret);
	r->token = dup_or_null(token);
	r->level = level;
	if (conf) {
		r->conf = *conf;
		memset(conf, 0, sizeof *conf);
	} else {
		memset(&r->conf, 0, sizeof r->conf);
	}
	memset(r->acl_hash, 0, sizeof r->acl_hash);
	memset(r->secret_hash, 0, sizeof r->secret_hash);
	memset(r->token_hash, 0, sizeof r->token_hash);
	if (acl)
		hash_file(acl, r->acl_hash);
	if (secret)
		hash_file(secret, r->secret_hash);
	if (token)
		hash_file(token, r->token_hash);
	return (acl && !r->acl) || (secret && !r->secret) || (token && !r->token) ? -1 : 0;
}

void bxd_reload_free(bxd_reload *r)
{
	free(r->acl);
	free(r->secret);
	free(r->token);
	bxd_conf_free(&r->conf);
}

/* The names SIGHUP applies; every other name needs a restart. */
static const char *const live_names[] = {"acl", "auth-secret-file", "publish-token-file",
                                         "log-level", NULL};

static bool is_live(const char *name)
{
	for (const char *const *n = live_names; *n; n++)
		if (strcmp(*n, name) == 0)
			return true;
	return false;
}

/* True when the values of name differ between a and b (in order). */
static bool values_differ(const bxd_conf *a, const bxd_conf *b, const char *name)
{
	size_t i = 0, k = 0;
	for (;;) {
		while (i < a->n && strcmp(a->items[i].name, name) != 0)
			i++;
		while (k < b->n && strcmp(b->items[k].name, name) != 0)
			k++;
		if (i == a->n || k == b->n)
			return (i == a->n) != (k == b->n);
		if (strcmp(a->items[i].value, b->items[k].value) != 0)
			return true;
		i++;
		k++;
	}
}

/* Warns about each setting of the file that changed but needs a restart. */
static void name_restart_changes(const bxd_reload *r, const bxd_conf *now)
{
	const bxd_conf *sides[2] = {&r->conf, now};
	for (int s = 0; s < 2; s++)
		for (size_t i = 0; i < sides[s]->n; i++) {
			const char *name = sides[s]->items[i].name;
			bool first = true; /* report each name once */
			for (size_t k = 0; k < i; k++)
				first &= strcmp(sides[s]->items[k].name, name) != 0;
			if (s == 1)
				for (size_t k = 0; k < r->conf.n; k++)
					first &= strcmp(r->conf.items[k].name, name) != 0;
			if (!first || is_live(name) || (r->given && r->given(r->given_arg, name)))
				continue;
			if (values_differ(&r->conf, now, name))
				bx_warn("reload: '%s' changed in %s: it takes effect at the next "
				        "restart",
				        name, r->config_path);
		}
}

/* Range check of the numeric settings of the file (the same table as the
 * flags), so a bad value is refused now rather than at the next start. */
static int check_limits(const bxd_conf *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->n; i++)
		for (size_t k = 0; k < bx_nlimits; k++) {
			const bx_limit *l = &bx_limits[k];
			if (strcmp(l->flag, c->items[i].name) != 0)
				continue;
			char *end;
			errno = 0;
			long long v = strtoll(c->items[i].value, &end, 10);
			if (errno || *end || end == c->items[i].value || v < l->min || v > l->max) {
				snprintf(err, errlen,
				         "%s:%u: --%s must be between %lld and %lld (%s), got '%s'",
				         c->path, c->items[i].line, l->flag, (long long)l->min,
				         (long long)l->max, l->unit, c->items[i].value);
				return -1;
			}
		}
	return 0;
}

static unsigned line_of(const bxd_conf *c, const char *name)
{
	for (size_t i = c->n; i > 0; i--)
		if (strcmp(c->items[i - 1].name, name) == 0)
			return c->items[i - 1].line;
	return 0;
}

/* The value of a live setting after this reload: the command line's (kept),
 * else the file's last, else none. */
static const char *pick(const bxd_reload *r, const bxd_conf *c, const char *name,
                        const char *current)
{
	if (!r->config_path || (r->given && r->given(r->given_arg, name)))
		return current;
	return bxd_conf_last(c, name);
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int bxd_reload_run(bxd_reload *r)
{
	char err[1024] = "";
	bxd_conf c = {0};
	bx_acl *acl = NULL;
	static unsigned char key[BX_AUTH_SECRET_MAX];
	static char token[BX_PUBLISH_TOKEN_MAX + 2];
	size_t keylen = 0;
	unsigned char acl_hash[crypto_generichash_BYTES], secret_hash[crypto_generichash_BYTES],
	        token_hash[crypto_generichash_BYTES];
	char *acl_path = NULL, *secret_path = NULL, *token_path = NULL;

	bxd_notify_reloading();
	if (r->config_path) {
		bx_info("reload: SIGHUP: re-reading %s", r->config_path);
		if (bxd_conf_read(&c, r->config_path, err, sizeof err) != 0)
			goto refuse;
		char **argv;
		unsigned *lines;
		int argc;
		static const char *const deny[] = {"config", "help", "version", NULL};
		if (bxd_conf_argv(&c, r->opts, deny, NULL, NULL, "bayeuxd", &argv, &argc, &lines,
		                  err, sizeof err) != 0)
			goto refuse;
		free(argv);
		free(lines);
		if (check_limits(&c, err, sizeof err) != 0)
			goto refuse;
	} else {
		bx_info("reload: SIGHUP: re-reading the files of --acl, --auth-secret-file and "
		        "--publish-token-file");
	}

	/* The log level. */
	int level = r->level;
	const char *lv = pick(r, &c, "log-level", NULL);
	if (lv) {
		level = bxd_log_level(lv);
		if (level < 0) {
			snprintf(err, sizeof err,
			         "%s:%u: --log-level must be error, warn, info or debug, got '%s'",
			         c.path, line_of(&c, "log-level"), lv);
			goto refuse;
		}
	} else if (r->config_path && !(r->given && r->given(r->given_arg, "log-level"))) {
		level = BX_LOG_INFO; /* the line was removed: the default */
	}

	/* The ACL. */
	const char *ap = pick(r, &c, "acl", r->acl);
	if ((ap != NULL) != bx_security_has_acl(r->sec)) {
		snprintf(err, sizeof err,
		         "acl: turning --acl on or off needs a restart (now %s, the file says %s)",
		         bx_security_has_acl(r->sec) ? "on" : "off", ap ? ap : "none");
		goto refuse;
	}
	if (ap) {
		if (!(acl = bx_acl_load(ap, err, sizeof err)))
			goto refuse;
		hash_file(ap, acl_hash);
	}

	/* The auth secret. */
	const char *sp = pick(r, &c, "auth-secret-file", r->secret);
	if (bx_security_has_auth(r->sec) && !sp) {
		snprintf(err, sizeof err, "--auth hmac needs --auth-secret-file FILE");
		goto refuse;
	}
	if (!bx_security_has_auth(r->sec) && sp && !same_str(sp, r->secret)) {
		snprintf(err, sizeof err, "auth-secret-file: turning --auth on needs a restart");
		goto refuse;
	}
	if (sp && bx_security_has_auth(r->sec)) {
		if (bx_read_secret_file("--auth-secret-file", sp, key, sizeof key, &keylen, err,
		                        sizeof err) != 0)
			goto refuse;
		hash_of(key, keylen, secret_hash);
	}

	/* The publish token. */
	const char *tp = pick(r, &c, "publish-token-file", r->token);
	if (tp) {
		if (bxd_read_token_file(tp, token, sizeof token, err, sizeof err) != 0)
			goto refuse;
		hash_of(token, strlen(token), token_hash);
	}

	/* Everything read and checked: apply. */
	if ((ap && !(acl_path = strdup(ap))) || (sp && !(secret_path = strdup(sp))) ||
	    (tp && !(token_path = strdup(tp)))) {
		snprintf(err, sizeof err, "out of memory");
		goto refuse;
	}
	if (r->config_path)
		name_restart_changes(r, &c);
	if (level != r->level) {
		bx_log_set_level(level);
		bx_log(level < BX_LOG_INFO ? level : BX_LOG_INFO, "reload: log level: %s -> %s",
		       bxd_log_levels[r->level], bxd_log_levels[level]);
		r->level = level;
	}
	if (acl) {
		bool changed =
		        !same_str(ap, r->acl) || memcmp(acl_hash, r->acl_hash, sizeof acl_hash);
		if (bx_security_set_acl(r->sec, acl) != 0) { /* cannot happen: checked above */
			bx_acl_free(acl);
			acl = NULL;
		} else {
			acl = NULL;
			bx_info("reload: acl: %s: %s", ap, changed ? "changed" : "unchanged");
			memcpy(r->acl_hash, acl_hash, sizeof acl_hash);
		}
	}
	if (sp && bx_security_has_auth(r->sec)) {
		bool changed = memcmp(secret_hash, r->secret_hash, sizeof secret_hash) != 0;
		if (bx_security_set_key(r->sec, key, keylen) == 0) {
			bx_info("reload: auth secret: %s", changed ? "changed" : "unchanged");
			memcpy(r->secret_hash, secret_hash, sizeof secret_hash);
		} else {
			bx_error("reload: auth secret: out of memory; the old one stays");
		}
	}
	bool token_changed = (tp != NULL) != (r->token != NULL) ||
	                     (tp && memcmp(token_hash, r->token_hash, sizeof token_hash));
	if (bx_server_set_publish_token(r->srv, tp ? token : NULL) == 0) {
		bx_info("reload: publish token: %s", !tp ? (r->token ? "removed" : "none")
		                                     : token_changed ? "changed"
		                                                     : "unchanged");
		if (tp)
			memcpy(r->token_hash, token_hash, sizeof token_hash);
	} else {
		bx_error("reload: publish token: out of memory; the old one stays");
	}
	free(r->acl);
	free(r->secret);
	free(r->token);
	r->acl = acl_path;
	r->secret = secret_path;
	r->token = token_path;
	if (r->config_path) {
		bxd_conf_free(&r->conf);
		r->conf = c;
	}
	sodium_memzero(key, sizeof key);
	sodium_memzero(token, sizeof token);
	bx_info("reload: done; sessions and held connects kept");
	bxd_notify("READY=1\nSTATUS=reloaded");
	return 0;

refuse:
	bx_acl_free(acl);
	free(acl_path);
	free(secret_path);
	free(token_path);
	bxd_conf_free(&c);
	sodium_memzero(key, sizeof key);
	sodium_memzero(token, sizeof token);
	bx_error("reload: refused, every setting stays as it was: %s", err);
	bxd_notify("READY=1\nSTATUS=reload refused; running on the last good settings");
	return -1;
}
