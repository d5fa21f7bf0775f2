/*
 * history.c — GET /history/<channel>?after=ID&limit=N: a backend reads
 * a retained channel's history (README "History and replay"). Authorized as
 * POST /publish/ is (bx_http_backend: the bearer publish token, or loopback
 * with --allow-local-publish); answered with a JSON array of the delivered
 * messages after ID (default 0: all), oldest first, each with
 * ext.replayId; at most N (default 1000, at most 10,000): page on with the
 * last replayId received as the next after.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "core/channel.h"
#include "core/history.h"

#define HISTORY_PREFIX "/history/"
#define HISTORY_LIMIT  10000

bool bx_http_is_history_url(const char *url)
{
	return strncmp(url, HISTORY_PREFIX, strlen(HISTORY_PREFIX)) == 0;
}

/* Reads a query number: absent gives dflt; false when present but not a
 * whole number from 0 to max. */
static bool query_number(struct MHD_Connection *conn, const char *name, uint64_t dflt, uint64_t max,
                         uint64_t *out)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
	*out = dflt;
	if (!v)
		return true;
	if (!*v || strlen(v) > 16 || strspn(v, "0123456789") != strlen(v))
		return false;
	uint64_t n = strtoull(v, NULL, 10);
	if (n > max)
		return false;
	*out = n;
	return true;
}

enum MHD_Result bx_http_history(bx_server *srv, struct MHD_Connection *conn, const char *method,
                                const char *url)
{
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return bx_http_fail(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET",
		                    "405::method_not_allowed",
		                    "GET /history/<channel>?after=ID&limit=N");
	if (!bx_http_backend(srv, conn))
		return bx_http_fail(
		        conn, MHD_HTTP_FORBIDDEN, "GET", "403::history_denied",
		        bx_swap_peek(&srv->publish_token)
		                ? "send 'Authorization: Bearer <publish token>'"
		                : "reading history needs the publish token (bayeuxd "
		                  "--publish-token-file FILE) or --allow-local-publish for "
		                  "loopback");
	const char *channel = url + strlen(HISTORY_PREFIX) - 1; /* keeps the '/' */
	size_t chlen = strlen(channel);
	unsigned flags = 0;
	if (!bx_channel_check(channel, chlen, &flags) || (flags & BX_CH_WILD))
		return bx_http_fail(conn, MHD_HTTP_BAD_REQUEST, "GET", "400::channel_invalid",
		                    "GET /history/<channel>: one channel name, no wildcard");
	if (!srv->history || !bx_history_rule(srv->history, channel, chlen))
		return bx_http_fail(
		        conn, MHD_HTTP_NOT_FOUND, "GET", "404::channel_not_retained",
		        "no --retain rule matches this channel (or it is not a channel name)");
	uint64_t after, limit;
	if (!query_number(conn, "after", 0, UINT64_MAX / 2, &after) ||
	    !query_number(conn, "limit", 1000, HISTORY_LIMIT, &limit) || limit == 0)
		return bx_http_fail(
		        conn, MHD_HTTP_BAD_REQUEST, "GET", "400::history_query_invalid",
		        "after is a replay id (a whole number, default 0: from the oldest); "
		        "limit is 1 to 10000 (default 1000)");
	bx_buf out;
	bx_buf_init(&out);
	int rc = bx_history_read_json(srv, channel, chlen, after, (size_t)limit, &out);
	enum MHD_Result r;
	if (rc == -BX_EREJECTED)
		r = bx_http_fail(conn, MHD_HTTP_NOT_IMPLEMENTED, "GET", "501::history_shared",
		                 "this node's history lives in Redis Streams (--redis): replay it "
		                 "with a /meta/subscribe that carries ext.replay");
	else if (rc != 0)
		r = bx_http_fail(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "GET",
		                 "503::history_unavailable",
		                 "the history store is closing or out of memory");
	else {
		bx_buf_putc(&out, '\n');
		r = bx_http_respond(conn, MHD_HTTP_OK, "application/json; charset=utf-8", "GET",
		                    out.data ? out.data : "[]\n", out.len);
	}
	bx_buf_free(&out);
	return r;
}
