/*
 * http_publish.h — backend publishing over HTTP (issue 4, PROTOCOL.md §5):
 * who may publish with no clientId, and the POST /publish/<channel> form.
 * Part of the HTTP layer: only http*.c include this (and microhttpd.h).
 */
#ifndef BX_HTTP_PUBLISH_H
#define BX_HTTP_PUBLISH_H

#include <microhttpd.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "core/server.h"
#include "core/dispatch.h"
#include "http.h"

/* URL prefix of the plain publish form: POST /publish/<channel...>. */
#define BX_PUBLISH_PREFIX "/publish/"

/*
 * True when the request may publish with no clientId: it carries
 * "Authorization: Bearer <cfg.publish_token>" (compared in constant time),
 * or cfg.allow_local_publish is set and it comes from a loopback address
 * without an Origin header (so a web page the local user opens cannot use
 * it).
 */
bool bx_http_backend(bx_server *srv, struct MHD_Connection *conn);

/* True when authorization (an Authorization header's value, or NULL) is
 * "Bearer <cfg.publish_token>", compared in constant time; false when no
 * token is configured. /metrics uses the same check. */
bool bx_http_bearer_ok(bx_server *srv, const char *authorization);

/* True for an IPv4 127/8, IPv6 ::1 or v4-mapped 127/8 address. */
bool bx_http_loopback(const struct sockaddr *sa);

/* Queues a response of text (len bytes, copied) of Content-Type type, never
 * cached; a 405 also gets "Allow: <allow>". The backend endpoints
 * (POST /publish/, GET /history/) answer through it. */
enum MHD_Result bx_http_respond(struct MHD_Connection *conn, unsigned status, const char *type,
                                const char *allow, const char *text, size_t len);
/* Answers with a JSON error result {"successful":false,"error":…,"hint":…}
 * through bx_http_respond(). */
enum MHD_Result bx_http_fail(struct MHD_Connection *conn, unsigned status, const char *allow,
                             const char *error, const char *hint);

/* True when url is under BX_PUBLISH_PREFIX. */
bool bx_http_is_publish_url(const char *url);

/*
 * Answers POST /publish/<channel> whose body (len bytes) is the JSON data:
 * published as a backend's Bayeux publish, answered with the publish reply
 * object, HTTP 200 when successful and 4xx otherwise. too_big: the body was
 * over --max-body (413). On a retained channel the reply waits until the
 * message is durable: the request is parked with waker, *pending is set and
 * MHD_YES returned; once resumed, call bx_pending_finish() and
 * bx_http_publish_answer().
 */
enum MHD_Result bx_http_publish(bx_server *srv, struct MHD_Connection *conn, const char *method,
                                const char *url, const char *body, size_t len, bool too_big,
                                bx_waker waker, struct bx_pending **pending);
/* Answers a finished publish (res: the Bayeux reply array) and frees res. */
enum MHD_Result bx_http_publish_answer(struct MHD_Connection *conn, bx_response *res);

/* True when url is under /history/ (GET /history/<channel>?after=&limit=). */
bool bx_http_is_history_url(const char *url);
/* Answers GET /history/<channel>?after=ID&limit=N (authorized as a backend
 * publish is) with a JSON array of the retained messages after ID, each
 * with ext.replayId (http_history.c). */
enum MHD_Result bx_http_history(bx_server *srv, struct MHD_Connection *conn, const char *method,
                                const char *url);

#endif
