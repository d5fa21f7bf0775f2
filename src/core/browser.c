/*
 * browser.c — held connects per browser (PROTOCOL.md §4, CometD's
 * maxSessionsPerBrowser).
 *
 * A browser is known by its BAYEUX_BROWSER cookie. Every tab of a browser
 * shares the browser's few HTTP connections per host, so a browser may hold
 * at most max_sessions_per_browser connects at a time; the connect of one
 * more tab is answered at once with "multiple-clients" advice and that tab
 * polls at the multi-session interval instead.
 *
 * The counts live in a small chained hash table keyed by browser id with its
 * own mutex, taken last (after a session lock; see the lock order in
 * core.h). An entry exists only while its count is above zero.
 */
#include <stdlib.h>
#include <string.h>

#include "server.h"

struct bx_browser_ent {
	char id[BX_ID_LEN + 1];
	unsigned held;
	struct bx_browser_ent *next;
};

/* Browser ids are ours (BX_ID_LEN characters) or shorter foreign cookies. */
static size_t browser_hash(const char *id)
{
	return bx_hash(id, strnlen(id, BX_ID_LEN));
}

void bx_browsers_init(bx_browsers *b)
{
	pthread_mutex_init(&b->lock, NULL);
	b->buckets = NULL;
	b->nbuckets = b->count = 0;
}

void bx_browsers_destroy(bx_browsers *b)
{
	for (size_t i = 0; i < b->nbuckets; i++) {
		struct bx_browser_ent *e = b->buckets[i];
		while (e) {
			struct bx_browser_ent *next = e->next;
			free(e);
			e = next;
		}
	}
	free(b->buckets);
	b->buckets = NULL;
	b->nbuckets = b->count = 0;
	pthread_mutex_destroy(&b->lock);
}

/* Doubles the bucket array; caller holds the lock. False on OOM. */
static bool browsers_grow(bx_browsers *b)
{
	size_t n = b->nbuckets ? b->nbuckets * 2 : 256;
	struct bx_browser_ent **nb = calloc(n, sizeof *nb);
	if (!nb)
		return false;
	for (size_t i = 0; i < b->nbuckets; i++) {
		struct bx_browser_ent *e = b->buckets[i];
		while (e) {
			struct bx_browser_ent *next = e->next;
			size_t k = browser_hash(e->id) & (n - 1);
			e->next = nb[k];
			nb[k] = e;
			e = next;
		}
	}
	free(b->buckets);
	b->buckets = nb;
	b->nbuckets = n;
	return true;
}

int bx_browser_hold(struct bx_server *srv, const char *browser)
{
	unsigned limit = srv->cfg.max_sessions_per_browser;
	if (!browser || !browser[0] || limit == 0)
		return BX_BROWSER_UNCOUNTED;
	bx_browsers *b = &srv->browsers;
	int ret = BX_BROWSER_UNCOUNTED;
	pthread_mutex_lock(&b->lock);
	struct bx_browser_ent *e = NULL;
	if (b->nbuckets) {
		e = b->buckets[browser_hash(browser) & (b->nbuckets - 1)];
		while (e && strcmp(e->id, browser) != 0)
			e = e->next;
	}
	if (e) {
		if (e->held >= limit) {
			ret = BX_BROWSER_FULL;
		} else {
			e->held++;
			ret = BX_BROWSER_COUNTED;
		}
	} else if ((b->count < b->nbuckets || browsers_grow(b)) &&
	           (e = calloc(1, sizeof *e)) != NULL) {
		/* Out of memory leaves the connect uncounted rather than refused. */
		memcpy(e->id, browser, strnlen(browser, BX_ID_LEN));
		e->held = 1;
		size_t k = browser_hash(e->id) & (b->nbuckets - 1);
		e->next = b->buckets[k];
		b->buckets[k] = e;
		b->count++;
		ret = BX_BROWSER_COUNTED;
	}
	pthread_mutex_unlock(&b->lock);
	return ret;
}

void bx_browser_release(struct bx_server *srv, const char *browser)
{
	bx_browsers *b = &srv->browsers;
	pthread_mutex_lock(&b->lock);
	if (b->nbuckets) {
		struct bx_browser_ent **pp = &b->buckets[browser_hash(browser) & (b->nbuckets - 1)];
		while (*pp && strcmp((*pp)->id, browser) != 0)
			pp = &(*pp)->next;
		struct bx_browser_ent *e = *pp;
		if (e && --e->held == 0) {
			*pp = e->next;
			free(e);
			b->count--;
		}
	}
	pthread_mutex_unlock(&b->lock);
}

unsigned bx_browser_held(struct bx_server *srv, const char *browser)
{
	bx_browsers *b = &srv->browsers;
	unsigned n = 0;
	pthread_mutex_lock(&b->lock);
	if (b->nbuckets) {
		struct bx_browser_ent *e = b->buckets[browser_hash(browser) & (b->nbuckets - 1)];
		while (e && strcmp(e->id, browser) != 0)
			e = e->next;
		n = e ? e->held : 0;
	}
	pthread_mutex_unlock(&b->lock);
	return n;
}
