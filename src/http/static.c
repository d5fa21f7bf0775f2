/*
 * static.c — static files: `--web-root DIR` serves a folder at "/", and
 * `--web-mount PREFIX=DIR` more folders under URL prefixes, so the demo
 * pages (web/) and the CometD client (node_modules/cometd) come from the
 * broker itself with no other server.
 *
 * Nothing outside a folder is ever served: libmicrohttpd percent-decodes the
 * path before we see it, so an encoded "%2e%2e" arrives as "..", and every
 * segment that is "..", "." or starts with '.' (hidden files, .git) is
 * refused; the file's real path (symbolic links resolved) must then still
 * lie inside the folder's real path, and is opened with O_NOFOLLOW.
 * GET and HEAD only; no directory listings.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "static.h"

struct web_dir {
	char *prefix; /* "/" or "/a/b" (no trailing '/') */
	size_t plen;
	char *dir; /* real path of the folder, no trailing '/' (unless "/") */
	size_t dlen;
};

struct bx_static {
	size_t n;
	struct web_dir d[]; /* longest prefix first */
};

/*---- Set-up ----------------------------------------------------------------*/

/* True when prefix is "/" or "/seg/seg" of safe characters, no "." or ".."
 * segment, no trailing '/'. */
static bool prefix_ok(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || p[0] != '/' || n > 256)
		return false;
	if (n == 1)
		return true;
	if (p[n - 1] == '/' || strstr(p, "//") || strstr(p, "/.") ||
	    strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./~") != n)
		return false;
	return true;
}

static int add_dir(struct bx_static *w, const char *prefix, const char *dir, const char *flag)
{
	if (!prefix_ok(prefix)) {
		bx_error("%s: the URL prefix must start with '/' and use only letters, digits "
		         "and -_./~ (no trailing '/'), got '%s'",
		         flag, prefix);
		return -BX_EINVAL;
	}
	char *real = dir && *dir ? realpath(dir, NULL) : NULL;
	struct stat st;
	if (!real || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
		bx_error("%s: '%s' is not a folder we can read (%s)", flag, dir ? dir : "",
		         real ? "not a folder" : strerror(errno));
		free(real);
		return -BX_EINVAL;
	}
	struct web_dir *d = &w->d[w->n];
	d->prefix = strdup(prefix);
	if (!d->prefix) {
		free(real);
		return -BX_ENOMEM;
	}
	d->plen = strlen(prefix);
	d->dir = real;
	d->dlen = strlen(real);
	w->n++;
	return 0;
}

static int by_prefix_length(const void *a, const void *b)
{
	const struct web_dir *x = a, *y = b;
	return x->plen < y->plen ? 1 : x->plen > y->plen ? -1 : 0;
}

int bx_static_init(bx_server *srv, const bx_config *cfg)
{
	srv->web = NULL;
	size_t n = (cfg->web_root ? 1 : 0) + cfg->n_web_mounts;
	if (n == 0)
		return 0;
	struct bx_static *w = calloc(1, sizeof *w + n * sizeof w->d[0]);
	if (!w)
		return -BX_ENOMEM;
	srv->web = w;
	int rc = 0;
	if (cfg->web_root)
		rc = add_dir(w, "/", cfg->web_root, "--web-root");
	for (size_t i = 0; rc == 0 && i < cfg->n_web_mounts; i++) {
		const bx_web_mount *m = &cfg->web_mounts[i];
		rc = add_dir(w, m->prefix ? m->prefix : "", m->dir, "--web-mount");
	}
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < w->n; i++)
		for (size_t k = i + 1; k < w->n; k++)
			if (strcmp(w->d[i].prefix, w->d[k].prefix) == 0) {
				bx_error("--web-root/--web-mount: two folders for '%s'",
				         w->d[i].prefix);
				return -BX_EINVAL;
			}
	qsort(w->d, w->n, sizeof w->d[0], by_prefix_length);
	for (size_t i = 0; i < w->n; i++)
		bx_info("serving files of %s at %s", w->d[i].dir, w->d[i].prefix);
	return 0;
}

void bx_static_free(bx_server *srv)
{
	struct bx_static *w = srv->web;
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++) {
		free(w->d[i].prefix);
		free(w->d[i].dir);
	}
	free(w);
	srv->web = NULL;
}

bool bx_static_enabled(const bx_server *srv)
{
	return srv->web != NULL;
}

