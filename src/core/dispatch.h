/*
 * dispatch.h — what a transport hands the core: one request (a batch of
 * messages) in, one response out, possibly parked with the transport's
 * waker (dispatch.c routes each message to its verb).
 */
#ifndef BX_DISPATCH_H
#define BX_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "session.h"
#include "waker.h"

struct bx_server;

/* Connection types (PROTOCOL.md §2); a server enables a set of them. */
enum bx_conn_type {
	BX_CT_LONG_POLLING = 1 << 0,
	BX_CT_CALLBACK_POLLING = 1 << 1,
	BX_CT_EVENTSOURCE = 1 << 2, /* Server-Sent Events (stream.c, src/http/sse.c) */
	BX_CT_WEBSOCKET = 1 << 3,   /* WebSocket (src/http/ws_loop.c) */
};

typedef struct bx_request {
	const char *body; /* the JSON text (not necessarily NUL-terminated) */
	size_t len;
	const char *browser; /* BAYEUX_BROWSER cookie value, or NULL */
	unsigned transport;  /* enum bx_conn_type of the wire it came on */
	bx_waker waker;      /* how to hold it; suspend NULL = never hold */
	/* The transport authorized this request to publish with no clientId
	 * (a backend: bearer token or allowed loopback; PROTOCOL.md §5). */
	bool backend;
	const char *peer; /* the client's address as text, or NULL: no limits per
	                     address (limits.c) */
} bx_request;

typedef struct bx_response {
	int status;                      /* HTTP status */
	bx_buf body;                     /* a JSON array for 200; a short text otherwise */
	bx_hold *hold;                   /* non-NULL: held; call bx_hold_finish once resumed */
	struct bx_pending *pending;      /* non-NULL: parked until its publishes are durable;
	                                    call bx_pending_finish once resumed (durable.h) */
	char set_browser[BX_ID_LEN + 1]; /* non-empty: set this BAYEUX_BROWSER cookie */
} bx_response;

void bx_response_init(bx_response *res);
void bx_response_free(bx_response *res);

/* Processes one request. On return res is either complete (hold NULL) or
 * the request was parked (hold non-NULL, transport suspended). */
void bx_dispatch(struct bx_server *srv, const bx_request *req, bx_response *res);
/* Builds the reply of a released hold into res and frees the hold
 * (meta_connect.c). */
void bx_hold_finish(struct bx_server *srv, bx_hold *hold, bx_response *res);
/* Frees a hold whose transport went away (released or never resumed). */
void bx_hold_abandon(struct bx_server *srv, bx_hold *hold);

#endif
