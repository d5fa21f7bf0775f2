/*
 * histo-cost.c — what one publish-to-write observation costs (core/stats.h):
 * THREADS threads (default 1, then 2) each count N observations into one
 * shared histogram, as the HTTP threads do, and the time per observation is
 * printed. docs/BENCHMARKS.md, "What a /metrics scrape costs".
 *
 *   build/bench/histo-cost [N]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/stats.h"

static bx_histo h;
static uint64_t n = 20000000;

static void *run(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; i < n; i++)
		bx_histo_observe(&h, i & 4095); /* 0..4 ms: the first seven buckets */
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		n = strtoull(argv[1], NULL, 10);
	for (int threads = 1; threads <= 2; threads++) {
		pthread_t t[2];
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (int i = 0; i < threads; i++)
			pthread_create(&t[i], NULL, run, NULL);
		for (int i = 0; i < threads; i++)
			pthread_join(t[i], NULL);
		clock_gettime(CLOCK_MONOTONIC, &b);
		double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		printf("%d thread%s: %.1f ns per observation per thread\n", threads,
		       threads > 1 ? "s" : "", s * 1e9 / (double)n);
	}
	return 0;
}
