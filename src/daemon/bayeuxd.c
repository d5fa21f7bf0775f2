/*
 * bayeuxd.c — the daemon: command line, signals, and the server's life.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bayeux.h"
#include "core/settings.h"
#include "core/log.h"
#include "security/security.h"
#include "config.h"
#include "notify.h"
#include "reload.h"
#include "core/history.h"
#include "cluster/redis.h"

#define EXIT_USAGE 2

static void usage(FILE *f)
{
	fprintf(f, "Usage: bayeuxd [OPTION]...\n"
	           "A Bayeux (CometD) message broker: long polling for CometD and Faye clients.\n\n"
	           "  --config FILE        read settings from FILE: 'name = value' lines, names\n"
	           "                       are the long flags without dashes (man bayeuxd);\n"
	           "                       flags given here win over the file\n"
	           "  --listen HOST:PORT   address to serve (default 127.0.0.1:8080; port 0 picks\n"
	           "                       a free one; [::1]:8080 for IPv6)\n"
	           "  --metrics-listen HOST:PORT\n"
	           "                       serve GET /metrics (Prometheus) and GET /healthz on\n"
	           "                       this address too (the main one serves them as well);\n"
	           "                       /metrics answers loopback and the publish token only\n"
	           "  --path PATH          Bayeux endpoint; every path below it is the same\n"
	           "                       endpoint (default /cometd)\n"
	           "  --log-level LEVEL    error, warn, info or debug (default info)\n");
	for (size_t i = 0; i < bx_nlimits; i++) {
		const bx_limit *l = &bx_limits[i];
		char flag[64];
		snprintf(flag, sizeof flag, "--%s N", l->flag);
		fprintf(f, "  %-20s %s\n  %-20s (%s; default %lld, range %lld..%lld)\n", flag,
		        l->help, "", l->unit, (long long)l->def, (long long)l->min,
		        (long long)l->max);
	}
	fprintf(f, "  --publish-token-file FILE\n"
	           "                       let backends publish with no handshake (POST to the\n"
	           "                       endpoint with no clientId, or POST /publish/CHANNEL\n"
	           "                       with the JSON data as body) when they send\n"
	           "                       'Authorization: Bearer TOKEN'; TOKEN is FILE's content\n"
	           "                       (16 to 4096 characters; keep FILE mode 0600)\n"
	           "  --allow-local-publish\n"
	           "                       also let loopback clients publish so without a token\n"
	           "                       (not requests with an Origin header: browsers)\n");
	fprintf(f, "  --allow-origin ORIGIN\n"
	           "                       let pages of ORIGIN (e.g. https://app.example.com) use\n"
	           "                       the endpoint cross-origin (CORS, with credentials);\n"
	           "                       repeatable; '*' allows any origin (not the default:\n"
	           "                       none, same origin only). Callback polling (JSONP)\n"
	           "                       works from any origin without it\n"
	           "  --cookie-samesite Lax|Strict|None\n"
	           "                       SameSite of the BAYEUX_BROWSER cookie (default Lax;\n"
	           "                       None, for pages on another site, adds Secure)\n"
	           "  --cookie-secure      add Secure to the cookie (behind HTTPS)\n"
	           "  --web-root DIR       serve the files of DIR at / (GET and HEAD; index.html\n"
	           "                       for folders; nothing outside DIR)\n"
	           "  --web-mount PREFIX=DIR\n"
	           "                       serve DIR at URL PREFIX too (repeatable), e.g.\n"
	           "                       /vendor/cometd=node_modules/cometd\n");
	fprintf(f, "  --retain PATTERN=COUNT[,AGE]\n"
	           "                       keep the last COUNT messages (none older than AGE:\n"
	           "                       ms, s, m, h or d) of each channel PATTERN matches, for\n"
	           "                       replay (a subscribe's ext.replay) and GET\n"
	           "                       /history/CHANNEL; repeatable, the first match wins;\n"
	           "                       e.g. --retain '/chat/**=1000,24h'\n"
	           "  --store DIR          keep that history on disk (LMDB in DIR): it survives\n"
	           "                       restarts and a publish is acknowledged once synced;\n"
	           "                       without it history is kept in memory\n");
	fprintf(f, "  --redis URL          share publishes with the other nodes on this Redis:\n"
	           "                       redis://HOST[:PORT][/DB] or unix:/PATH (default: none,\n"
	           "                       one node); see README 'Clustering'\n"
	           "  --redis-prefix P     prefix of every Redis channel and key (default bayeux)\n"
	           "  --node-id NAME       this node's name in Redis and the logs (default\n"
	           "                       HOSTNAME-PID)\n");
	bx_security_usage(f);
	fprintf(f, "  --help               show this help and exit\n"
	           "  --version            show the version and exit\n\n"
	           "SIGINT or SIGTERM answers every held connect and exits (after --shutdown-delay:\n"
	           "/healthz answers 503 meanwhile). SIGHUP re-reads --config and the files of\n"
	           "--acl, --auth-secret-file, --publish-token-file and applies them with\n"
	           "--log-level, keeping every session.\n"
	           "'bayeuxd token --help' tells how to mint --auth hmac tokens.\n");
}

/* "FILE:LINE: " while parsing a setting of --config, else "". */
static char where[1100];

