/*
 * peers.h — limits per client address (limits.c): sessions held and
 * handshakes per second. The core knows addresses only as text the
 * transport gives (bx_request.peer).
 */
#ifndef BX_PEERS_H
#define BX_PEERS_H

#include <stddef.h>
#include <stdint.h>

struct bx_server;

/* Longest address text kept (an IPv6 address with scope fits). */
#define BX_PEER_MAX 64

/* Errors of a refused handshake (docs/SECURITY.md, "Limits"). */
#define BX_ERR_HANDSHAKE_RATE  "429::too_many_handshakes"
#define BX_ERR_SESSIONS_PER_IP "503::too_many_sessions_per_ip"

typedef struct bx_peers bx_peers;

bx_peers *bx_peers_new(void);
void bx_peers_free(bx_peers *p);

/* Admits one more session from addr (NULL, "" or a loopback address: not
 * limited). Returns
 * NULL and counts the session (undo with bx_peer_release()), or the error
 * text when addr is over --max-handshakes-per-ip or --max-sessions-per-ip. */
const char *bx_peer_admit(struct bx_server *srv, const char *addr, int64_t now);
/* Uncounts a session admitted by bx_peer_admit(). */
void bx_peer_release(struct bx_server *srv, const char *addr);
/* Sessions counted for addr now (tests, stats). */
size_t bx_peer_sessions(struct bx_server *srv, const char *addr);

#endif
