/*
 * config.c — bayeuxd's configuration file (the grammar: config.h).
 *
 * The file becomes command-line arguments ("--name=value") that the daemon
 * parses with the same code as its real command line, so a setting means
 * the same in both places and a flag added to the daemon is a setting of
 * the file with no work here.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void fail_at(char *err, size_t errlen, const char *path, unsigned line, const char *why)
{
	snprintf(err, errlen, "%s:%u: %s", path, line, why);
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
}

/* Parses one line (NUL-terminated, no newline; edited in place) into *name
 * and *value (both NULL for a blank or comment line). NULL, or what is
 * wrong. */
static const char *parse_line(char *s, char **name, char **value)
{
	*name = *value = NULL;
	while (is_space(*s))
		s++;
	if (*s == '\0' || *s == '#')
		return NULL;
	char *n = s;
	while (name_char(*s))
		s++;
	char *name_end = s;
	while (is_space(*s))
		s++;
	if (*s != '=') {
		if (name_end == n || strchr(s, '='))
			return "a setting is 'name = value'; names use a-z, 0-9 and '-' (the long "
			       "flags without their dashes)";
		return "a setting is 'name = value': '=' is missing";
	}
	if (name_end == n)
		return "a setting is 'name = value': the name is missing";
	*name_end = '\0';
	s++;
	while (is_space(*s))
		s++;
	char *v = s;
	if (*s == '"') {
		v = ++s;
		char *q = strchr(s, '"');
		if (!q)
			return "a quoted value has no closing '\"'";
		*q = '\0';
		s = q + 1;
		while (is_space(*s))
			s++;
		if (*s && *s != '#')
			return "only a comment may follow a quoted value";
	} else {
		/* The value ends at a comment ('#' after a space) or the line's end;
		 * trailing spaces are not part of it. */
		char *end = s;
		while (*s && !(*s == '#' && is_space(s[-1]))) {
			if (!is_space(*s))
				end = s + 1;
			s++;
		}
		*end = '\0';
		if (strchr(v, '"'))
			return "a '\"' inside a value: quote the whole value (\"...\")";
	}
	if (*v == '\0')
		return "the value is empty (remove the line for the default)";
	*name = n;
	*value = v;
	return NULL;
}

void bxd_conf_free(bxd_conf *c)
{
	free(c->path);
	free(c->text);
	free(c->items);
	memset(c, 0, sizeof *c);
}

int bxd_conf_parse(bxd_conf *c, const char *path, const char *text, size_t len, char *err,
                   size_t errlen)
{
	memset(c, 0, sizeof *c);
	if (len > BXD_CONF_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, BXD_CONF_FILE_MAX);
		return -1;
	}
	c->path = strdup(path);
	c->text = malloc(len + 1);
	if (!c->path || !c->text) {
		snprintf(err, errlen, "%s: out of memory", path);
		bxd_conf_free(c);
		return -1;
	}
	memcpy(c->text, text, len);
	c->text[len] = '\0';
	size_t cap = 0;
	unsigned line = 0;
	char *s = c->text, *end = c->text + len;
	while (s < end) {
		line++;
		char *nl = memchr(s, '\n', (size_t)(end - s));
		char *eol = nl ? nl : end;
		if (memchr(s, '\0', (size_t)(eol - s))) {
			fail_at(err, errlen, path, line, "a NUL byte: this is not a text file");
			goto fail;
		}
		if ((size_t)(eol - s) > BXD_CONF_LINE_MAX) {
			fail_at(err, errlen, path, line, "line longer than 4096 bytes");
			goto fail;
		}
		*eol = '\0';
		if (eol > s && eol[-1] == '\r')
			eol[-1] = '\0';
		char *name, *value;
		const char *why = parse_line(s, &name, &value);
		if (why) {
			fail_at(err, errlen, path, line, why);
			goto fail;
		}
		if (name) {
			if (c->n == BXD_CONF_ITEMS_MAX) {
				fail_at(err, errlen, path, line,
				        "more than 4096 settings in one file");
				goto fail;
			}
			if (c->n == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				bxd_conf_item *v = realloc(c->items, ncap * sizeof *v);
				if (!v) {
					fail_at(err, errlen, path, line, "out of memory");
					goto fail;
				}
				c->items = v;
				cap = ncap;
			}
			c->items[c->n++] = (bxd_conf_item){name, value, line};
		}
		s = eol + 1;
	}
	return 0;
