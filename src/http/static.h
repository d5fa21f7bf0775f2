/*
 * static.h — static files over HTTP (static.c), for http.c only: the core
 * never includes microhttpd.h.
 */
#ifndef BX_STATIC_H
#define BX_STATIC_H

#include <microhttpd.h>

#include "core/server.h"
#include "core/dispatch.h"
#include "http.h"

/* True when the server serves static files at all (--web-root/--web-mount). */
bool bx_static_enabled(const bx_server *srv);

/* Answers a request for url (already percent-decoded by libmicrohttpd) from
 * the folder mounted at the longest matching prefix: the file, index.html
 * for a folder, a redirect to add a folder's trailing '/', 404 (nothing
 * there, outside the folder, hidden, or no prefix matches), or 405 for
 * methods other than GET and HEAD. */
enum MHD_Result bx_static_serve(bx_server *srv, struct MHD_Connection *conn, const char *url,
                                const char *method);

#endif
