/*
 * transport_sse.h — Server-Sent Events over HTTP (transport_sse.c), for
 * http.c only: the core never includes microhttpd.h.
 */
#ifndef BX_TRANSPORT_SSE_H
#define BX_TRANSPORT_SSE_H

#include <microhttpd.h>
#include <stdbool.h>

#include "core/server.h"
#include "core/dispatch.h"
#include "http.h"

/* The plain SSE endpoint, below the mount: <path>/sse?subscribe=CHANNEL. */
#define BX_SSE_PLAIN "/sse"

/* True when a GET of url (under the mount) asks for an event stream: the
 * plain endpoint, or Accept: text/event-stream (Faye's <path>/<clientId>).
 * False when --sse 0. */
bool bx_sse_wanted(bx_server *srv, struct MHD_Connection *conn, const char *url);

/* Answers such a GET: opens the stream and queues its response, or answers
 * 4xx/503 with a text saying why. origin is an allowed Origin to echo
 * (CORS), or NULL. */
enum MHD_Result bx_sse_serve(bx_server *srv, struct MHD_Connection *conn, const char *url,
                             const char *origin);

#endif
