// router.c — the subscription trie (PROTOCOL.md §5).
//
// A node stands for a channel prefix, one segment per level. A subscription
// to /a/b is kept in node(/a/b)->exact, to /a/* in node(/a)->one, to /a/**
// in node(/a)->any. Matching /a/b/c walks root → a → b → c once:
//   - every node passed before the last segment contributes `any`
//     (/** and /a/** and /a/b/** all match /a/b/c);
//   - the node before the last segment contributes `one` (/a/b/*);
//   - the node of the full name contributes `exact`.
// Non-matches: /a/* does not match /a nor /a/b/c; /a/** does not match /a.
//
// Readers (publishes) share a read lock; subscribe and unsubscribe take the
// write lock. A session matched by several of its subscriptions is
// collected once.
//
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "server.h"
#include "bus.h"

typedef struct bx_subset {
	bx_session **v;
	size_t n, cap;
} bx_subset;

struct bx_rnode {
	char *seg;
	size_t seglen;
	bx_rnode *parent;
	bx_rnode **kids; /* open addressing with linear probing; cap is 0 or 2^k */
	size_t nkids, kidcap;
	bx_subset exact, one, any;
};

/*---- Sets of sessions ------------------------------------------------------*/

/* Adds s; the caller knows it is not there yet (see session_has_sub). */
static int subset_add(bx_subset *set, bx_session *s)
{
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 4;
		bx_session **v = realloc(set->v, cap * sizeof *v);
		if (!v)
			return -BX_ENOMEM;
		set->v = v;
		set->cap = cap;
	}
	set->v[set->n++] = s;
	return 0;
}

static bool subset_del(bx_subset *set, const bx_session *s)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i] == s) {
			set->v[i] = set->v[--set->n];
			return true;
		}
	return false;
}

/*---- Nodes -----------------------------------------------------------------*/

static bx_rnode *node_new(bx_rnode *parent, const char *seg, size_t n)
{
	bx_rnode *x = calloc(1, sizeof *x);
	if (!x)
		return NULL;
	x->seg = malloc(n + 1);
	if (!x->seg) {
		free(x);
		return NULL;
	}
	memcpy(x->seg, seg, n);
	x->seg[n] = '\0';
	x->seglen = n;
	x->parent = parent;
	return x;
}

static bx_rnode *kid_find(const bx_rnode *x, const char *seg, size_t n)
{
	if (!x->kidcap)
		return NULL;
	size_t mask = x->kidcap - 1;
	for (size_t i = bx_hash(seg, n) & mask;; i = (i + 1) & mask) {
		bx_rnode *k = x->kids[i];
		if (!k)
			return NULL;
		if (k->seglen == n && memcmp(k->seg, seg, n) == 0)
			return k;
	}
}

static void kid_put(bx_rnode **kids, size_t cap, bx_rnode *k)
{
	size_t mask = cap - 1;
	size_t i = bx_hash(k->seg, k->seglen) & mask;
	while (kids[i])
		i = (i + 1) & mask;
	kids[i] = k;
}

static int kid_add(bx_rnode *x, bx_rnode *k)
{
	if ((x->nkids + 1) * 2 > x->kidcap) {
		size_t cap = x->kidcap ? x->kidcap * 2 : 4;
		bx_rnode **kids = calloc(cap, sizeof *kids);
		if (!kids)
			return -BX_ENOMEM;
		for (size_t i = 0; i < x->kidcap; i++)
			if (x->kids[i])
				kid_put(kids, cap, x->kids[i]);
		free(x->kids);
		x->kids = kids;
		x->kidcap = cap;
	}
	kid_put(x->kids, x->kidcap, k);
	x->nkids++;
	return 0;
}

/* Deletes k from x's table, shifting later entries of its probe run back. */
static void kid_del(bx_rnode *x, bx_rnode *k)
{
	size_t mask = x->kidcap - 1;
	size_t i = bx_hash(k->seg, k->seglen) & mask;
	while (x->kids[i] != k)
		i = (i + 1) & mask;
	x->kids[i] = NULL;
	for (size_t j = (i + 1) & mask; x->kids[j]; j = (j + 1) & mask) {
		bx_rnode *m = x->kids[j];
		x->kids[j] = NULL;
		kid_put(x->kids, x->kidcap, m);
	}
	x->nkids--;
}

static bool node_empty(const bx_rnode *x)
{
	return x->nkids == 0 && x->exact.n == 0 && x->one.n == 0 && x->any.n == 0;
}

