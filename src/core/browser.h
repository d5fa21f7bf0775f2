/*
 * browser.h — held connects per BAYEUX_BROWSER id (PROTOCOL.md §4). The
 * core knows a browser only as the opaque id the transport read.
 */
#ifndef BX_BROWSER_H
#define BX_BROWSER_H

#include <pthread.h>
#include <stddef.h>

struct bx_server;

/*---- Held connects per browser (browser.c, PROTOCOL.md §4) -----------------*/

struct bx_browser_ent;

/* Held connects per BAYEUX_BROWSER id; its lock is taken after a session's. */
typedef struct bx_browsers {
	pthread_mutex_t lock;
	struct bx_browser_ent **buckets;
	size_t nbuckets, count;
} bx_browsers;

enum bx_browser_hold_result {
	BX_BROWSER_UNCOUNTED = 0, /* no browser id, no limit, or OOM: hold uncounted */
	BX_BROWSER_COUNTED,       /* counted: call bx_browser_release() when it ends */
	BX_BROWSER_FULL,          /* the browser holds its limit already: do not hold */
};

void bx_browsers_init(bx_browsers *b);
void bx_browsers_destroy(bx_browsers *b);
/* Counts one more held connect for browser unless it is at the limit
 * (cfg.max_sessions_per_browser; 0 = no limit). Returns enum
 * bx_browser_hold_result. */
int bx_browser_hold(struct bx_server *srv, const char *browser);
/* Uncounts a held connect counted by bx_browser_hold(). */
void bx_browser_release(struct bx_server *srv, const char *browser);
/* Held connects counted for browser now (for tests and stats). */
unsigned bx_browser_held(struct bx_server *srv, const char *browser);

#endif
