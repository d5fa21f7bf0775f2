/*
 * ack-load.c — acknowledged publishes per second and ack latency: N
 * publishers (one thread and one keep-alive connection each) POST the JSON
 * data to /publish/<channel> one after the other, each waiting for its ack
 * (the HTTP 200 reply) before the next, for D seconds after a warm-up.
 * Prints one JSON line: acks, acks/s, p50/p99/max ack latency in ms, errors.
 *
 *   gcc -O2 -pthread -o bench/ack-load bench/ack-load.c
 *   bench/ack-load --port 8080 --channel /bench/a --publishers 100 --duration 10
 *
 * The broker must let loopback publish (--allow-local-publish). Loopback only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port = 8080;
static const char *channel = "/bench/a";
static int publishers = 100;
static double duration = 10, warmup = 2;
static atomic_bool measuring, stopping;
static atomic_uint_fast64_t errors;

typedef struct worker {
	pthread_t th;
	int id;
	uint32_t *lat_us; /* measured latencies */
	size_t n, cap;
} worker;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads one HTTP response (headers + Content-Length body); returns the
 * status, or -1 when the connection failed. */
static int read_response(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	char *end = NULL;
	while (!end) {
		if (len == cap - 1)
			return -1;
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r <= 0)
			return -1;
		len += (size_t)r;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	int status = atoi(buf + 9);
	const char *cl = strcasestr(buf, "\r\nContent-Length:");
	size_t body = cl ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
	size_t have = len - (size_t)(end + 4 - buf);
	while (have < body) {
		char tmp[4096];
		size_t want = body - have < sizeof tmp ? body - have : sizeof tmp;
		ssize_t r = read(fd, tmp, want);
		if (r <= 0)
			return -1;
		have += (size_t)r;
	}
	return status;
}

static void *run(void *arg)
{
	worker *w = arg;
	int fd = dial();
	char req[1024], buf[16384];
	for (uint64_t i = 0; !atomic_load(&stopping); i++) {
		if (fd < 0) {
			atomic_fetch_add(&errors, 1);
			usleep(10000);
			fd = dial();
			continue;
		}
		char body[128];
		int bl = snprintf(body, sizeof body,
		                  "{\"w\":%d,\"i\":%llu,\"pad\":\"0123456789abcdef\"}", w->id,
		                  (unsigned long long)i);
		int rl = snprintf(req, sizeof req,
		                  "POST /publish%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		                  "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		                  channel, bl, body);
		int64_t t0 = now_ns();
		if (write(fd, req, (size_t)rl) != rl || read_response(fd, buf, sizeof buf) != 200) {
			atomic_fetch_add(&errors, 1);
			close(fd);
			fd = -1;
			continue;
		}
		int64_t dt = now_ns() - t0;
		if (atomic_load(&measuring)) {
			if (w->n == w->cap) {
				w->cap = w->cap ? w->cap * 2 : 4096;
				w->lat_us = realloc(w->lat_us, w->cap * sizeof *w->lat_us);
				if (!w->lat_us)
					abort();
			}
			w->lat_us[w->n++] = (uint32_t)(dt / 1000);
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--channel"))
			channel = argv[i + 1];
		else if (!strcmp(argv[i], "--publishers"))
			publishers = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--duration"))
			duration = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--warmup"))
			warmup = atof(argv[i + 1]);
		else {
			fprintf(stderr,
			        "usage: ack-load [--port P] [--channel /c] [--publishers N] "
			        "[--duration S] [--warmup S]\n");
			return 2;
		}
	}
	if (publishers < 1 || publishers > 2000 || duration <= 0 || duration > 600) {
		fprintf(stderr, "ack-load: 1..2000 publishers, 0..600 s\n");
		return 2;
	}
	worker *w = calloc((size_t)publishers, sizeof *w);
	for (int i = 0; i < publishers; i++) {
		w[i].id = i;
		pthread_create(&w[i].th, NULL, run, &w[i]);
	}
	usleep((useconds_t)(warmup * 1e6));
	atomic_store(&measuring, true);
	int64_t t0 = now_ns();
	usleep((useconds_t)(duration * 1e6));
	atomic_store(&measuring, false);
	double secs = (double)(now_ns() - t0) / 1e9;
	atomic_store(&stopping, true);
	size_t total = 0;
	for (int i = 0; i < publishers; i++) {
		pthread_join(w[i].th, NULL);
		total += w[i].n;
	}
	uint32_t *all = malloc((total ? total : 1) * sizeof *all);
	size_t k = 0;
	for (int i = 0; i < publishers; i++) {
		memcpy(all + k, w[i].lat_us, w[i].n * sizeof *all);
		k += w[i].n;
		free(w[i].lat_us);
	}
	qsort(all, total, sizeof *all, cmp_u32);
	double p50 = total ? all[total / 2] / 1000.0 : 0;
	double p99 = total ? all[(size_t)((double)total * 0.99)] / 1000.0 : 0;
	double mx = total ? all[total - 1] / 1000.0 : 0;
	printf("{\"publishers\":%d,\"seconds\":%.2f,\"acks\":%zu,\"acks_per_s\":%.0f,"
	       "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,\"errors\":%llu}\n",
	       publishers, secs, total, (double)total / secs, p50, p99, mx,
	       (unsigned long long)atomic_load(&errors));
	free(all);
	free(w);
	return 0;
}
