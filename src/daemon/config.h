/*
 * config.h — bayeuxd's configuration file (--config FILE): one
 * `name = value` a line, names are the long flags without their dashes.
 * The grammar, by example:
 *
 *     # a comment line                  skipped
 *     listen = 127.0.0.1:8080           name "listen", value "127.0.0.1:8080"
 *     timeout=30000   # held for 30 s   an inline comment starts at a '#'
 *                                       that follows a space or a tab
 *     allow-origin = https://a.example  repeatable flags repeat the name
 *     web-mount = "/x=/srv/a b#c"       double quotes keep spaces and '#'
 *     cookie-secure = yes               flags without a value: yes or no
 *                                       (true/false, on/off, 1/0 too)
 *
 * Not accepted, each with "FILE:LINE: reason": a line with no '=', a name
 * with characters other than a-z, 0-9 and '-', an empty value, an
 * unterminated quote, a NUL byte, a line longer than BXD_CONF_LINE_MAX.
 * This file knows the syntax only; which names exist and what values they
 * take is the daemon's option table (bxd_conf_argv()).
 */
#ifndef BXD_CONFIG_H
#define BXD_CONFIG_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#define BXD_CONF_LINE_MAX  4096          /* bytes in one line, without its newline */
#define BXD_CONF_FILE_MAX  (1024 * 1024) /* bytes in one file */
#define BXD_CONF_ITEMS_MAX 4096          /* settings in one file */

typedef struct bxd_conf_item {
	const char *name;  /* into bxd_conf.text */
	const char *value; /* into bxd_conf.text; never empty */
	unsigned line;     /* 1-based */
} bxd_conf_item;

typedef struct bxd_conf {
	char *path; /* as given, for messages */
	char *text; /* our copy of the file, cut into names and values */
	bxd_conf_item *items;
	size_t n;
} bxd_conf;

/* Parses len bytes of text read from path into c (zeroed first). Returns 0,
 * or -1 with "PATH:LINE: reason" in err (c is then empty). Free c with
 * bxd_conf_free() either way. */
int bxd_conf_parse(bxd_conf *c, const char *path, const char *text, size_t len, char *err,
                   size_t errlen);

/* Reads the file at path (at most BXD_CONF_FILE_MAX bytes) and parses it;
 * as bxd_conf_parse(), with "cannot read PATH: why" for a file it cannot
 * read. */
int bxd_conf_read(bxd_conf *c, const char *path, char *err, size_t errlen);

void bxd_conf_free(bxd_conf *c);

/* The value of the last item named name, or NULL. */
const char *bxd_conf_last(const bxd_conf *c, const char *name);

/* The boolean of yes/no, true/false, on/off, 1/0 (any case): 1, 0, or -1. */
int bxd_conf_bool(const char *value);

/*
 * Turns c into command-line arguments for getopt_long() over opts (ending
 * with a zeroed entry): "--name=value" for a flag that takes a value,
 * "--name" for a flag without one whose value is yes (nothing for no).
 * Items whose name skip(arg, name) is true are left out (the daemon skips
 * names given on its command line: those win). Names in deny (NULL-ended;
 * e.g. "config", "help") are refused.
 *
 * On success returns 0 and sets *argv (argv[0] is argv0, then the
 * arguments, then NULL), *argc, and *lines (lines[i] is the file line of
 * argv[i]; 0 for argv[0]). One free() of *argv and one of *lines release
 * them (the strings live in the argv block). On an unknown name, a denied
 * one, or a bad yes/no, returns -1 with "PATH:LINE: reason" in err.
 */
int bxd_conf_argv(const bxd_conf *c, const struct option *opts, const char *const *deny,
                  bool (*skip)(void *arg, const char *name), void *arg, const char *argv0,
                  char ***argv, int *argc, unsigned **lines, char *err, size_t errlen);

#endif