/*---- Content types -----------------------------------------------------------*/

static const struct {
	const char *ext, *type;
} types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"json", "application/json; charset=utf-8"},
        {"map", "application/json; charset=utf-8"},
        {"txt", "text/plain; charset=utf-8"},
        {"md", "text/markdown; charset=utf-8"},
        {"xml", "application/xml"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"ico", "image/x-icon"},
        {"wasm", "application/wasm"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"ts", "text/plain; charset=utf-8"},
};

static const char *content_type(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash : path, '.');
	if (dot)
		for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
			if (strcasecmp(dot + 1, types[i].ext) == 0)
				return types[i].type;
	return "application/octet-stream";
}

/*---- Answers -----------------------------------------------------------------*/

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	return bx_http_answer(conn, status, "text/plain; charset=utf-8", (void *)text, strlen(text),
	                      MHD_RESPMEM_PERSISTENT, false);
}

/* 301 to url + "/", so that a folder's index.html finds its relative links;
 * the decoded url is percent-encoded again for the Location header. */
static enum MHD_Result redirect_slash(struct MHD_Connection *conn, const char *url)
{
	static const char hex[] = "0123456789ABCDEF";
	char loc[PATH_MAX * 3 + 2];
	size_t k = 0;
	for (const unsigned char *p = (const unsigned char *)url; *p && k + 4 < sizeof loc; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("/-_.~", *p)) {
			loc[k++] = (char)*p;
		} else {
			loc[k++] = '%';
			loc[k++] = hex[*p >> 4];
			loc[k++] = hex[*p & 15];
		}
	}
	loc[k++] = '/';
	loc[k] = '\0';
	struct MHD_Response *r =
	        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, loc);
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_MOVED_PERMANENTLY, r);
	MHD_destroy_response(r);
	return ret;
}

/* True when rel (the path below a prefix) has no segment that could leave
 * the folder or name a hidden file. */
static bool rel_ok(const char *rel)
{
	if (strchr(rel, '\\'))
		return false;
	const char *p = rel;
	while (*p) {
		while (*p == '/')
			p++;
		if (*p == '.')
			return false; /* ".", "..", ".git", ".env" … */
		while (*p && *p != '/')
			p++;
	}
	return true;
}

/* True when real (a resolved path) is the folder d or lies inside it. */
static bool inside(const struct web_dir *d, const char *real)
{
	if (strncmp(real, d->dir, d->dlen) != 0)
		return false;
	if (d->dlen == 1) /* the folder is "/" */
		return true;
	return real[d->dlen] == '\0' || real[d->dlen] == '/';
}

/* Opens the regular file at path if its real path is inside d; -1 if not. */
static int open_inside(const struct web_dir *d, const char *path, struct stat *st)
{
	char *real = realpath(path, NULL);
	if (!real)
		return -1;
	int fd = -1;
	if (inside(d, real))
		fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	free(real);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return -1;
	}
	return fd;
}

enum MHD_Result bx_static_serve(bx_server *srv, struct MHD_Connection *conn, const char *url,
                                const char *method)
{
	const struct bx_static *w = srv->web;
	const struct web_dir *d = NULL;
	for (size_t i = 0; w && i < w->n && !d; i++) {
		const struct web_dir *c = &w->d[i];
		if (c->plen == 1 ? url[0] == '/'
		                 : strncmp(url, c->prefix, c->plen) == 0 &&
		                           (url[c->plen] == '\0' || url[c->plen] == '/'))
			d = c;
	}
	if (!d)
		return answer_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD here\n");

	const char *rel = url + (d->plen == 1 ? 0 : d->plen);
	char path[PATH_MAX];
	if (!rel_ok(rel) ||
	    (size_t)snprintf(path, sizeof path, "%s/%s", d->dir, rel[0] == '/' ? rel + 1 : rel) >=
	            sizeof path - sizeof "/index.html")
		return answer_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");

	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		size_t n = strlen(url);
		if (n == 0 || url[n - 1] != '/')
			return redirect_slash(conn, url);
		size_t k = strlen(path);
		snprintf(path + k, sizeof path - k, "%sindex.html", path[k - 1] == '/' ? "" : "/");
	}
	int fd = open_inside(d, path, &st);
	if (fd < 0)
		return answer_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
	struct MHD_Response *r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
	if (!r) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type(path));
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	/* Revalidate every time: the demo is edited while it runs. */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}
