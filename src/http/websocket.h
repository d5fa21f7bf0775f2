/*
 * websocket.h — the WebSocket transport (PROTOCOL.md §9): libmicrohttpd
 * upgrades the request (websocket.c), then bayeuxd owns the socket: a few
 * epoll loops (ws_loop.c) serve every upgraded socket, wslay frames it
 * (RFC 6455), and each text frame is a batch for the core's bx_dispatch().
 * A socket bound to a session is that session's sink: a queued message is
 * pushed at once.
 */
#ifndef BX_HTTP_WEBSOCKET_H
#define BX_HTTP_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bx_server;

/* Length of a Sec-WebSocket-Accept value (base64 of 20 bytes). */
#define BX_WS_ACCEPT_LEN 28

/* SHA-1 (ws_accept.c): only for the opening handshake. */
void bx_sha1(const void *data, size_t len, unsigned char out[20]);
/* True when key looks like a Sec-WebSocket-Key: base64 of 16 bytes. */
bool bx_ws_key_ok(const char *key);
/* Sec-WebSocket-Accept for key (RFC 6455 §4.2.2), NUL-terminated. */
void bx_ws_accept(const char *key, char out[BX_WS_ACCEPT_LEN + 1]);

/*---- Socket loops (ws_loop.c) ------------------------------------------------*/

typedef struct bx_ws bx_ws;

/* What the upgrade knew about the client, copied by bx_ws_adopt(). */
typedef struct bx_ws_peer {
	const char *browser; /* BAYEUX_BROWSER cookie, or NULL */
	const char *addr;    /* client address as text, or NULL */
	bool backend;        /* may publish with no clientId (backend.c) */
	/* Called once on the loop's thread when the socket is done (after
	 * which fd must not be used): MHD_upgrade_action(urh, CLOSE), or
	 * close() for a test's socket. */
	void (*done)(void *arg, int fd);
	void *done_arg;
} bx_ws_peer;

/* Starts nloops epoll loops (0: one per core); NULL on failure. */
bx_ws *bx_ws_new(struct bx_server *srv, unsigned nloops);
/* Takes over a connected socket; extra: bytes already read after the
 * request's header (copied). Returns 0, or -1 (then done() was not called:
 * the caller closes fd). */
int bx_ws_adopt(bx_ws *ws, int fd, const void *extra, size_t extra_len, const bx_ws_peer *peer);
/* Closes every socket (status 1001, after what is queued) and waits up to
 * wait_ms for them to be gone. */
void bx_ws_shutdown(bx_ws *ws, int64_t wait_ms);
/* Stops the loops (closing what is left) and frees everything. */
void bx_ws_free(bx_ws *ws);
/* Sockets open now. */
size_t bx_ws_count(const bx_ws *ws);
/* Of those, how many hold a wslay context (~9 KiB; idle ones shed it). */
size_t bx_ws_contexts(const bx_ws *ws);

/*---- The upgrade (websocket.c), for http.c ---------------------------------------*/

#ifdef MHD_VERSION
/* True when the request asks for a WebSocket (Upgrade: websocket). */
bool bx_ws_wanted(struct MHD_Connection *conn);
/* Answers it: 101 and the socket to the loops, or 400/403/426 with a reason. */
enum MHD_Result bx_ws_serve(struct bx_server *srv, struct MHD_Connection *conn,
                            const char *method, const char *version);
#endif

#endif