static void node_free(bx_rnode *x)
{
	for (size_t i = 0; i < x->kidcap; i++)
		if (x->kids[i])
			node_free(x->kids[i]);
	free(x->kids);
	free(x->exact.v);
	free(x->one.v);
	free(x->any.v);
	free(x->seg);
	free(x);
}

/* Frees x and its now-empty ancestors (never the root). */
static void prune(bx_rnode *x)
{
	while (x->parent && node_empty(x)) {
		bx_rnode *p = x->parent;
		kid_del(p, x);
		node_free(x);
		x = p;
	}
}

/*
 * Finds the node and set for pattern; creates missing nodes when create.
 * Returns the set or NULL; *nodep gets the node.
 */
static bx_subset *locate(bx_router *r, const char *pattern, size_t len, bool create,
                         bx_rnode **nodep)
{
	const char *seg[BX_CHANNEL_MAX_DEPTH];
	size_t seglen[BX_CHANNEL_MAX_DEPTH];
	size_t n = bx_channel_split(pattern, len, seg, seglen);
	int kind = 0; /* 0 exact, 1 one, 2 any */
	if (n && seglen[n - 1] == 1 && seg[n - 1][0] == '*')
		kind = 1, n--;
	else if (n && seglen[n - 1] == 2 && seg[n - 1][0] == '*' && seg[n - 1][1] == '*')
		kind = 2, n--;
	bx_rnode *x = r->root;
	for (size_t i = 0; i < n; i++) {
		bx_rnode *k = kid_find(x, seg[i], seglen[i]);
		if (!k) {
			if (!create)
				return NULL;
			k = node_new(x, seg[i], seglen[i]);
			if (!k)
				return NULL;
			if (kid_add(x, k) != 0) {
				node_free(k);
				prune(x);
				return NULL;
			}
		}
		x = k;
	}
	*nodep = x;
	return kind == 0 ? &x->exact : kind == 1 ? &x->one : &x->any;
}

/*---- API -------------------------------------------------------------------*/

int bx_router_init(bx_router *r)
{
	r->root = node_new(NULL, "", 0);
	if (!r->root)
		return -BX_ENOMEM;
	pthread_rwlock_init(&r->lock, NULL);
	return 0;
}

void bx_router_destroy(bx_router *r)
{
	if (!r->root)
		return;
	node_free(r->root);
	r->root = NULL;
	pthread_rwlock_destroy(&r->lock);
}

static bool session_has_sub(const bx_session *s, const char *p, size_t len)
{
	for (size_t i = 0; i < s->nsubs; i++)
		if (strlen(s->subs[i]) == len && memcmp(s->subs[i], p, len) == 0)
			return true;
	return false;
}

int bx_router_subscribe(bx_router *r, bx_session *s, const char *pattern, size_t len)
{
	int rc = -BX_ENOMEM;
	pthread_rwlock_wrlock(&r->lock);
	if (s->unrouted) {
		rc = -BX_ESTATE;
		goto out;
	}
	if (session_has_sub(s, pattern, len)) {
		rc = 0;
		goto out;
	}
	if (s->srv && s->nsubs >= s->srv->cfg.max_subscriptions) {
		rc = -BX_EREJECTED; /* --max-subscriptions */
		goto out;
	}
	if (s->nsubs == s->subcap) {
		size_t cap = s->subcap ? s->subcap * 2 : 4;
		char **v = realloc(s->subs, cap * sizeof *v);
		if (!v)
			goto out;
		s->subs = v;
		s->subcap = cap;
	}
	char *copy = strndup(pattern, len);
	if (!copy)
		goto out;
	bx_rnode *x = NULL;
	bx_subset *set = locate(r, pattern, len, true, &x);
	if (!set || subset_add(set, s) != 0) {
		if (x)
			prune(x);
		free(copy);
		goto out;
	}
	s->subs[s->nsubs++] = copy;
	/* The pattern's first local subscriber: this node wants it from the
	 * others (bus.h). Under the write lock, so on/off arrive in order. */
	if (set->n == 1 && s->srv && s->srv->bus)
		s->srv->bus->ops->interest(s->srv->bus->self, pattern, len, true, NULL, NULL);
	rc = 0;
out:
	pthread_rwlock_unlock(&r->lock);
	return rc;
}

