/*
 * ws-floor.c — the kernel's own cost of a WebSocket fan-out: a bare C loop
 * writing one 150-byte frame (a server text frame: 2-byte header and a
 * 148-byte Bayeux delivery) to each of N loopback TCP sockets, R rounds,
 * while a child process drains the other ends. Prints the writer's CPU
 * time (user + system of the writing thread only) and per write: no broker
 * can deliver over one socket per subscriber for less, so bench/compare
 * prints it beside bayeuxd's fan-out CPU.
 *
 *   bench/ws-floor [SOCKETS [ROUNDS [CPU]]]   (default 1000 200; CPU: pin the
 *   writer to this core, and the reader to the other)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double tv(struct timeval t)
{
	return (double)t.tv_sec + (double)t.tv_usec / 1e6;
}

static void pin(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof set, &set);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	int rounds = argc > 2 ? atoi(argv[2]) : 200;
	int cpu = argc > 3 ? atoi(argv[3]) : -1;
	if (n < 1 || n > 20000 || rounds < 1) {
		fprintf(stderr, "usage: ws-floor [SOCKETS 1..20000 [ROUNDS [CPU]]]\n");
		return 2;
	}
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);

	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 4096) != 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &al) != 0) {
		perror("listen");
		return 1;
	}
	int *srv = calloc((size_t)n, sizeof *srv), *cli = calloc((size_t)n, sizeof *cli);
	for (int i = 0; i < n; i++) {
		cli[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(cli[i], (struct sockaddr *)&a, sizeof a) != 0) {
			perror("connect");
			return 1;
		}
		srv[i] = accept(ls, NULL, NULL);
		int one = 1;
		setsockopt(srv[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	pid_t child = fork();
	if (child == 0) {
		/* The reader: drain every client socket until all are closed. */
		pin(cpu >= 0 ? !cpu : -1);
		int ep = epoll_create1(0);
		for (int i = 0; i < n; i++) {
			close(srv[i]);
			struct epoll_event e = {.events = EPOLLIN, .data.fd = cli[i]};
			epoll_ctl(ep, EPOLL_CTL_ADD, cli[i], &e);
		}
		int open = n;
		char buf[65536];
		struct epoll_event ev[256];
		while (open > 0) {
			int k = epoll_wait(ep, ev, 256, 5000);
			if (k <= 0)
				break;
			for (int i = 0; i < k; i++) {
				ssize_t r = read(ev[i].data.fd, buf, sizeof buf);
				if (r <= 0) {
					epoll_ctl(ep, EPOLL_CTL_DEL, ev[i].data.fd, NULL);
					close(ev[i].data.fd);
					open--;
				}
			}
		}
		_exit(0);
	}
	for (int i = 0; i < n; i++)
		close(cli[i]);
	pin(cpu);
	unsigned char frame[150];
	frame[0] = 0x81;
	frame[1] = 148;
	memset(frame + 2, 'x', sizeof frame - 2);
	struct rusage r0, r1;
	struct timespec w0, w1;
	getrusage(RUSAGE_THREAD, &r0);
	clock_gettime(CLOCK_MONOTONIC, &w0);
	long short_writes = 0;
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < n; i++) {
			ssize_t w = send(srv[i], frame, sizeof frame, MSG_NOSIGNAL);
			if (w != (ssize_t)sizeof frame)
				short_writes++;
		}
	}
	getrusage(RUSAGE_THREAD, &r1);
	clock_gettime(CLOCK_MONOTONIC, &w1);
	for (int i = 0; i < n; i++)
		close(srv[i]);
	int st;
	waitpid(child, &st, 0);
	double cpu_s = tv(r1.ru_utime) - tv(r0.ru_utime) + tv(r1.ru_stime) - tv(r0.ru_stime);
	double wall = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
	long writes = (long)n * rounds;
	printf("ws-floor: %d sockets x %d rounds = %ld writes of %zu bytes: CPU %.3f s "
	       "(user %.3f, sys %.3f), %.2f us a write, wall %.3f s%s\n",
	       n, rounds, writes, sizeof frame, cpu_s, tv(r1.ru_utime) - tv(r0.ru_utime),
	       tv(r1.ru_stime) - tv(r0.ru_stime), cpu_s * 1e6 / (double)writes, wall,
	       short_writes ? " (some writes were short)" : "");
	return 0;
}
