/* bayeuxd's configuration file parser (src/daemon/config.c): the grammar,
 * each malformed form with its FILE:LINE message, and the conversion into
 * command-line arguments. */
#include <criterion/criterion.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"

static bxd_conf parse_ok(const char *text)
{
	bxd_conf c;
	char err[512] = "";
	cr_assert_eq(bxd_conf_parse(&c, "t.conf", text, strlen(text), err, sizeof err), 0, "%s",
	             err);
	return c;
}

static void parse_fails(const char *text, const char *want)
{
	bxd_conf c;
	char err[512] = "";
	cr_assert_eq(bxd_conf_parse(&c, "t.conf", text, strlen(text), err, sizeof err), -1,
	             "accepted: %s", text);
	cr_assert(strstr(err, want), "for %s: got '%s', want '%s'", text, err, want);
	cr_assert_eq(c.n, 0);
	bxd_conf_free(&c);
}

Test(config, names_values_comments_and_blank_lines)
{
	bxd_conf c = parse_ok("# a comment\n"
	                      "\n"
	                      "   \t\n"
	                      "listen = 127.0.0.1:9000\n"
	                      "timeout=3000   # held 3 s\n"
	                      "  allow-origin   =   https://a.example  \n"
	                      "allow-origin = https://b.example\r\n"
	                      "web-mount = \"/x=/srv/a b#c\"  # quoted\n"
	                      "path = /a#b\n"
	                      "cookie-secure = yes");
	cr_assert_eq(c.n, 7);
	cr_assert_str_eq(c.items[0].name, "listen");
	cr_assert_str_eq(c.items[0].value, "127.0.0.1:9000");
	cr_assert_eq(c.items[0].line, 4);
	cr_assert_str_eq(c.items[1].value, "3000");
	cr_assert_str_eq(c.items[2].value, "https://a.example");
	cr_assert_eq(c.items[3].line, 7);
	cr_assert_str_eq(c.items[3].value, "https://b.example");
	cr_assert_str_eq(c.items[4].value, "/x=/srv/a b#c");
	cr_assert_str_eq(c.items[5].value, "/a#b", "a '#' not after a space is part of the value");
	cr_assert_str_eq(c.items[6].value, "yes");
	cr_assert_eq(c.items[6].line, 10);
	cr_assert_str_eq(bxd_conf_last(&c, "allow-origin"), "https://b.example");
	cr_assert_null(bxd_conf_last(&c, "acl"));
	bxd_conf_free(&c);
}

Test(config, an_empty_file_has_no_settings)
{
	bxd_conf c = parse_ok("");
	cr_assert_eq(c.n, 0);
	bxd_conf_free(&c);
}

Test(config, malformed_lines_say_file_line_and_why)
{
	parse_fails("listen = x\nlisten\n",
	            "t.conf:2: a setting is 'name = value': '=' is missing");
	parse_fails("timeout 5\n", "t.conf:1: a setting is 'name = value': '=' is missing");
	parse_fails("= 8080\n", "t.conf:1: a setting is 'name = value': the name is missing");
	parse_fails("\n\nListen = x\n", "t.conf:3: a setting is 'name = value'; names use a-z");
	parse_fails("max body = 5\n", "t.conf:1: a setting is 'name = value'; names use");
	parse_fails("timeout =\n", "t.conf:1: the value is empty");
	parse_fails("timeout =    # nothing\n", "t.conf:1: the value is empty");
	parse_fails("acl = \"/etc/acl\n", "t.conf:1: a quoted value has no closing");
	parse_fails("acl = \"/a\" b\n", "t.conf:1: only a comment may follow a quoted value");
	parse_fails("acl = a\"b\n", "t.conf:1: a '\"' inside a value");
}

Test(config, nul_bytes_are_found_whatever_the_length)
{
	bxd_conf c;
	char err[256];
	static const char text[] = "timeout = 1\0 = 2\n";
	cr_assert_eq(bxd_conf_parse(&c, "t.conf", text, sizeof text - 1, err, sizeof err), -1);
	cr_assert(strstr(err, "t.conf:1: a NUL byte"), "%s", err);
	bxd_conf_free(&c);
}

Test(config, overlong_lines_and_files_are_refused)
{
	size_t n = BXD_CONF_LINE_MAX + 20;
	char *s = malloc(n + 1);
	memset(s, 'a', n);
	memcpy(s, "acl = ", 6);
	s[n] = '\0';
	parse_fails(s, "t.conf:1: line longer than 4096 bytes");
	free(s);
	bxd_conf c;
	char err[256];
	static char big[BXD_CONF_FILE_MAX + 1];
	memset(big, '\n', sizeof big);
	cr_assert_eq(bxd_conf_parse(&c, "t.conf", big, sizeof big, err, sizeof err), -1);
	cr_assert(strstr(err, "larger than"), "%s", err);
	bxd_conf_free(&c);
}

