/*
 * limits.c — limits per client address (docs/SECURITY.md, "Limits"):
 * sessions held by one address (--max-sessions-per-ip) and handshakes one
 * address may make per second (--max-handshakes-per-ip).
 *
 * The address is the TCP peer's. Loopback addresses are not limited: behind
 * a reverse proxy on the same host every client has the proxy's address,
 * and the proxy limits per client (docs/SECURITY.md has an nginx example).
 *
 * One hash table of addresses, under one mutex: it is touched once per
 * handshake and once per session removal, never per message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "limits.h"

typedef struct peer_ent {
	struct peer_ent *next;
	size_t sessions;  /* live sessions created from this address */
	double tokens;    /* handshake bucket: refills max_handshakes_per_ip a second */
	int64_t refilled; /* when tokens was last brought up to date (ms) */
	bool primed;      /* tokens and refilled are set */
	char addr[BX_PEER_MAX];
} peer_ent;

struct bx_peers {
	pthread_mutex_t lock;
	peer_ent **buckets;
	size_t nbuckets, count;
};

#define PEERS_BUCKETS 1024

bx_peers *bx_peers_new(void)
{
	bx_peers *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->buckets = calloc(PEERS_BUCKETS, sizeof *p->buckets);
	if (!p->buckets) {
		free(p);
		return NULL;
	}
	p->nbuckets = PEERS_BUCKETS;
	pthread_mutex_init(&p->lock, NULL);
	return p;
}

void bx_peers_free(bx_peers *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nbuckets; i++) {
		peer_ent *e = p->buckets[i];
		while (e) {
			peer_ent *n = e->next;
			free(e);
			e = n;
		}
	}
	free(p->buckets);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* The entry of addr, created when `create`; NULL when absent or on OOM.
 * Caller holds the lock. */
static peer_ent *lookup(bx_peers *p, const char *addr, bool create, peer_ent ***slot)
{
	peer_ent **pp = &p->buckets[bx_hash(addr, strlen(addr)) & (p->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->addr, addr) == 0) {
			*slot = pp;
			return *pp;
		}
	if (!create)
		return NULL;
	peer_ent *e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	snprintf(e->addr, sizeof e->addr, "%s", addr);
	*pp = e;
	*slot = pp;
	p->count++;
	return e;
}

/* An entry with no session and a full bucket says nothing: drop it, so
 * the table holds only addresses that are active. Caller holds the lock. */
static void maybe_drop(bx_peers *p, peer_ent **slot, unsigned rate, int64_t now)
{
	peer_ent *e = *slot;
	if (e->sessions == 0 && (rate == 0 || !e->primed || now - e->refilled >= 1000)) {
		*slot = e->next;
		free(e);
		p->count--;
	}
}

/* Loopback clients are not limited: on this host that is a reverse proxy
 * (every client would share its address) or a local test. */
static bool loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
	       strncmp(addr, "::ffff:127.", 11) == 0;
}

const char *bx_peer_admit(bx_server *srv, const char *addr, int64_t now)
{
	bx_peers *p = srv->peers;
	size_t max = srv->cfg.max_sessions_per_ip;
	unsigned rate = srv->cfg.max_handshakes_per_ip;
	if (!p || !addr || !addr[0] || loopback(addr) || (max == 0 && rate == 0))
		return NULL;
	const char *err = NULL;
	pthread_mutex_lock(&p->lock);
	/* Forget idle addresses sharing the bucket, so addresses that came
	 * once (and were perhaps refused) do not pile up. */
	peer_ent **pp = &p->buckets[bx_hash(addr, strlen(addr)) & (p->nbuckets - 1)];
	while (*pp) {
		peer_ent *x = *pp;
		if (x->sessions == 0 && (!x->primed || now - x->refilled >= 1000) &&
		    strcmp(x->addr, addr) != 0)
			maybe_drop(p, pp, rate, now);
		else
			pp = &x->next;
	}
	peer_ent **slot;
	peer_ent *e = lookup(p, addr, true, &slot);
	if (!e) {
		pthread_mutex_unlock(&p->lock);
		return NULL; /* out of memory: do not refuse for that */
	}
	if (rate) {
		if (!e->primed) {
			e->tokens = rate;
			e->primed = true;
		} else if (now > e->refilled) {
			e->tokens += (double)(now - e->refilled) * rate / 1000.0;
			if (e->tokens > rate)
				e->tokens = rate;
		}
		e->refilled = now;
		if (e->tokens < 1.0)
			err = BX_ERR_HANDSHAKE_RATE;
	}
	if (!err && max && e->sessions >= max)
		err = BX_ERR_SESSIONS_PER_IP;
	if (!err) {
		if (rate)
			e->tokens -= 1.0;
		e->sessions++;
	}
	pthread_mutex_unlock(&p->lock);
	return err;
}

void bx_peer_release(bx_server *srv, const char *addr)
{
	bx_peers *p = srv->peers;
	if (!p || !addr || !addr[0])
		return;
	pthread_mutex_lock(&p->lock);
	peer_ent **slot;
	peer_ent *e = lookup(p, addr, false, &slot);
	if (e && e->sessions > 0) {
		e->sessions--;
		maybe_drop(p, slot, srv->cfg.max_handshakes_per_ip, bx_now(srv));
	}
	pthread_mutex_unlock(&p->lock);
}

size_t bx_peer_sessions(bx_server *srv, const char *addr)
{
	bx_peers *p = srv->peers;
	if (!p || !addr)
		return 0;
	pthread_mutex_lock(&p->lock);
	peer_ent **slot;
	peer_ent *e = lookup(p, addr, false, &slot);
	size_t n = e ? e->sessions : 0;
	pthread_mutex_unlock(&p->lock);
	return n;
}
