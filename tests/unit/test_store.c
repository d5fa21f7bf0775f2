/*
 * History store engines (src/store/memory.c, src/store/lmdb.c): one body per
 * behaviour, run against each engine through bx_store_ops only.
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bayeux.h"
#include "store/engines.h"

/*---- Opening engines -----------------------------------------------------------*/

static char dir[64];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void rm_dir(void)
{
	if (dir[0])
		nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	dir[0] = '\0';
}

typedef int (*opener)(bx_store *st, bool fresh);

static int open_memory(bx_store *st, bool fresh)
{
	(void)fresh;
	return bx_store_memory_open(st);
}

static int open_lmdb(bx_store *st, bool fresh)
{
	if (fresh) {
		rm_dir();
		strcpy(dir, "/tmp/bx-store-test-XXXXXX");
		cr_assert_not_null(mkdtemp(dir));
	}
	char err[256];
	int rc = bx_store_lmdb_open(dir, 64 << 20, true, st, err, sizeof err);
	cr_assert_eq(rc, 0, "lmdb open: %s", err);
	return rc;
}

/*---- Waiting for done --------------------------------------------------------------*/

typedef struct waiter {
	pthread_mutex_t m;
	pthread_cond_t c;
	int done, errors;
	uint64_t last_id; /* the id done gave last */
} waiter;

static waiter W = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void on_done(void *arg, int err, uint64_t id)
{
	waiter *w = arg;
	pthread_mutex_lock(&w->m);
	w->done++;
	w->last_id = id;
	if (err)
		w->errors++;
	pthread_cond_broadcast(&w->c);
	pthread_mutex_unlock(&w->m);
}

static void wait_done(waiter *w, int n)
{
	pthread_mutex_lock(&w->m);
	while (w->done < n)
		pthread_cond_wait(&w->c, &w->m);
	pthread_mutex_unlock(&w->m);
}

static void reset(void)
{
	W.done = W.errors = 0;
}

/* Appends one record and waits until it is durable; returns its id. */
static uint64_t put(bx_store *st, const char *ch, const char *json, int64_t t, uint64_t keep,
                    int64_t min_time)
{
	bx_store_rec r = {.channel = ch,
	                  .chlen = strlen(ch),
	                  .json = json,
	                  .len = strlen(json),
	                  .time_ms = t,
	                  .keep = keep,
	                  .min_time_ms = min_time};
	int before = W.done;
	cr_assert_eq(st->ops->append(st->self, &r, 1, on_done, &W), 0);
	wait_done(&W, before + 1);
	cr_assert_eq(W.errors, 0);
	cr_assert_eq(W.last_id, r.id, "done gives the id append set");
	return r.id;
}

typedef struct seen {
	uint64_t id[64];
	char json[64][32];
	int64_t t[64];
	size_t n;
} seen;

static int visit(void *arg, const bx_store_rec *r)
{
	seen *s = arg;
	cr_assert_lt(s->n, 64);
	s->id[s->n] = r->id;
	s->t[s->n] = r->time_ms;
	snprintf(s->json[s->n], sizeof s->json[0], "%.*s", (int)r->len, r->json);
	s->n++;
	return 0;
}

static seen read_all(bx_store *st, const char *ch, uint64_t after, size_t limit)
{
	seen s = {0};
	cr_assert_eq(st->ops->read_after(st->self, ch, strlen(ch), after, limit, visit, &s), 0);
	return s;
}

/*---- The bodies -----------------------------------------------------------------------*/

