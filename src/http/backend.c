/*
 * http_publish.c — backend publishing over HTTP (PROTOCOL.md §5, Faye's
 * behaviour): which requests may publish with no clientId and no handshake,
 * and the plain form for scripts, POST /publish/<channel> with the JSON data
 * as the body.
 *
 * The authorization is decided here, at the transport, and handed to the
 * core as bx_request.backend: the core knows no HTTP.
 */
#include <arpa/inet.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/hooks.h"
#include "core/json.h"
#include "backend.h"
#include "core/log.h"
#include "core/settings.h"

/*---- Authorization -------------------------------------------------------------*/

/* Compares two secrets in constant time, whatever their lengths: comparing
 * fixed-size hashes leaks neither the length nor a matching prefix. */
static bool same_secret(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char ha[crypto_generichash_BYTES], hb[crypto_generichash_BYTES];
	crypto_generichash(ha, sizeof ha, (const unsigned char *)a, alen, NULL, 0);
	crypto_generichash(hb, sizeof hb, (const unsigned char *)b, blen, NULL, 0);
	return sodium_memcmp(ha, hb, sizeof ha) == 0;
}

/* The token of an "Authorization: Bearer <token>" header value, or NULL. */
static const char *bearer(const char *h, size_t *len)
{
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	size_t n = strlen(h);
	while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
		n--;
	*len = n;
	return n ? h : NULL;
}

bool bx_http_bearer_ok(bx_server *srv, const char *authorization)
{
	size_t n = 0;
	const char *t = bearer(authorization, &n);
	if (!t || !bx_swap_peek(&srv->publish_token))
		return false;
	unsigned ticket;
	const char *token = bx_swap_enter(&srv->publish_token, &ticket);
	bool ok = token && same_secret(t, n, token, strlen(token));
	bx_swap_leave(&srv->publish_token, ticket);
	return ok;
}

bool bx_http_loopback(const struct sockaddr *sa)
{
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		const unsigned char *a = in6->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && a[12] == 127;
	}
	return false;
}

bool bx_http_backend(bx_server *srv, struct MHD_Connection *conn)
{
	if (bx_http_bearer_ok(srv, MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                                       MHD_HTTP_HEADER_AUTHORIZATION)))
		return true;
	if (!srv->cfg.allow_local_publish)
		return false;
	/* Browsers send Origin on every cross-origin POST: a page the local user
	 * visits must not publish through --allow-local-publish. */
	if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin"))
		return false;
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	return ci && bx_http_loopback(ci->client_addr);
}

/* Replaces the token under readers that never wait (bx_swap): a request
 * being authorized finishes with the token it saw. */
int bx_server_set_publish_token(bx_server *srv, const char *token)
{
	char *copy = NULL;
	if (token) {
		size_t n = strlen(token);
		if (n < BX_PUBLISH_TOKEN_MIN || n > BX_PUBLISH_TOKEN_MAX ||
		    strcspn(token, " \t\r\n") != n)
			return -BX_EINVAL;
		if (!(copy = strdup(token)))
			return -BX_ENOMEM;
	}
	char *old = bx_swap_replace(&srv->publish_token, copy);
	if (old) {
		sodium_memzero(old, strlen(old));
		free(old);
	}
	return 0;
}

/*---- POST /publish/<channel> ---------------------------------------------------*/

bool bx_http_is_publish_url(const char *url)
{
	return strncmp(url, BX_PUBLISH_PREFIX, strlen(BX_PUBLISH_PREFIX)) == 0;
}

