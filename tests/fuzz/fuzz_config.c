/*
 * fuzz_config.c — libFuzzer target over bayeuxd's configuration file parser
 * (src/daemon/config.c): the text of a file, then its conversion into
 * command-line arguments over an option table like the daemon's, then
 * getopt_long() over those arguments, as the daemon does.
 *
 * Oracles: a parse either succeeds or says "PATH:LINE: ..." with a line
 * within the file; every name is made of a-z, 0-9 and '-', every value is
 * non-empty and on one line; the arguments start with "--", their lines
 * never go backwards, and getopt_long() recognises each of them.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct option opts[] = {
        {"listen", required_argument, NULL, 1},       {"timeout", required_argument, NULL, 2},
        {"allow-origin", required_argument, NULL, 3}, {"cookie-secure", no_argument, NULL, 4},
        {"acl", required_argument, NULL, 5},          {"log-level", required_argument, NULL, 6},
        {"config", required_argument, NULL, 7},       {NULL, 0, NULL, 0},
};
static const char *const deny[] = {"config", NULL};

static bool skip_acl(void *arg, const char *name)
{
	(void)arg;
	return strcmp(name, "acl") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bxd_conf c;
	char err[512];
	size_t lines_in = 1;
	for (size_t i = 0; i < size; i++)
		lines_in += data[i] == '\n';
	if (bxd_conf_parse(&c, "fuzz.conf", (const char *)data, size, err, sizeof err) != 0) {
		unsigned line = 0;
		if (strncmp(err, "fuzz.conf:", 10) != 0)
			abort();
		if (sscanf(err + 10, "%u:", &line) == 1 && (line == 0 || line > lines_in))
			abort();
		bxd_conf_free(&c);
		return 0;
	}
	unsigned last = 0;
	for (size_t i = 0; i < c.n; i++) {
		const bxd_conf_item *it = &c.items[i];
		if (!it->name[0] ||
		    strspn(it->name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(it->name))
			abort();
		if (!it->value[0] || strchr(it->value, '\n') || it->line < last ||
		    it->line > lines_in)
			abort();
		last = it->line;
		const char *l = bxd_conf_last(&c, it->name);
		if (!l)
			abort();
	}
	char **argv;
	unsigned *lines;
	int argc;
	if (bxd_conf_argv(&c, opts, deny, skip_acl, NULL, "bayeuxd", &argv, &argc, &lines, err,
	                  sizeof err) == 0) {
		if (argc < 1 || (size_t)argc > c.n + 1 || argv[argc] != NULL)
			abort();
		for (int i = 1; i < argc; i++)
			if (strncmp(argv[i], "--", 2) != 0 || lines[i] < lines[i - 1] ||
			    strncmp(argv[i], "--acl", 5) == 0)
				abort();
		optind = 0; /* glibc: start over, fully */
		opterr = 0;
		int ch, seen = 0;
		while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
			if (ch == '?' || ch == ':')
				abort();
			seen++;
		}
		if (seen != argc - 1 || optind != argc)
			abort();
		free(argv);
		free(lines);
	} else if (strncmp(err, "fuzz.conf:", 10) != 0) {
		abort();
	}
	bxd_conf_free(&c);
	return 0;
}