static void ids_per_channel(opener open)
{
	bx_store st;
	reset();
	open(&st, true);
	cr_expect_eq(put(&st, "/a", "{\"n\":1}", 1, 0, INT64_MIN), 1);
	cr_expect_eq(put(&st, "/a", "{\"n\":2}", 2, 0, INT64_MIN), 2);
	cr_expect_eq(put(&st, "/b", "{\"n\":3}", 3, 0, INT64_MIN), 1);
	cr_expect_eq(put(&st, "/a", "{\"n\":4}", 4, 0, INT64_MIN), 3);
	seen s = read_all(&st, "/a", 0, 0);
	cr_assert_eq(s.n, 3);
	cr_expect_eq(s.id[0], 1);
	cr_expect_eq(s.id[2], 3);
	cr_expect_str_eq(s.json[1], "{\"n\":2}");
	cr_expect_eq(s.t[2], 4);
	s = read_all(&st, "/a", 1, 0);
	cr_assert_eq(s.n, 2);
	cr_expect_eq(s.id[0], 2);
	s = read_all(&st, "/a", 0, 2);
	cr_expect_eq(s.n, 2, "limit");
	s = read_all(&st, "/a", 3, 0);
	cr_expect_eq(s.n, 0, "nothing after the newest");
	s = read_all(&st, "/nothing", 0, 0);
	cr_expect_eq(s.n, 0);
	/* A channel whose name is a prefix of another's reads only its own. */
	put(&st, "/ab", "{}", 5, 0, INT64_MIN);
	s = read_all(&st, "/a", 0, 0);
	cr_expect_eq(s.n, 3);
	st.ops->close(st.self);
}

static void count_limit(opener open)
{
	bx_store st;
	reset();
	open(&st, true);
	for (int i = 1; i <= 10; i++)
		put(&st, "/c", "{}", i, 3, INT64_MIN);
	seen s = read_all(&st, "/c", 0, 0);
	cr_assert_eq(s.n, 3);
	cr_expect_eq(s.id[0], 8);
	cr_expect_eq(s.id[2], 10);
	uint64_t o, n;
	st.ops->bounds(st.self, "/c", 2, &o, &n);
	cr_expect_eq(o, 8);
	cr_expect_eq(n, 10);
	st.ops->close(st.self);
}

static void age_limit(opener open)
{
	bx_store st;
	reset();
	open(&st, true);
	for (int i = 1; i <= 5; i++)
		put(&st, "/t", "{}", i * 100, 0, INT64_MIN);
	/* Appending at t=600 with nothing older than 350 kept. */
	put(&st, "/t", "{}", 600, 0, 350);
	seen s = read_all(&st, "/t", 0, 0);
	cr_assert_eq(s.n, 3);
	cr_expect_eq(s.id[0], 4);
	cr_expect_eq(s.t[0], 400);
	st.ops->close(st.self);
}

static void trim_and_bounds(opener open)
{
	bx_store st;
	reset();
	open(&st, true);
	uint64_t o = 9, n = 9;
	st.ops->bounds(st.self, "/x", 2, &o, &n);
	cr_expect_eq(o, 0);
	cr_expect_eq(n, 0);
	for (int i = 1; i <= 4; i++)
		put(&st, "/x", "{}", i, 0, INT64_MIN);
	cr_expect_eq(st.ops->trim(st.self, "/x", 2, 1, INT64_MIN), 0);
	st.ops->bounds(st.self, "/x", 2, &o, &n);
	cr_expect_eq(o, 4);
	cr_expect_eq(n, 4);
	/* Everything trimmed: the newest id stays, and the next continues. */
	cr_expect_eq(st.ops->trim(st.self, "/x", 2, 0, 1000), 0);
	st.ops->bounds(st.self, "/x", 2, &o, &n);
	cr_expect_eq(o, 0);
	cr_expect_eq(n, 4);
	cr_expect_eq(put(&st, "/x", "{}", 5, 0, INT64_MIN), 5);
	st.ops->close(st.self);
}

static int count_channel(void *arg, const char *ch, size_t len)
{
	int *n = arg;
	cr_expect(len == 2 && ch[0] == '/');
	(*n)++;
	return 0;
}