Test(config, too_many_settings_are_refused)
{
	size_t cap = (BXD_CONF_ITEMS_MAX + 2) * 12;
	char *s = malloc(cap), *p = s;
	for (int i = 0; i < BXD_CONF_ITEMS_MAX + 1; i++)
		p += sprintf(p, "a = %d\n", i % 10);
	parse_fails(s, "t.conf:4097: more than 4096 settings");
	free(s);
}

Test(config, booleans)
{
	cr_assert_eq(bxd_conf_bool("yes"), 1);
	cr_assert_eq(bxd_conf_bool("TRUE"), 1);
	cr_assert_eq(bxd_conf_bool("on"), 1);
	cr_assert_eq(bxd_conf_bool("1"), 1);
	cr_assert_eq(bxd_conf_bool("No"), 0);
	cr_assert_eq(bxd_conf_bool("off"), 0);
	cr_assert_eq(bxd_conf_bool("0"), 0);
	cr_assert_eq(bxd_conf_bool("maybe"), -1);
	cr_assert_eq(bxd_conf_bool("2"), -1);
}

static const struct option opts[] = {
        {"listen", required_argument, NULL, 1},  {"allow-origin", required_argument, NULL, 2},
        {"cookie-secure", no_argument, NULL, 3}, {"acl", required_argument, NULL, 4},
        {"config", required_argument, NULL, 5},  {NULL, 0, NULL, 0},
};
static const char *const deny[] = {"config", "help", NULL};

static bool skip_listen(void *arg, const char *name)
{
	cr_assert_str_eq(arg, "ctx");
	return strcmp(name, "listen") == 0;
}

Test(config, settings_become_arguments_with_their_lines)
{
	bxd_conf c = parse_ok("listen = 127.0.0.1:1\n"
	                      "allow-origin = https://a\n"
	                      "cookie-secure = no\n"
	                      "\n"
	                      "acl = /etc/acl file\n"
	                      "cookie-secure = on\n");
	char **argv, err[256];
	unsigned *lines;
	int argc;
	cr_assert_eq(bxd_conf_argv(&c, opts, deny, skip_listen, "ctx", "bayeuxd", &argv, &argc,
	                           &lines, err, sizeof err),
	             0, "%s", err);
	cr_assert_eq(argc, 4);
	cr_assert_str_eq(argv[0], "bayeuxd");
	cr_assert_str_eq(argv[1], "--allow-origin=https://a");
	cr_assert_eq(lines[1], 2);
	cr_assert_str_eq(argv[2], "--acl=/etc/acl file");
	cr_assert_eq(lines[2], 5);
	cr_assert_str_eq(argv[3], "--cookie-secure");
	cr_assert_eq(lines[3], 6);
	cr_assert_null(argv[4]);
	optind = 0;
	opterr = 0;
	cr_assert_eq(getopt_long(argc, argv, "", opts, NULL), 2);
	cr_assert_str_eq(optarg, "https://a");
	cr_assert_eq(getopt_long(argc, argv, "", opts, NULL), 4);
	cr_assert_str_eq(optarg, "/etc/acl file");
	cr_assert_eq(getopt_long(argc, argv, "", opts, NULL), 3);
	cr_assert_eq(getopt_long(argc, argv, "", opts, NULL), -1);
	free(argv);
	free(lines);
	bxd_conf_free(&c);
}

static void argv_fails(const char *text, const char *want)
{
	bxd_conf c = parse_ok(text);
	char **argv, err[256] = "";
	unsigned *lines;
	int argc;
	cr_assert_eq(bxd_conf_argv(&c, opts, deny, NULL, NULL, "bayeuxd", &argv, &argc, &lines, err,
	                           sizeof err),
	             -1, "accepted %s", text);
	cr_assert(strstr(err, want), "got '%s', want '%s'", err, want);
	bxd_conf_free(&c);
}

Test(config, unknown_denied_and_bad_boolean_names_say_file_line_and_why)
{
	argv_fails("listen = x\n\nlistn = y\n", "t.conf:3: unknown setting 'listn'");
	argv_fails("lis = y\n", "t.conf:1: unknown setting 'lis'"); /* no abbreviations */
	argv_fails("config = /etc/other.conf\n",
	           "t.conf:1: 'config' cannot be set in a config file");
	argv_fails("help = yes\n", "t.conf:1: 'help' cannot be set");
	argv_fails("cookie-secure = sure\n",
	           "t.conf:1: 'cookie-secure' takes yes or no, got 'sure'");
}

Test(config, read_says_why_a_file_cannot_be_read)
{
	bxd_conf c;
	char err[256];
	cr_assert_eq(bxd_conf_read(&c, "/nonexistent/bayeuxd.conf", err, sizeof err), -1);
	cr_assert_str_eq(err, "cannot read /nonexistent/bayeuxd.conf: No such file or directory");
	char path[] = "/tmp/bayeux-conf-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "timeout = 5\n", 12), 12);
	close(fd);
	cr_assert_eq(bxd_conf_read(&c, path, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(bxd_conf_last(&c, "timeout"), "5");
	bxd_conf_free(&c);
	unlink(path);
}