static void die_usage(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "bayeuxd: %s", where);
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, "\nTry 'bayeuxd --help'.\n");
	exit(EXIT_USAGE);
}

/* Parses the HOST:PORT of --flag (HOST may be [v6]) into host and *port. */
static void parse_hostport(const char *flag, const char *arg, char *host, size_t hostlen,
                           unsigned *port_out)
{
	const char *colon = strrchr(arg, ':');
	if (!colon || colon == arg)
		die_usage("--%s must be HOST:PORT, got '%s'", flag, arg);
	size_t n = (size_t)(colon - arg);
	if (n >= hostlen)
		die_usage("--%s host is too long: '%s'", flag, arg);
	memcpy(host, arg, n);
	host[n] = '\0';
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
		die_usage("--%s port must be between 0 and 65535, got '%s'", flag, colon + 1);
	*port_out = (unsigned)port;
}

static int parse_level(const char *s)
{
	static const char *names[] = {"error", "warn", "info", "debug"};
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	die_usage("--log-level must be error, warn, info or debug, got '%s'%s", s, "");
	return -1;
}

static void parse_limit(const bx_limit *l, const char *arg, bx_config *cfg)
{
	char *end;
	errno = 0;
	long long v = strtoll(arg, &end, 10);
	if (errno || *end || end == arg || v < l->min || v > l->max) {
		fprintf(stderr, "bayeuxd: %s--%s must be between %lld and %lld (%s), got '%s'\n",
		        where, l->flag, (long long)l->min, (long long)l->max, l->unit, arg);
		fprintf(stderr, "Try 'bayeuxd --help'.\n");
		exit(EXIT_USAGE);
	}
	bx_limit_set(cfg, l, v);
}

enum { OPT_PUBLISH_TOKEN_FILE = 900, OPT_ALLOW_LOCAL_PUBLISH };
enum { OPT_RETAIN = 660, OPT_STORE };
enum { OPT_REDIS = 500, OPT_REDIS_PREFIX, OPT_NODE_ID };
enum { OPT_AUTH = 700, OPT_AUTH_SECRET_FILE, OPT_ACL };
enum { OPT_ALLOW_ORIGIN = 800, OPT_SAMESITE, OPT_COOKIE_SECURE, OPT_WEB_ROOT, OPT_WEB_MOUNT };
/* Room for repeated --allow-origin and --web-mount flags. */
#define MAX_ORIGIN_FLAGS 64
#define MAX_MOUNT_FLAGS  16

static int parse_samesite(const char *s)
{
	static const char *names[] = {"Lax", "Strict", "None"};
	for (int i = 0; i < 3; i++)
		if (strcasecmp(s, names[i]) == 0)
			return i;
	die_usage("--cookie-samesite must be Lax, Strict or None, got '%s'%s", s, "");
	return -1;
}

/* Splits PREFIX=DIR (PREFIX starts with '/'). */
static void parse_mount(char *arg, bx_web_mount *m)
{
	char *eq = strchr(arg, '=');
	if (!eq || arg[0] != '/' || !eq[1])
		die_usage(
		        "--web-mount must be PREFIX=DIR with PREFIX starting with '/', got '%s'%s",
		        arg, "");
	*eq = '\0';
	m->prefix = arg;
	m->dir = eq + 1;
}

enum { OPT_METRICS_LISTEN = 600 };
enum { OPT_CONFIG = 650 };
enum { OPT_LISTEN = 1000, OPT_PATH, OPT_LOG, OPT_HELP, OPT_VERSION, OPT_LIMIT0 };

