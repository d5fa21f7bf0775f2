/*
 * websocket.c — the WebSocket opening handshake over libmicrohttpd (RFC 6455
 * §4.2): a GET with "Upgrade: websocket" on the mount or a path under it is
 * answered 101 with MHD_create_response_for_upgrade(); the socket then goes
 * to the loops of ws_loop.c, and back to libmicrohttpd
 * (MHD_upgrade_action(CLOSE)) when it is done.
 *
 * Refused: --websocket 0 (400, the client falls back to long polling), a
 * version other than 13 (426), a missing or malformed key (400), and an
 * Origin that is neither the request's own host nor allowed by
 * --allow-origin (403: cross-site WebSocket hijacking, a page of another
 * site would act with the user's cookie).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "http/backend.h"
#include "http/http.h"
#include "http/websocket.h"

/* True when the comma-separated header value contains token (any case). */
static bool header_has(const char *value, const char *token)
{
	size_t tl = strlen(token);
	const char *p = value;
	while (p && *p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *te = e;
		while (te > p && (te[-1] == ' ' || te[-1] == '\t'))
			te--;
		if ((size_t)(te - p) == tl && strncasecmp(p, token, tl) == 0)
			return true;
		p = e;
	}
	return false;
}

bool bx_ws_wanted(struct MHD_Connection *conn)
{
	const char *up = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade");
	return up && header_has(up, "websocket");
}

/* True when origin (scheme://host[:port]) names the host the request was
 * sent to (its Host header): the page is the broker's own. */
static bool same_origin(const char *origin, const char *host)
{
	if (!origin || !host)
		return false;
	const char *p = strstr(origin, "://");
	if (!p)
		return false;
	p += 3;
	return strcasecmp(p, host) == 0;
}

static void done_close(void *arg, int fd)
{
	(void)arg;
	close(fd);
}

static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls,
                       const char *extra_in, size_t extra_in_size, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh)
{
	(void)con_cls;
	bx_server *srv = cls;
	char addr[INET6_ADDRSTRLEN];
	bx_ws_peer peer = {
	        .browser = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, "BAYEUX_BROWSER"),
	        .addr = bx_http_peer_text(conn, addr, sizeof addr),
	        .backend = bx_http_backend(srv, conn),
	        .done = done_close,
	};
	/* The socket is ours from here on: a duplicate of its descriptor goes
	 * to the loops and libmicrohttpd gets the upgrade back at once, so it
	 * frees its connection and memory pool (kept otherwise for the
	 * socket's life) and closes only its own descriptor. */
	bx_ws *ws = bx_http_ws(srv);
	int fd = ws ? fcntl(sock, F_DUPFD_CLOEXEC, 3) : -1;
	if (fd >= 0 && bx_ws_adopt(ws, fd, extra_in, extra_in_size, &peer) != 0) {
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		bx_warn("WebSocket: could not take over an upgraded socket: closing it");
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

static enum MHD_Result refuse(struct MHD_Connection *conn, unsigned status, const char *text)
{
	struct MHD_Response *r =
	        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, no-store");
	if (status == MHD_HTTP_UPGRADE_REQUIRED)
		MHD_add_response_header(r, "Sec-WebSocket-Version", "13");
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result bx_ws_serve(bx_server *srv, struct MHD_Connection *conn, const char *method,
                            const char *version)
{
	if (!srv->cfg.websocket || !bx_http_ws(srv))
		return refuse(conn, MHD_HTTP_BAD_REQUEST,
		              "WebSocket is off on this server (--websocket 0): use long polling\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 || strcmp(version, MHD_HTTP_VERSION_1_1) != 0)
		return refuse(conn, MHD_HTTP_BAD_REQUEST,
		              "a WebSocket upgrade is an HTTP/1.1 GET (RFC 6455 §4.1)\n");
	const char *connection = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Connection");
	if (!connection || !header_has(connection, "upgrade"))
		return refuse(conn, MHD_HTTP_BAD_REQUEST,
		              "a WebSocket upgrade needs Connection: Upgrade (a proxy must pass the "
		              "Upgrade and Connection headers)\n");
	const char *version13 =
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Version");
	if (!version13 || strcmp(version13, "13") != 0)
		return refuse(conn, MHD_HTTP_UPGRADE_REQUIRED,
		              "only WebSocket version 13 (RFC 6455) is spoken here\n");
	const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
	if (!bx_ws_key_ok(key))
		return refuse(conn, MHD_HTTP_BAD_REQUEST,
		              "missing or malformed Sec-WebSocket-Key (base64 of 16 bytes)\n");
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
	if (origin && !same_origin(origin, host) && !bx_cors_allowed(srv, origin)) {
		bx_info("WebSocket: refused an upgrade from origin %.100s (not this host, not in "
		        "--allow-origin)",
		        origin);
		return refuse(conn, MHD_HTTP_FORBIDDEN,
		              "this origin may not open a WebSocket here (see --allow-origin)\n");
	}
	char accept[BX_WS_ACCEPT_LEN + 1];
	bx_ws_accept(key, accept);
	struct MHD_Response *r = MHD_create_response_for_upgrade(on_upgrade, srv);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket");
	MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, r);
	MHD_destroy_response(r);
	return ret;
}
