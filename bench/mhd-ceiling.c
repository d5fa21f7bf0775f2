/*
 * mhd-ceiling: the fastest answer libmicrohttpd gives on this machine.
 *
 * Reads each request body and answers at once with a fixed JSON array.  No parsing, no state: bench/compare drives it and bayeuxd with the
 * same wrk script, so the gap between the two is what bayeuxd itself costs.
 * Same MHD setup as a broker would use: epoll, one thread per core, turbo.
 *
 * Build: gcc -O2 -Wall -Wextra -o bench/mhd-ceiling bench/mhd-ceiling.c -lmicrohttpd
 * Run:   bench/mhd-ceiling --port 18090 [--threads N]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* One array that reads as a successful reply to whatever bayeux-load sends
 * (handshake, connect, subscribe, publish ack), so both wrk and the
 * generator's connect loop can drive this server. */
static const char reply[] =
	"[{\"channel\":\"/meta/handshake\",\"successful\":true,\"clientId\":\"c1\"},"
	"{\"channel\":\"/meta/connect\",\"successful\":true},"
	"{\"channel\":\"/meta/subscribe\",\"successful\":true},"
	"{\"channel\":\"/bench/0\",\"id\":\"1\",\"successful\":true}]";
static struct MHD_Response *response; /* shared by every request, never freed */
static volatile sig_atomic_t stop;

/* Consumes the body; once it is all in, queues the shared response. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
	(void)cls, (void)url, (void)method, (void)version, (void)upload_data;
	if (*req_cls == NULL) { /* first call: headers only */
		*req_cls = (void *)1;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	return MHD_queue_response(conn, MHD_HTTP_OK, response);
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	int port = 18090;
	long threads = sysconf(_SC_NPROCESSORS_ONLN);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			port = atoi(argv[++i]);
			if (port <= 0 || port > 65535) {
				fprintf(stderr, "mhd-ceiling: --port must be 1..65535, got '%s'\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			threads = atol(argv[++i]);
			if (threads < 1 || threads > 256) {
				fprintf(stderr, "mhd-ceiling: --threads must be 1..256, got '%s'\n", argv[i]);
				return 2;
			}
		} else {
			fprintf(stderr, "usage: mhd-ceiling [--port PORT] [--threads N]\n"
			                "Answers every request on 127.0.0.1:PORT at once with a small JSON array.\n");
			return strcmp(argv[i], "--help") ? 2 : 0;
		}
	}

	/* Many connections need many descriptors: soft limit up to the hard one. */
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	unsigned int conn_limit = rl.rlim_cur > 64 ? (unsigned int)(rl.rlim_cur - 32) : 32;

	response = MHD_create_response_from_buffer(sizeof reply - 1, (void *)reply,
	                                           MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        "application/json;charset=utf-8");

	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO, (uint16_t)port, NULL, NULL,
		on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads, MHD_OPTION_CONNECTION_LIMIT,
		conn_limit, MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "mhd-ceiling: cannot listen on 127.0.0.1:%d\n", port);
		return 1;
	}
	printf("ready mhd-ceiling http://127.0.0.1:%d/ threads=%ld pid=%d\n", port, threads,
	       (int)getpid());
	fflush(stdout);

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (!stop)
		pause();
	MHD_stop_daemon(d);
	MHD_destroy_response(response);
	return 0;
}
