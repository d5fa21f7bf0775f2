/* bx_swap (src/core/swap.c): readers never see a value after the writer
 * has been handed it back to free. Readers and a writer race for a while;
 * each value carries a magic number that its free poisons, and ASan builds
 * see any use after free. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/swap.h"

#define LIVE 0x5eedu
#define DEAD 0xdeadu

typedef struct val {
	atomic_uint magic;
	unsigned n;
} val;

static bx_swap sw;
static atomic_bool done;
static atomic_ulong reads, bad;

static void *reader(void *arg)
{
	(void)arg;
	while (!atomic_load(&done)) {
		unsigned t;
		val *v = bx_swap_enter(&sw, &t);
		for (int i = 0; i < 50; i++)
			if (atomic_load(&v->magic) != LIVE)
				atomic_fetch_add(&bad, 1);
		bx_swap_leave(&sw, t);
		atomic_fetch_add(&reads, 1);
	}
	return NULL;
}

static val *new_val(unsigned n)
{
	val *v = malloc(sizeof *v);
	atomic_init(&v->magic, LIVE);
	v->n = n;
	return v;
}

Test(swap, readers_never_hold_a_value_the_writer_got_back)
{
	bx_swap_init(&sw, new_val(0));
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, reader, NULL);
	unsigned replaced = 0;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* The readers are running before the writer starts, and the race goes
	 * on until both sides did plenty (3 s at most). */
	struct timespec pause = {0, 1000000};
	while (atomic_load(&reads) == 0)
		nanosleep(&pause, NULL);
	do {
		val *old = bx_swap_replace(&sw, new_val(++replaced));
		cr_assert_eq(old->n, replaced - 1, "values come back in order");
		atomic_store(&old->magic, DEAD);
		free(old);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((replaced < 2000 || atomic_load(&reads) < 100000) && now.tv_sec - t0.tv_sec < 3);
	atomic_store(&done, true);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&bad), 0, "a reader saw a freed value");
	cr_assert_gt(atomic_load(&reads), 0);
	cr_assert_gt(replaced, 10);
	val *last = bx_swap_destroy(&sw);
	cr_assert_eq(last->n, replaced);
	free(last);
}

Test(swap, a_value_may_be_null_and_peek_sees_it)
{
	bx_swap s;
	bx_swap_init(&s, NULL);
	cr_assert_null(bx_swap_peek(&s));
	unsigned t;
	cr_assert_null(bx_swap_enter(&s, &t));
	bx_swap_leave(&s, t);
	int x;
	cr_assert_null(bx_swap_replace(&s, &x));
	cr_assert_eq(bx_swap_peek(&s), &x);
	cr_assert_eq(bx_swap_destroy(&s), &x);
}
