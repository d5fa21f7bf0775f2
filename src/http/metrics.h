/*
 * metrics.h — GET /metrics (Prometheus text format 0.0.4) and GET /healthz,
 * on the main listener and, with --metrics-listen, on a listener of their
 * own (a second small libmicrohttpd daemon). Part of the HTTP layer.
 */
#ifndef BX_HTTP_METRICS_H
#define BX_HTTP_METRICS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "core/server.h"

#define BX_METRICS_URL "/metrics"
#define BX_HEALTH_URL  "/healthz"

/* Appends every metric in Prometheus's text format to out. Reads atomics and
 * /proc/self only: takes no lock of the broker. */
void bx_metrics_format(bx_server *srv, bx_buf *out);

/* Who may read /metrics: a loopback peer whose request did not come through
 * a proxy (proxied: it carries X-Forwarded-For, X-Real-IP or Forwarded), or
 * anyone whose Authorization header is "Bearer <publish token>", the check
 * of backend publishing. */
bool bx_metrics_allowed(bx_server *srv, const struct sockaddr *peer, const char *authorization,
                        bool proxied);

/* Healthy: serving, not shutting down, and the cluster bus (if any) is
 * reachable. Otherwise *why says what is wrong. */
bool bx_server_healthy(bx_server *srv, const char **why);

/* True when url is one of ours. */
bool bx_metrics_url(const char *url);

/* Answers GET/HEAD /metrics or /healthz (405 for other methods). */
enum MHD_Result bx_metrics_serve(bx_server *srv, struct MHD_Connection *conn, const char *url,
                                 const char *method);

/* The listener of --metrics-listen (http.c keeps it in its struct bx_http). */
typedef struct bx_mlisten bx_mlisten;

/* Opens the metrics listener on cfg.metrics_host:cfg.metrics_port. Returns
 * 0 and sets *out (NULL when metrics_host is NULL: none asked), or
 * -BX_ELISTEN (logged) or -BX_ENOMEM. */
int bx_metrics_listen_start(bx_server *srv, bx_mlisten **out);
/* Its port (useful after port 0), or 0 for NULL. */
unsigned bx_metrics_listen_port(const bx_mlisten *ml);
/* Closes it (NULL is ignored). */
void bx_metrics_listen_stop(bx_mlisten *ml);

#endif