/* Removes pattern from the trie for s; caller holds the write lock. */
static void detach(bx_router *r, bx_session *s, const char *pattern, size_t len)
{
	bx_rnode *x = NULL;
	bx_subset *set = locate(r, pattern, len, false, &x);
	if (set && subset_del(set, s)) {
		if (set->n == 0 && s->srv && s->srv->bus) /* its last one */
			s->srv->bus->ops->interest(s->srv->bus->self, pattern, len, false, NULL, NULL);
		prune(x);
	}
}

bool bx_router_unsubscribe(bx_router *r, bx_session *s, const char *pattern, size_t len)
{
	bool had = false;
	pthread_rwlock_wrlock(&r->lock);
	for (size_t i = 0; i < s->nsubs; i++) {
		if (strlen(s->subs[i]) == len && memcmp(s->subs[i], pattern, len) == 0) {
			detach(r, s, pattern, len);
			free(s->subs[i]);
			s->subs[i] = s->subs[--s->nsubs];
			had = true;
			break;
		}
	}
	pthread_rwlock_unlock(&r->lock);
	return had;
}

void bx_router_unsubscribe_all(bx_router *r, bx_session *s)
{
	pthread_rwlock_wrlock(&r->lock);
	for (size_t i = 0; i < s->nsubs; i++) {
		detach(r, s, s->subs[i], strlen(s->subs[i]));
		free(s->subs[i]);
	}
	s->nsubs = 0;
	s->unrouted = true;
	pthread_rwlock_unlock(&r->lock);
}

static int add_all(bx_sessvec *out, const bx_subset *set)
{
	if (!set->n)
		return 0;
	if (out->n + set->n > out->cap) {
		size_t cap = out->cap ? out->cap : 16;
		while (cap < out->n + set->n)
			cap *= 2;
		bx_session **v = realloc(out->v, cap * sizeof *v);
		if (!v)
			return -BX_ENOMEM;
		out->v = v;
		out->cap = cap;
	}
	for (size_t i = 0; i < set->n; i++) {
		bx_session_ref(set->v[i]);
		out->v[out->n++] = set->v[i];
	}
	return 0;
}

static int ptr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (bx_session *const *)a;
	uintptr_t y = (uintptr_t) * (bx_session *const *)b;
	return x < y ? -1 : x > y;
}

void bx_router_match(bx_router *r, const char *channel, size_t len, bx_sessvec *out)
{
	const char *seg[BX_CHANNEL_MAX_DEPTH];
	size_t seglen[BX_CHANNEL_MAX_DEPTH];
	size_t n = bx_channel_split(channel, len, seg, seglen);
	size_t sources = 0; /* how many non-empty sets fed out: 1 means no duplicates */

	pthread_rwlock_rdlock(&r->lock);
	bx_rnode *x = r->root;
	size_t i = 0;
	for (; i < n && x; i++) {
		sources += x->any.n != 0;
		add_all(out, &x->any);
		if (i == n - 1) {
			sources += x->one.n != 0;
			add_all(out, &x->one);
		}
		x = kid_find(x, seg[i], seglen[i]);
	}
	if (x && i == n) {
		sources += x->exact.n != 0;
		add_all(out, &x->exact);
	}
	pthread_rwlock_unlock(&r->lock);

	/* One copy per subscriber, however many of its subscriptions matched. */
	if (sources > 1 && out->n > 1) {
		qsort(out->v, out->n, sizeof *out->v, ptr_cmp);
		size_t w = 1;
		for (size_t k = 1; k < out->n; k++) {
			if (out->v[k] == out->v[w - 1])
				bx_session_unref(out->v[k]);
			else
				out->v[w++] = out->v[k];
		}
		out->n = w;
	}
}

size_t bx_router_deliver(bx_router *r, const char *channel, size_t len, bx_msg *m)
{
	bx_sessvec subs = {0};
	bx_router_match(r, channel, len, &subs);
	for (size_t i = 0; i < subs.n; i++)
		bx_session_deliver(subs.v[i], m);
	size_t n = subs.n;
	bx_sessvec_release(&subs);
	return n;
}

void bx_sessvec_release(bx_sessvec *v)
{
	for (size_t i = 0; i < v->n; i++)
		bx_session_unref(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = v->cap = 0;
}

bool bx_router_is_empty(bx_router *r)
{
	pthread_rwlock_rdlock(&r->lock);
	bool empty = node_empty(r->root);
	pthread_rwlock_unlock(&r->lock);
	return empty;
}
