/*
 * http.h — the HTTP layer as the library sees it (src/lib/server.c starts
 * and stops it) and the pieces its transports share. Everything that speaks
 * libmicrohttpd lives in src/http/; the core is reached through
 * core/dispatch.h (requests in, responses out, the waker) and nothing else
 * here is known to it.
 */
#ifndef BX_HTTP_H
#define BX_HTTP_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "bayeux.h"
#include "core/buf.h"

struct bx_server;

/*---- The HTTP transports (http.c, callback.c, cors.c, static.c) ------------------------------------------*/

/* Longest JSONP callback name accepted (PROTOCOL.md §6). */
#define BX_JSONP_CALLBACK_MAX 64

/* True when name is a JSONP callback we call: at most 64 characters of
 * [A-Za-z0-9_$.], not starting with a digit or '.'. */
bool bx_jsonp_callback_ok(const char *name);
/* Appends the callback-polling body (a comment, then name(json);) to out,
 * with U+2028 and U+2029 escaped (callback.c). */
void bx_jsonp_wrap(bx_buf *out, const char *name, const char *json, size_t len);

/* Copies and checks cfg's allowed origins into srv->cors; 0, -BX_EINVAL
 * (logged) or -BX_ENOMEM. bx_cors_free() undoes it, also after a failure. */
int bx_cors_init(struct bx_server *srv, const bx_config *cfg);
void bx_cors_free(struct bx_server *srv);
/* True when a page of origin (the request's Origin header) may read our
 * replies cross-origin. */
bool bx_cors_allowed(const struct bx_server *srv, const char *origin);

/* Resolves and copies cfg's web root and mounts into srv->web; 0,
 * -BX_EINVAL (logged: not a folder) or -BX_ENOMEM. bx_static_free() undoes
 * it, also after a failure. */
int bx_static_init(struct bx_server *srv, const bx_config *cfg);
void bx_static_free(struct bx_server *srv);

struct MHD_Connection;
struct bx_ws;
/* Queues a plain answer: len bytes of data (mode as for
 * MHD_create_response_from_buffer; MUST_FREE data is freed on failure too),
 * Content-Type type, "Cache-Control: no-cache, no-store" when no_cache,
 * nosniff, and "Allow: GET, HEAD" on a 405. */
enum MHD_Result bx_http_answer(struct MHD_Connection *conn, unsigned status, const char *type,
                               void *data, size_t len, enum MHD_ResponseMemoryMode mode,
                               bool no_cache);
/* The client's address as text in buf, or NULL (limits.c counts by it). */
const char *bx_http_peer_text(struct MHD_Connection *conn, char *buf, size_t n);
/* The WebSocket loops of a started server, or NULL (websocket.h). */
struct bx_ws *bx_http_ws(struct bx_server *srv);

int bx_http_start(struct bx_server *srv);
unsigned bx_http_port(struct bx_server *srv);
/* Stops accepting; returns once held replies were sent or ~1.5 s passed. */
void bx_http_quiesce(struct bx_server *srv);
void bx_http_stop(struct bx_server *srv);

#endif
