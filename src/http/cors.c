/*
 * cors.c — which web origins may use the Bayeux endpoint cross-origin
 * (PROTOCOL.md §6). The operator lists them (--allow-origin, repeatable);
 * the default is none, so only pages of the broker's own origin can read its
 * replies. An allowed origin is echoed, never "*", because the CometD client
 * sends credentials (the BAYEUX_BROWSER cookie) and browsers refuse "*" with
 * credentials. The wildcard entry "*" allows any origin except "null"
 * (sandboxed frames and file: pages), which must be listed by name.
 *
 * Nothing here knows HTTP; http.c adds the headers.
 */
#include <stdlib.h>
#include <string.h>

#include "core/server.h"
#include "core/dispatch.h"
#include "http.h"
#include "core/log.h"

struct bx_cors {
	bool any;      /* "*" was listed */
	size_t n;      /* listed origins other than "*" */
	char **origin; /* owned copies */
};

/* True when o looks like a serialized origin: scheme "://" host [":" port],
 * no path, no trailing slash; or "null". */
static bool origin_syntax_ok(const char *o)
{
	if (strcmp(o, "null") == 0)
		return true;
	const char *sep = strstr(o, "://");
	if (!sep || sep == o || strlen(o) > 255)
		return false;
	for (const char *p = o; p < sep; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' ||
		      *p == '-' || *p == '.'))
			return false;
	const char *host = sep + 3;
	if (!*host)
		return false;
	/* Host and port: letters, digits, '-', '.', ':', and brackets for IPv6. */
	return strspn(host, "abcdefghijklmnopqrstuvwxyz0123456789-.:[]") == strlen(host);
}

int bx_cors_init(bx_server *srv, const bx_config *cfg)
{
	srv->cors = NULL;
	if (cfg->n_allow_origins == 0)
		return 0;
	struct bx_cors *c = calloc(1, sizeof *c);
	if (!c)
		return -BX_ENOMEM;
	c->origin = calloc(cfg->n_allow_origins, sizeof *c->origin);
	if (!c->origin) {
		free(c);
		return -BX_ENOMEM;
	}
	srv->cors = c;
	for (size_t i = 0; i < cfg->n_allow_origins; i++) {
		const char *o = cfg->allow_origins[i];
		if (o && strcmp(o, "*") == 0) {
			c->any = true;
			continue;
		}
		if (!o || !origin_syntax_ok(o)) {
			bx_error("--allow-origin must be '*' or an origin like https://example.com "
			         "or http://localhost:3000 (lower case, no path, no trailing '/'), "
			         "got '%s'",
			         o ? o : "(null)");
			return -BX_EINVAL;
		}
		if (!(c->origin[c->n] = strdup(o)))
			return -BX_ENOMEM;
		c->n++;
	}
	return 0;
}

void bx_cors_free(bx_server *srv)
{
	struct bx_cors *c = srv->cors;
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		free(c->origin[i]);
	free(c->origin);
	free(c);
	srv->cors = NULL;
}

bool bx_cors_allowed(const bx_server *srv, const char *origin)
{
	const struct bx_cors *c = srv->cors;
	if (!c || !origin || !*origin)
		return false;
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->origin[i], origin) == 0)
			return true;
	return c->any && strcmp(origin, "null") != 0 && origin_syntax_ok(origin);
}