/* Reads the backend publish token from path into buf; exits with a
 * message when it cannot. */
static void read_token_file(const char *path, char *buf, size_t buflen)
{
	char err[512];
	if (bxd_read_token_file(path, buf, buflen, err, sizeof err) != 0)
		die_usage("%s%s", err, "");
}

/* Flags given on the command line, by index in opts (they win over the
 * config file). */
static const struct option *cli_opts;
static bool cli_given[128];

static bool given_on_cli(void *arg, const char *name)
{
	(void)arg;
	for (size_t i = 0; cli_opts[i].name; i++)
		if (cli_given[i] && strcmp(cli_opts[i].name, name) == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	bx_config cfg;
	bx_config_init(&cfg);
	static char host[256], metrics_host[256];
	static const char *origins[MAX_ORIGIN_FLAGS];
	static bx_web_mount mounts[MAX_MOUNT_FLAGS];
	static char token[4098]; /* BX_PUBLISH_TOKEN_MAX + a byte to see it is longer */
	static const char *retain[BX_RETAIN_MAX];
	bx_security_opts sec = {0};
	if (argc > 1 && strcmp(argv[1], "token") == 0)
		return bx_token_command(argc - 1, argv + 1);

	static struct option opts[128];
	size_t k = 0;
	opts[k++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
	opts[k++] = (struct option){"listen", required_argument, NULL, OPT_LISTEN};
	opts[k++] = (struct option){"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN};
	opts[k++] = (struct option){"path", required_argument, NULL, OPT_PATH};
	opts[k++] = (struct option){"log-level", required_argument, NULL, OPT_LOG};
	opts[k++] = (struct option){"allow-origin", required_argument, NULL, OPT_ALLOW_ORIGIN};
	opts[k++] = (struct option){"cookie-samesite", required_argument, NULL, OPT_SAMESITE};
	opts[k++] = (struct option){"cookie-secure", no_argument, NULL, OPT_COOKIE_SECURE};
	opts[k++] = (struct option){"web-root", required_argument, NULL, OPT_WEB_ROOT};
	opts[k++] = (struct option){"web-mount", required_argument, NULL, OPT_WEB_MOUNT};
	opts[k++] = (struct option){"publish-token-file", required_argument, NULL,
	                            OPT_PUBLISH_TOKEN_FILE};
	opts[k++] =
	        (struct option){"allow-local-publish", no_argument, NULL, OPT_ALLOW_LOCAL_PUBLISH};
	opts[k++] = (struct option){"retain", required_argument, NULL, OPT_RETAIN};
	opts[k++] = (struct option){"store", required_argument, NULL, OPT_STORE};
	opts[k++] = (struct option){"auth", required_argument, NULL, OPT_AUTH};
	opts[k++] =
	        (struct option){"auth-secret-file", required_argument, NULL, OPT_AUTH_SECRET_FILE};
	opts[k++] = (struct option){"acl", required_argument, NULL, OPT_ACL};
	opts[k++] = (struct option){"redis", required_argument, NULL, OPT_REDIS};
	opts[k++] = (struct option){"redis-prefix", required_argument, NULL, OPT_REDIS_PREFIX};
	opts[k++] = (struct option){"node-id", required_argument, NULL, OPT_NODE_ID};
	opts[k++] = (struct option){"help", no_argument, NULL, OPT_HELP};
	opts[k++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
	for (size_t i = 0; i < bx_nlimits; i++)
		opts[k++] = (struct option){bx_limits[i].flag, required_argument, NULL,
		                            OPT_LIMIT0 + (int)i};
	opts[k] = (struct option){0, 0, 0, 0};

	/* First pass: which flags the command line gives (they win over the
	 * file's lines of the same name) and --config. Errors are reported by
	 * the second pass. */
	int c, li = -1;
	opterr = 0;
	const char *config_path = NULL;
	cli_opts = opts;
	while ((c = getopt_long(argc, argv, "", opts, &li)) != -1) {
		if (c == '?' || li < 0)
			continue;
		cli_given[li] = true;
		if (c == OPT_CONFIG && config_path)
			die_usage("--config may be given once%s%s", "", "");
		if (c == OPT_CONFIG)
			config_path = optarg;
		li = -1;
	}
	/* The file's settings become arguments before the command line's. */
	/* Static: they live as long as the process (cfg points into them), and
	 * leak checkers see them when an error exits early. */
	static bxd_conf conf;
	static char **cargv, **nargv;
	static unsigned *clines;
	int cargc = 1;
	if (config_path) {
		char err[1024];
		static const char *const deny[] = {"config", "help", "version", NULL};
		if (bxd_conf_read(&conf, config_path, err, sizeof err) != 0 ||
		    bxd_conf_argv(&conf, opts, deny, given_on_cli, NULL, argv[0], &cargv, &cargc,
		                  &clines, err, sizeof err) != 0)
			die_usage("%s%s", err, "");
	}
	int nargc = cargc + argc - 1;
	nargv = calloc((size_t)nargc + 1, sizeof *nargv);
	if (!nargv)
		return 1;
	nargv[0] = argv[0];
	for (int i = 1; i < cargc; i++)
		nargv[i] = cargv[i];
	for (int i = 1; i < argc; i++)
		nargv[cargc + i - 1] = argv[i];
	const char *token_path = NULL;
	optind = 0; /* glibc: start over */
	while ((c = getopt_long(nargc, nargv, "", opts, NULL)) != -1) {
		/* Settings of the file are single "--name=value" arguments. */
		int at = optind - 1;
		if (at >= 1 && at < cargc)
			snprintf(where, sizeof where, "%s:%u: ", config_path, clines[at]);
		else
			where[0] = '\0';
		switch (c) {
		case OPT_CONFIG:
			break;
		case OPT_LISTEN:
			parse_hostport("listen", optarg, host, sizeof host, &cfg.listen_port);
			cfg.listen_host = host;
			break;
		case OPT_METRICS_LISTEN:
			parse_hostport("metrics-listen", optarg, metrics_host, sizeof metrics_host,
			               &cfg.metrics_port);
			cfg.metrics_host = metrics_host;
			break;
		case OPT_PATH:
			cfg.path = optarg;
			break;
		case OPT_LOG:
			cfg.log_level = parse_level(optarg);
			break;
		case OPT_ALLOW_ORIGIN:
			if (cfg.n_allow_origins == MAX_ORIGIN_FLAGS)
				die_usage("at most %s --allow-origin flags%s", "64", "");
			origins[cfg.n_allow_origins++] = optarg;
			cfg.allow_origins = origins;
			break;
		case OPT_SAMESITE:
			cfg.cookie_samesite = parse_samesite(optarg);
			break;
		case OPT_COOKIE_SECURE:
			cfg.cookie_secure = 1;
			break;
		case OPT_WEB_ROOT:
			cfg.web_root = optarg;
			break;
		case OPT_WEB_MOUNT:
			if (cfg.n_web_mounts == MAX_MOUNT_FLAGS)
				die_usage("at most %s --web-mount flags%s", "16", "");
			parse_mount(optarg, &mounts[cfg.n_web_mounts++]);
			cfg.web_mounts = mounts;
			break;
		case OPT_PUBLISH_TOKEN_FILE:
			read_token_file(optarg, token, sizeof token);
			cfg.publish_token = token;
			token_path = optarg;
			break;
		case OPT_ALLOW_LOCAL_PUBLISH:
			cfg.allow_local_publish = true;
			break;
		case OPT_RETAIN: {
			bx_retain_rule r;
			char rerr[256];
			if (cfg.n_retain == BX_RETAIN_MAX)
				die_usage("at most %s --retain flags%s", "64", "");
			if (bx_retain_parse(optarg, strlen(optarg), &r, rerr, sizeof rerr) != 0)
				die_usage("%s%s", rerr, "");
			retain[cfg.n_retain++] = optarg;
			cfg.retain = retain;
			break;
		}
		case OPT_STORE:
			cfg.store_dir = optarg;
			break;
		case OPT_AUTH:
			sec.auth = optarg;
			break;
		case OPT_AUTH_SECRET_FILE:
			sec.auth_secret_file = optarg;
			break;
		case OPT_ACL:
			sec.acl_file = optarg;
			break;
		case OPT_REDIS:
			cfg.redis = optarg;
			break;
		case OPT_REDIS_PREFIX:
			cfg.redis_prefix = optarg;
			break;
		case OPT_NODE_ID:
			cfg.node_id = optarg;
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("bayeuxd %s\n", BX_VERSION_STRING);
			return 0;
		case '?':
			if (optopt)
				die_usage("option '%s' needs a value%s", nargv[optind - 1], "");
			die_usage("unknown option '%s'%s", nargv[optind - 1], "");
			break;
		default:
			if (c >= OPT_LIMIT0 && c < OPT_LIMIT0 + (int)bx_nlimits)
				parse_limit(&bx_limits[c - OPT_LIMIT0], optarg, &cfg);
		}
	}
	where[0] = '\0';
	if (optind < nargc)
		die_usage("unexpected argument '%s'%s", nargv[optind], "");
	char err[1024];
	if (bx_config_check(&cfg, err, sizeof err) != 0)
		die_usage("%s%s", err, "");
	if (!cfg.redis && (cfg.redis_prefix || cfg.node_id))
		die_usage("%s needs --redis%s", cfg.node_id ? "--node-id" : "--redis-prefix", "");
	if (cfg.redis) {
		char rerr[512];
		bx_redis_opts ro = {.url = cfg.redis, .prefix = cfg.redis_prefix, .node_id = cfg.node_id};
		if (bx_redis_opts_check(&ro, rerr, sizeof rerr) != 0)
			die_usage("%s%s", rerr, "");
	}

	/* Signals are taken by sigwait() below, so every thread blocks them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	bx_server *srv;
	if (bx_server_new(&cfg, &srv) != 0)
		return 1;
	explicit_bzero(token, sizeof token); /* the server has its own copy */
	bx_security *security = NULL;
	int rc = bx_security_install(srv, &sec, &security, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "bayeuxd: %s\n", err);
		bx_server_free(srv);
		return rc == -BX_EINVAL ? EXIT_USAGE : 1;
	}
	if (sec.auth)
		bx_info("authentication: --auth hmac (handshakes need ext.auth.token)");
	if (sec.acl_file)
		bx_info("authorization: rules of --acl %s", sec.acl_file);
	rc = bx_server_start(srv);
	if (rc != 0) {
		bx_error("could not start: %s", bx_strerror(rc));
		bx_server_free(srv);
		bx_security_free(security);
		return 1;
	}
	bool v6 = strchr(cfg.listen_host, ':') && cfg.listen_host[0] != '[';
	bx_info("bayeuxd %s listening on http://%s%s%s:%u%s", BX_VERSION_STRING, v6 ? "[" : "",
	        cfg.listen_host, v6 ? "]" : "", bx_server_port(srv), cfg.path);
	if (cfg.web_root) {
		bool any = strcmp(cfg.listen_host, "*") == 0 ||
		           strcmp(cfg.listen_host, "0.0.0.0") == 0;
		bx_info("demo: open http://%s%s%s:%u/ in two browsers (files of %s)", v6 ? "[" : "",
		        any ? "127.0.0.1" : cfg.listen_host, v6 ? "]" : "", bx_server_port(srv),
		        cfg.web_root);
	}

	/* systemd (Type=notify): the listener is up. */
	char state[512];
	snprintf(state, sizeof state,
	         "READY=1\nSTATUS=listening on http://%s%s%s:%u%s\nMAINPID=%ld", v6 ? "[" : "",
	         cfg.listen_host, v6 ? "]" : "", bx_server_port(srv), cfg.path, (long)getpid());
	int nrc = bxd_notify(state);
	if (nrc < 0)
		bx_warn("cannot notify systemd at NOTIFY_SOCKET=%s: %s", getenv("NOTIFY_SOCKET"),
		        strerror(-nrc));

	bxd_reload reload = {.config_path = config_path,
	                     .opts = opts,
	                     .given = given_on_cli,
	                     .srv = srv,
	                     .sec = security};
	if (bxd_reload_init(&reload, sec.acl_file, sec.auth_secret_file, token_path, cfg.log_level,
	                    config_path ? &conf : NULL) != 0)
		bx_warn("out of memory: SIGHUP may not reload");

	int sig = 0;
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
		bxd_reload_run(&reload);
	bxd_notify("STOPPING=1\nSTATUS=stopping");
	bx_info("%s received: answering held connects and stopping",
	        sig == SIGINT ? "SIGINT" : "SIGTERM");
	bx_server_stop(srv);
	bx_server_free(srv);
	bx_security_free(security);
	bxd_reload_free(&reload);
	bxd_conf_free(&conf);
	free(cargv);
	free(clines);
	free(nargv);
	bx_info("stopped");
	return 0;
}