static void channels(opener open)
{
	bx_store st;
	reset();
	open(&st, true);
	put(&st, "/p", "{}", 1, 0, INT64_MIN);
	put(&st, "/q", "{}", 1, 0, INT64_MIN);
	put(&st, "/p", "{}", 1, 0, INT64_MIN);
	int n = 0;
	st.ops->channels(st.self, count_channel, &n);
	cr_expect_eq(n, 2);
	st.ops->close(st.self);
}

/* Many threads appending at once: every append is done once, without
 * error, and each channel's ids are 1..N with none lost or given twice. */
#define THREADS 8
#define PER     200
static bx_store shared;

static void *appender(void *arg)
{
	long t = (long)arg;
	char ch[16];
	snprintf(ch, sizeof ch, "/c%ld", t % 2);
	for (int i = 0; i < PER; i++) {
		bx_store_rec r = {.channel = ch,
		                  .chlen = strlen(ch),
		                  .json = "{}",
		                  .len = 2,
		                  .time_ms = i,
		                  .min_time_ms = INT64_MIN};
		cr_assert_eq(shared.ops->append(shared.self, &r, 1, on_done, &W), 0);
	}
	return NULL;
}

static void concurrent(opener open)
{
	reset();
	open(&shared, true);
	pthread_t th[THREADS];
	for (long i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, appender, (void *)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	wait_done(&W, THREADS * PER);
	cr_expect_eq(W.errors, 0);
	for (int c = 0; c < 2; c++) {
		char ch[16];
		snprintf(ch, sizeof ch, "/c%d", c);
		uint64_t o, n;
		shared.ops->bounds(shared.self, ch, strlen(ch), &o, &n);
		cr_expect_eq(o, 1);
		cr_expect_eq(n, THREADS / 2 * PER);
	}
	shared.ops->close(shared.self);
}

#define BOTH(name)                                                                                 \
	Test(memory, name)                                                                         \
	{                                                                                          \
		name(open_memory);                                                                 \
	}                                                                                          \
	Test(lmdb, name, .fini = rm_dir)                                                           \
	{                                                                                          \
		name(open_lmdb);                                                                   \
	}

BOTH(ids_per_channel)
BOTH(count_limit)
BOTH(age_limit)
BOTH(trim_and_bounds)
BOTH(channels)
BOTH(concurrent)

/*---- LMDB only: what survives a restart ------------------------------------------------*/

Test(lmdb, reopened_store_keeps_records_and_ids, .fini = rm_dir)
{
	bx_store st;
	reset();
	open_lmdb(&st, true);
	put(&st, "/r", "{\"n\":1}", 1, 2, INT64_MIN);
	put(&st, "/r", "{\"n\":2}", 2, 2, INT64_MIN);
	put(&st, "/r", "{\"n\":3}", 3, 2, INT64_MIN);
	st.ops->close(st.self);
	open_lmdb(&st, false);
	seen s = read_all(&st, "/r", 0, 0);
	cr_assert_eq(s.n, 2);
	cr_expect_str_eq(s.json[1], "{\"n\":3}");
	cr_expect_eq(put(&st, "/r", "{}", 4, 2, INT64_MIN), 4, "ids continue");
	/* All trimmed, closed, reopened: ids still continue. */
	st.ops->trim(st.self, "/r", 2, 0, 1000);
	st.ops->close(st.self);
	open_lmdb(&st, false);
	cr_expect_eq(read_all(&st, "/r", 0, 0).n, 0);
	cr_expect_eq(put(&st, "/r", "{}", 5, 2, INT64_MIN), 5);
	st.ops->close(st.self);
}

Test(lmdb, unwritable_folder_is_a_clear_error)
{
	bx_store st;
	char err[256] = "";
	int rc = bx_store_lmdb_open("/proc/no-such/place", 0, true, &st, err, sizeof err);
	cr_expect_neq(rc, 0);
	cr_expect(strstr(err, "--store /proc/no-such/place") != NULL, "%s", err);
}