enum MHD_Result bx_http_respond(struct MHD_Connection *conn, unsigned status, const char *type,
                                const char *allow, const char *text, size_t len)
{
	struct MHD_Response *r =
	        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result bx_http_fail(struct MHD_Connection *conn, unsigned status, const char *allow,
                             const char *error, const char *hint)
{
	bx_buf b;
	bx_buf_init(&b);
	bx_buf_puts(&b, "{\"successful\":false,\"error\":");
	bx_buf_json_str(&b, error, strlen(error));
	bx_buf_puts(&b, ",\"hint\":");
	bx_buf_json_str(&b, hint, strlen(hint));
	bx_buf_puts(&b, "}\n");
	enum MHD_Result r = bx_http_respond(conn, status, "application/json; charset=utf-8", allow,
	                                    b.data ? b.data : "", b.len);
	bx_buf_free(&b);
	return r;
}

/* The HTTP status for a Bayeux error "code:args:text": its code when 4xx. */
static unsigned status_of(const char *error)
{
	long code = strtol(error, NULL, 10);
	if (code == 402)
		return MHD_HTTP_FORBIDDEN;
	return code >= 400 && code < 500 ? (unsigned)code : MHD_HTTP_INTERNAL_SERVER_ERROR;
}

enum MHD_Result bx_http_publish(bx_server *srv, struct MHD_Connection *conn, const char *method,
                                const char *url, const char *body, size_t len, bool too_big,
                                bx_waker waker, struct bx_pending **pending)
{
	*pending = NULL;
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return bx_http_fail(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "POST",
		                    "405::method_not_allowed",
		                    "POST the JSON data to /publish/<channel>");
	if (too_big)
		return bx_http_fail(conn, MHD_HTTP_CONTENT_TOO_LARGE, "POST", "413::body_too_large",
		                    "the body is larger than --max-body");
	const char *channel = url + strlen(BX_PUBLISH_PREFIX) - 1; /* keeps the '/' */
	if (strncmp(channel, "/meta/", 6) == 0 || strcmp(channel, "/meta") == 0)
		return bx_http_fail(conn, MHD_HTTP_BAD_REQUEST, "POST", "405::channel_invalid",
		                    "a backend cannot publish on /meta channels");

	/* Parse the data alone first: pasting an unchecked body into a message
	 * would let it add messages of its own. */
	bool ok;
	json_object *data = bx_json_parse_all(body, len, &ok);
	if (!ok) {
		json_object_put(data);
		return bx_http_fail(conn, MHD_HTTP_BAD_REQUEST, "POST", "400::data_invalid",
		                    "the request body must be the message data as one JSON value");
	}
	json_object *msg = json_object_new_object();
	json_object_object_add(msg, "channel", json_object_new_string(channel));
	json_object_object_add(msg, "data", data);
	size_t mlen = 0;
	const char *mtext = json_object_to_json_string_length(
	        msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &mlen);

	bx_request req = {.body = mtext ? mtext : "",
	                  .len = mtext ? mlen : 0,
	                  .browser = NULL,
	                  .transport = BX_CT_LONG_POLLING,
	                  .waker = waker,
	                  .backend = bx_http_backend(srv, conn)};
	bx_response res;
	bx_response_init(&res);
	bx_dispatch(srv, &req, &res);
	json_object_put(msg);
	if (res.pending) { /* waits for the history store (durable.c) */
		*pending = res.pending;
		bx_response_free(&res);
		return MHD_YES;
	}
	return bx_http_publish_answer(conn, &res);
}

enum MHD_Result bx_http_publish_answer(struct MHD_Connection *conn, bx_response *resp)
{
	bx_response res = *resp;
	enum MHD_Result ret;
	if (res.status != 200) {
		ret = bx_http_respond(conn, (unsigned)res.status, "text/plain; charset=utf-8",
		                      "POST", res.body.data ? res.body.data : "", res.body.len);
		bx_response_free(&res);
		return ret;
	}
	/* One message in, one reply out: answer with that reply object. */
	json_object *arr = json_tokener_parse(res.body.data);
	json_object *reply = json_object_array_get_idx(arr, 0), *v;
	unsigned status = MHD_HTTP_INTERNAL_SERVER_ERROR;
	if (reply && json_object_object_get_ex(reply, "successful", &v))
		status = json_object_get_boolean(v) ? MHD_HTTP_OK : MHD_HTTP_BAD_REQUEST;
	if (status != MHD_HTTP_OK && reply && json_object_object_get_ex(reply, "error", &v))
		status = status_of(json_object_get_string(v));
	size_t rlen = 0;
	const char *rtext =
	        reply ? json_object_to_json_string_length(
	                        reply, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
	                        &rlen)
	              : "{}";
	if (!reply)
		rlen = 2;
	bx_buf out;
	bx_buf_init(&out);
	bx_buf_append(&out, rtext, rlen);
	bx_buf_putc(&out, '\n');
	ret = bx_http_respond(conn, status, "application/json; charset=utf-8", "POST",
	                      out.data ? out.data : "", out.len);
	bx_buf_free(&out);
	json_object_put(arr);
	bx_response_free(&res);
	return ret;
}