fail:
	bxd_conf_free(c);
	return -1;
}

int bxd_conf_read(bxd_conf *c, const char *path, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	char *buf = malloc(BXD_CONF_FILE_MAX + 1);
	if (!buf) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	size_t n = fread(buf, 1, BXD_CONF_FILE_MAX + 1, f);
	int rerr = ferror(f) ? errno : 0;
	fclose(f);
	int rc;
	if (rerr) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(rerr));
		rc = -1;
	} else {
		rc = bxd_conf_parse(c, path, buf, n, err, errlen);
	}
	free(buf);
	return rc;
}

const char *bxd_conf_last(const bxd_conf *c, const char *name)
{
	for (size_t i = c->n; i > 0; i--)
		if (strcmp(c->items[i - 1].name, name) == 0)
			return c->items[i - 1].value;
	return NULL;
}

int bxd_conf_bool(const char *v)
{
	static const char *yes[] = {"yes", "true", "on", "1"}, *no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -1;
}

static const struct option *find_opt(const struct option *opts, const char *name)
{
	for (; opts->name; opts++)
		if (strcmp(opts->name, name) == 0)
			return opts;
	return NULL;
}

int bxd_conf_argv(const bxd_conf *c, const struct option *opts, const char *const *deny,
                  bool (*skip)(void *arg, const char *name), void *arg, const char *argv0,
                  char ***argv, int *argc, unsigned **lines, char *err, size_t errlen)
{
	*argv = NULL;
	*lines = NULL;
	*argc = 0;
	/* One block: the pointers, then the strings. */
	size_t bytes = (c->n + 2) * sizeof(char *) + strlen(argv0) + 1;
	for (size_t i = 0; i < c->n; i++)
		bytes += 2 + strlen(c->items[i].name) + 1 + strlen(c->items[i].value) + 1;
	char **v = malloc(bytes);
	unsigned *ln = calloc(c->n + 1, sizeof *ln);
	if (!v || !ln) {
		free(v);
		free(ln);
		snprintf(err, errlen, "%s: out of memory", c->path);
		return -1;
	}
	char *p = (char *)(v + c->n + 2);
	int k = 0;
	v[k++] = strcpy(p, argv0);
	p += strlen(argv0) + 1;
	for (size_t i = 0; i < c->n; i++) {
		const bxd_conf_item *it = &c->items[i];
		char why[256];
		const struct option *o = find_opt(opts, it->name);
		bool denied = false;
		for (const char *const *d = deny; d && *d; d++)
			denied |= strcmp(*d, it->name) == 0;
		if (!o || denied) {
			snprintf(why, sizeof why,
			         denied ? "'%.64s' cannot be set in a config file"
			                : "unknown setting '%.64s' (the names are bayeuxd's long "
			                  "flags without their dashes: see bayeuxd --help)",
			         it->name);
			goto fail_why;
		}
		int yes = 1;
		if (o->has_arg == no_argument && (yes = bxd_conf_bool(it->value)) < 0) {
			snprintf(why, sizeof why, "'%.64s' takes yes or no, got '%.64s'", it->name,
			         it->value);
			goto fail_why;
		}
		if (skip && skip(arg, it->name))
			continue;
		if (!yes)
			continue;
		ln[k] = it->line;
		v[k++] = p;
		p += sprintf(p, o->has_arg == no_argument ? "--%s" : "--%s=%s", it->name,
		             it->value) +
		     1;
		continue;
	fail_why:
		fail_at(err, errlen, c->path, it->line, why);
		free(v);
		free(ln);
		return -1;
	}
	v[k] = NULL;
	*argv = v;
	*argc = k;
	*lines = ln;
	return 0;
}
