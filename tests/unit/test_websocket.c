/*
 * test_websocket.c — the WebSocket glue with no HTTP: SHA-1 and the accept
 * key, then the socket state machine of ws_loop.c driven over a socketpair
 * (one end adopted by a real loop of a server that is never started, the
 * other end written and read here with our own frame encoder): handshake,
 * subscribe, a held connect, pushed deliveries, close codes, reconnects.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/settings.h"
#include "core/server.h"
#include "core/session.h"
#include "http/websocket.h"

/*---- SHA-1 and the accept key ---------------------------------------------------*/

static void hex(const unsigned char *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void sha1_is(const char *in, size_t len, const char *want)
{
	unsigned char d[20];
	char h[41];
	bx_sha1(in, len, d);
	hex(d, 20, h);
	cr_assert_str_eq(h, want, "sha1 of %zu bytes", len);
}

Test(ws_accept, sha1_vectors)
{
	sha1_is("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	sha1_is("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	sha1_is(two, strlen(two), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	static char mil[1000000];
	memset(mil, 'a', sizeof mil);
	sha1_is(mil, sizeof mil, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	/* Lengths around the padding boundary (55, 56, 64 bytes). */
	sha1_is("0123456789012345678901234567890123456789012345678901234", 55,
	        "9f3a4ce7f66b1b74c34da2c5d732c39f81e0f8df");
}

Test(ws_accept, rfc_example_and_keys)
{
	char out[BX_WS_ACCEPT_LEN + 1];
	bx_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out);
	cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	cr_assert(bx_ws_key_ok("dGhlIHNhbXBsZSBub25jZQ=="));
	cr_assert(!bx_ws_key_ok(NULL));
	cr_assert(!bx_ws_key_ok(""));
	cr_assert(!bx_ws_key_ok("dGhlIHNhbXBsZSBub25jZQ="));
	cr_assert(!bx_ws_key_ok("dGhlIHNhbXBsZSBub25jZQ=x"));
	cr_assert(!bx_ws_key_ok("dGhlIHNhbXBsZSBub25j\"Q=="));
}

/*---- The state machine over a socketpair ---------------------------------------*/

static bx_server *srv;
static bx_ws *ws;
static int peer; /* our end */

static void done_close(void *arg, int fd)
{
	(void)arg;
	close(fd);
}

static void setup(void)
{
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.log_level = getenv("WS_DEBUG") ? BX_LOG_DEBUG : BX_LOG_ERROR;
	cfg.timeout_ms = 400;
	cfg.max_body = 4096;
	cfg.ws_ping_ms = 0;
	cr_assert_eq(bx_server_new(&cfg, &srv), 0);
	ws = bx_ws_new(srv, 1);
	cr_assert_not_null(ws);
}

static void teardown(void)
{
	bx_ws_free(ws);
	bx_server_free(srv);
}

static void open_pair(const void *extra, size_t len)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	peer = sv[0];
	bx_ws_peer p = {.done = done_close};
	cr_assert_eq(bx_ws_adopt(ws, sv[1], extra, len, &p), 0);
}

static void send_frame(int opcode, const char *payload, size_t len, bool mask)
{
	unsigned char h[14];
	size_t n = 0;
	h[n++] = (unsigned char)(0x80 | opcode);
	unsigned char m = mask ? 0x80 : 0;
	if (len < 126) {
		h[n++] = (unsigned char)(m | len);
	} else {
		h[n++] = m | 126;
		h[n++] = (unsigned char)(len >> 8);
		h[n++] = (unsigned char)len;
	}
	const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
	if (mask) {
		memcpy(h + n, key, 4);
		n += 4;
	}
	unsigned char *buf = malloc(n + len);
	memcpy(buf, h, n);
	for (size_t i = 0; i < len; i++)
		buf[n + i] = (unsigned char)payload[i] ^ (mask ? key[i & 3] : 0);
	cr_assert_eq(write(peer, buf, n + len), (ssize_t)(n + len));
	free(buf);
}

static void send_text(const char *s)
{
	send_frame(1, s, strlen(s), true);
}

/* Reads one frame (server frames are unmasked) within ms; returns its
 * opcode and its payload in out (NUL-terminated), or -1 on timeout/EOF. */
static unsigned char rbuf[1 << 20];
static size_t rlen;

static int read_frame(char *out, size_t cap, int ms)
{
	for (;;) {
		if (rlen >= 2) {
			size_t len = rbuf[1] & 0x7f, p = 2;
			if (len == 126 && rlen >= 4) {
				len = (size_t)rbuf[2] << 8 | rbuf[3];
				p = 4;
			} else if (len == 127 && rlen >= 10) {
				len = 0;
				for (int i = 0; i < 8; i++)
					len = len << 8 | rbuf[2 + i];
				p = 10;
			} else if (len >= 126) {
				len = SIZE_MAX;
			}
			if (len != SIZE_MAX && rlen >= p + len) {
				int op = rbuf[0] & 0x0f;
				size_t c = len < cap - 1 ? len : cap - 1;
				memcpy(out, rbuf + p, c);
				out[c] = '\0';
				memmove(rbuf, rbuf + p + len, rlen - p - len);
				rlen -= p + len;
				return op;
			}
		}
		struct pollfd pfd = {.fd = peer, .events = POLLIN};
		if (poll(&pfd, 1, ms) <= 0)
			return -1;
		ssize_t r = read(peer, rbuf + rlen, sizeof rbuf - rlen);
		if (r <= 0)
			return -1;
		rlen += (size_t)r;
	}
}

static char frame[1 << 16];

static json_object *read_json(int ms)
{
	int op = read_frame(frame, sizeof frame, ms);
	cr_assert_eq(op, 1, "a text frame (got %d)", op);
	json_object *o = json_tokener_parse(frame);
	cr_assert_not_null(o, "JSON: %s", frame);
	return o;
}

static const char *member(json_object *arr, size_t i, const char *key)
{
	json_object *m = json_object_array_get_idx(arr, i), *v;
	if (!m || !json_object_object_get_ex(m, key, &v))
		return "";
	return json_object_get_string(v);
}

static char client_id[64];

static void handshake_subscribe(const char *channel)
{
	send_text("[{\"channel\":\"/meta/handshake\",\"id\":\"1\",\"version\":\"1.0\","
	          "\"supportedConnectionTypes\":[\"websocket\"]}]");
	json_object *r = read_json(2000);
	cr_assert_str_eq(member(r, 0, "successful"), "true", "%s", frame);
	cr_assert(strstr(frame, "websocket"), "websocket offered: %s", frame);
	snprintf(client_id, sizeof client_id, "%s", member(r, 0, "clientId"));
	json_object_put(r);
	char sub[256];
	snprintf(sub, sizeof sub,
	         "[{\"channel\":\"/meta/subscribe\",\"id\":\"2\",\"clientId\":\"%s\","
	         "\"subscription\":\"%s\"}]",
	         client_id, channel);
	send_text(sub);
	r = read_json(2000);
	cr_assert_str_eq(member(r, 0, "successful"), "true", "%s", frame);
	json_object_put(r);
}

static void do_connect(bool at_once)
{
	char c[256];
	snprintf(c, sizeof c,
	         "[{\"channel\":\"/meta/connect\",\"id\":\"c\",\"clientId\":\"%s\","
	         "\"connectionType\":\"websocket\"%s}]",
	         client_id, at_once ? ",\"advice\":{\"timeout\":0}" : "");
	send_text(c);
}

static bool wait_count(size_t n, int ms)
{
	for (int i = 0; i < ms / 5; i++) {
		if (bx_ws_count(ws) == n)
			return true;
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return bx_ws_count(ws) == n;
}

TestSuite(ws_conn, .init = setup, .fini = teardown, .timeout = 20);

Test(ws_conn, push_while_connect_is_held)
{
	rlen = 0;
	open_pair(NULL, 0);
	handshake_subscribe("/t/a");
	do_connect(true);
	json_object *r = read_json(2000);
	cr_assert_str_eq(member(r, 0, "channel"), "/meta/connect");
	json_object_put(r);
	do_connect(false); /* held: no reply for the poll timeout */
	cr_assert_eq(read_frame(frame, sizeof frame, 100), -1, "held, got %s", frame);
	/* Two messages published while it is held: pushed, the connect stays. */
	cr_assert_eq(bx_publish(srv, "/t/a", "{\"n\":1}", 7), 1);
	cr_assert_eq(bx_publish(srv, "/t/a", "{\"n\":2}", 7), 1);
	int seen = 0;
	while (seen < 2) {
		r = read_json(2000);
		for (size_t i = 0; i < json_object_array_length(r); i++) {
			cr_assert_str_eq(member(r, i, "channel"), "/t/a", "%s", frame);
			seen++;
		}
		json_object_put(r);
	}
	/* The poll timeout (400 ms) answers the held connect: the heartbeat.
	 * (The server is not started: the test runs its timer.) */
	cr_assert_eq(read_frame(frame, sizeof frame, 100), -1, "still held: %s", frame);
	bx_timer_run(&srv->timer, bx_now(srv) + 500);
	r = read_json(2000);
	cr_assert_str_eq(member(r, 0, "channel"), "/meta/connect", "%s", frame);
	cr_assert_str_eq(member(r, 0, "successful"), "true");
	json_object_put(r);
	/* A publish over the socket: the reply carries no data. */
	char pub[256];
	snprintf(pub, sizeof pub,
	         "[{\"channel\":\"/t/a\",\"id\":\"p\",\"clientId\":\"%s\",\"data\":{\"n\":3}}]",
	         client_id);
	send_text(pub);
	bool reply = false, delivery = false;
	while (!reply || !delivery) {
		r = read_json(2000);
		for (size_t i = 0; i < json_object_array_length(r); i++) {
			json_object *m = json_object_array_get_idx(r, i), *v;
			if (json_object_object_get_ex(m, "successful", &v)) {
				reply = true;
				cr_assert(!json_object_object_get_ex(m, "data", &v), "%s", frame);
			} else {
				delivery = true;
			}
		}
		json_object_put(r);
	}
	close(peer);
	cr_assert(wait_count(0, 2000), "the socket is gone after the peer's EOF");
	/* The session outlives the socket. */
	bx_session *s = bx_session_find(srv, client_id, strlen(client_id));
	cr_assert_not_null(s);
	bx_session_unref(s);
}

Test(ws_conn, reconnect_binds_by_client_id)
{
	rlen = 0;
	open_pair(NULL, 0);
	handshake_subscribe("/t/b");
	close(peer);
	cr_assert(wait_count(0, 2000));
	cr_assert_eq(bx_publish(srv, "/t/b", "{\"n\":1}", 7), 1); /* queued */
	rlen = 0;
	open_pair(NULL, 0);
	do_connect(false);
	/* The queued message is pushed at once (the first connect after the
	 * handshake is answered at once too, in its own frame). */
	bool got = false;
	for (int i = 0; i < 2 && !got; i++) {
		json_object *r = read_json(2000);
		got = strcmp(member(r, 0, "channel"), "/t/b") == 0;
		json_object_put(r);
	}
	cr_assert(got, "the queued message was pushed");
	close(peer);
	cr_assert(wait_count(0, 2000));
}

Test(ws_conn, extra_bytes_are_read_first)
{
	/* What libmicrohttpd read past the header: a whole masked frame. */
	const char *hs = "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
	                 "\"supportedConnectionTypes\":[\"websocket\"]}]";
	unsigned char f[128];
	size_t n = strlen(hs);
	f[0] = 0x81;
	f[1] = (unsigned char)(0x80 | n);
	memset(f + 2, 0, 4); /* mask key 0: payload as is */
	memcpy(f + 6, hs, n);
	rlen = 0;
	open_pair(f, 6 + n);
	json_object *r = read_json(2000);
	cr_assert_str_eq(member(r, 0, "successful"), "true", "%s", frame);
	json_object_put(r);
	close(peer);
	cr_assert(wait_count(0, 2000));
}

static void expect_close(uint16_t code)
{
	int op = read_frame(frame, sizeof frame, 2000);
	cr_assert_eq(op, 8, "a close frame (got %d)", op);
	uint16_t got = (uint16_t)((unsigned char)frame[0] << 8 | (unsigned char)frame[1]);
	cr_assert_eq(got, code, "close code %u, want %u", got, code);
	/* Then EOF. */
	cr_assert_eq(read_frame(frame, sizeof frame, 2000), -1);
	close(peer);
	cr_assert(wait_count(0, 3000));
}

Test(ws_conn, unmasked_1002)
{
	rlen = 0;
	open_pair(NULL, 0);
	send_frame(1, "[]", 2, false);
	expect_close(1002);
}

Test(ws_conn, invalid_utf8_1007)
{
	rlen = 0;
	open_pair(NULL, 0);
	send_frame(1, "[\"\xc3\x28\"]", 6, true);
	expect_close(1007);
}

Test(ws_conn, too_big_1009)
{
	rlen = 0;
	open_pair(NULL, 0);
	static char big[5000];
	memset(big, ' ', sizeof big);
	big[0] = '[';
	big[sizeof big - 1] = ']';
	send_frame(1, big, sizeof big, true);
	expect_close(1009);
}

Test(ws_conn, malformed_json_keeps_the_socket)
{
	rlen = 0;
	open_pair(NULL, 0);
	send_text("[{\"channel\":");
	json_object *r = read_json(2000);
	cr_assert_str_eq(member(r, 0, "successful"), "false", "%s", frame);
	cr_assert(strncmp(member(r, 0, "error"), "400::", 5) == 0, "%s", frame);
	json_object_put(r);
	handshake_subscribe("/t/c");
	/* A peer's close is echoed. */
	send_frame(8, "\x03\xe8", 2, true);
	expect_close(1000);
}

Test(ws_conn, idle_socket_sheds_its_wslay_context_and_works_after)
{
	rlen = 0;
	open_pair(NULL, 0);
	handshake_subscribe("/t/idle");
	cr_assert_eq(bx_ws_contexts(ws), 1);
	/* Idle for more than a second at a frame boundary: the context goes. */
	for (int i = 0; i < 60 && bx_ws_contexts(ws) > 0; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	cr_assert_eq(bx_ws_contexts(ws), 0, "shed after a second idle");
	cr_assert_eq(bx_ws_count(ws), 1, "the socket stays");
	/* Out: a push makes a new one. */
	cr_assert_eq(bx_publish(srv, "/t/idle", "{\"n\":1}", 7), 1);
	json_object *r = read_json(2000);
	cr_assert_str_eq(member(r, 0, "channel"), "/t/idle", "%s", frame);
	json_object_put(r);
	/* In, after shedding again: a frame split in two writes. */
	for (int i = 0; i < 60 && bx_ws_contexts(ws) > 0; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	cr_assert_eq(bx_ws_contexts(ws), 0);
	do_connect(true);
	r = read_json(2000);
	cr_assert_str_eq(member(r, 0, "channel"), "/meta/connect", "%s", frame);
	json_object_put(r);
	close(peer);
	cr_assert(wait_count(0, 2000));
}

Test(ws_conn, no_shedding_inside_a_fragmented_message)
{
	rlen = 0;
	open_pair(NULL, 0);
	/* The first fragment of a text message, then silence. */
	unsigned char f[16] = {0x01, 0x80 | 5, 0, 0, 0, 0, '[', '{', '"', 'c', 'h'};
	cr_assert_eq(write(peer, f, 11), 11);
	struct timespec ts = {1, 600 * 1000 * 1000};
	nanosleep(&ts, NULL);
	cr_assert_eq(bx_ws_contexts(ws), 1, "kept: a message is half read");
	/* Its end: the whole message is dispatched. */
	const char *rest = "annel\":\"/meta/handshake\",\"version\":\"1.0\","
	                   "\"supportedConnectionTypes\":[\"websocket\"]}]";
	unsigned char g[128];
	size_t n = strlen(rest);
	g[0] = 0x80; /* FIN, continuation */
	g[1] = (unsigned char)(0x80 | n);
	memset(g + 2, 0, 4);
	memcpy(g + 6, rest, n);
	cr_assert_eq(write(peer, g, 6 + n), (ssize_t)(6 + n));
	json_object *r = read_json(2000);
	cr_assert_str_eq(member(r, 0, "successful"), "true", "%s", frame);
	json_object_put(r);
	close(peer);
	cr_assert(wait_count(0, 2000));
}
