/*
 * embed.c — a C program that embeds libbayeux (include/bayeux.h only):
 *
 *   - /service/echo answers each request to its sender only, with the
 *     request's data (CometD's service request/reply);
 *   - /time/tick gets {"epochMs":…,"iso":"…"} every --tick-ms from a thread
 *     of its own (bx_publish() may be called from any thread);
 *   - a session listener counts the clients online.
 *
 * Build: make (this file is built as examples/embed), or against an
 * installed library:  cc embed.c $(pkg-config --cflags --libs bayeux)
 * Run:   examples/embed [--port N] [--tick-ms N]; stop with Ctrl-C.
 */
#define _POSIX_C_SOURCE 200809L /* sigwait, nanosleep, gmtime_r under -std=c11 */

#include <bayeux.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_bool stopping;
static atomic_int online;

/* /service/echo: the reply goes to the sender only, same channel and id. */
static bool echo(void *arg, bx_message *m)
{
	(void)arg;
	size_t len = 0;
	const char *data = bx_message_data(m, &len);
	if (data)
		bx_reply(m, data, len);
	return true;
}

static void on_session(void *arg, bx_session *s, bool added)
{
	(void)arg;
	(void)s; /* its id is a bearer secret: never log it */
	int n = added ? atomic_fetch_add(&online, 1) + 1 : atomic_fetch_sub(&online, 1) - 1;
	fprintf(stderr, "embed: a client %s (%d online)\n", added ? "joined" : "left", n);
}

struct clock_args {
	bx_server *srv;
	long tick_ms;
};

static void *clock_thread(void *p)
{
	struct clock_args *a = p;
	while (!atomic_load(&stopping)) {
		struct timespec ts = {a->tick_ms / 1000, (a->tick_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		struct tm tm;
		gmtime_r(&now.tv_sec, &tm);
		char iso[32], json[128];
		strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
		int n = snprintf(json, sizeof json, "{\"epochMs\":%lld,\"iso\":\"%s\"}",
		                 (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, iso);
		int rc = bx_publish(a->srv, "/time/tick", json, (size_t)n);
		if (rc < 0)
			fprintf(stderr, "embed: publish failed: %s\n", bx_strerror(rc));
	}
	return NULL;
}

static long arg_number(const char *flag, const char *v, long min, long max)
{
	char *end;
	errno = 0;
	long n = v ? strtol(v, &end, 10) : 0;
	if (!v || errno || *end || n < min || n > max) {
		fprintf(stderr, "embed: %s must be a number from %ld to %ld\n", flag, min, max);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	bx_config cfg;
	bx_config_init(&cfg); /* 127.0.0.1:8080, /cometd, documented defaults */
	long tick_ms = 1000;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0)
			cfg.listen_port = (unsigned)arg_number("--port", argv[++i], 0, 65535);
		else if (strcmp(argv[i], "--tick-ms") == 0)
			tick_ms = arg_number("--tick-ms", argv[++i], 10, 3600000);
		else {
			fprintf(stderr, "usage: embed [--port N] [--tick-ms N]\n");
			return 2;
		}
	}

	/* Every thread (ours and the library's) inherits this mask: the signals
	 * are taken by sigwait() below. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	bx_server *srv;
	int rc = bx_server_new(&cfg, &srv);
	if (rc != 0) {
		fprintf(stderr, "embed: %s\n", bx_strerror(rc));
		return 1;
	}
	/* Hooks are registered before the server starts. */
	if ((rc = bx_server_add_listener(srv, "/service/echo", echo, NULL)) != 0 ||
	    (rc = bx_server_add_session_listener(srv, on_session, NULL)) != 0 ||
	    (rc = bx_server_start(srv)) != 0) {
		fprintf(stderr, "embed: %s\n", bx_strerror(rc));
		bx_server_free(srv);
		return 1;
	}
	fprintf(stderr, "embed: listening on http://%s:%u%s\n", cfg.listen_host,
	        bx_server_port(srv), cfg.path);

	struct clock_args ca = {srv, tick_ms};
	pthread_t clock;
	pthread_create(&clock, NULL, clock_thread, &ca);

	int sig;
	sigwait(&set, &sig);
	atomic_store(&stopping, true);
	pthread_join(clock, NULL);
	bx_server_stop(srv);
	bx_server_free(srv);
	fprintf(stderr, "embed: stopped\n");
	return 0;
}
