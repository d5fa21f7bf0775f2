/*
 * fuzz_ws.c — libFuzzer target over the WebSocket frame path: bytes → wslay
 * (through our recv callback) → text messages → bx_dispatch() → frames out,
 * on a server that is never started (no HTTP), one socket loop of ws_loop.c,
 * and a socketpair per input.
 *
 * The input is a list of frames the harness encodes (so the fuzzer reaches
 * the dispatcher instead of failing the masking check on every input):
 * per frame one header byte (FIN, RSV, opcode as on the wire), one length
 * byte (bit 7: send unmasked; bits 0-6: payload length) and the payload.
 * The encoded bytes are handed over as the bytes libmicrohttpd read past
 * the request's header (bx_ws_adopt's extra), then our end is closed: the
 * socket must go (count back to 0) within a bounded time, whatever it was
 * sent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/server.h"
#include "core/settings.h"
#include "http/websocket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bx_server *srv;
static bx_ws *ws;

static void done_close(void *arg, int fd)
{
	(void)arg;
	close(fd);
}

static void init(void)
{
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.log_level = BX_LOG_ERROR;
	cfg.max_body = 1024;
	cfg.timeout_ms = 100;
	cfg.ws_ping_ms = 0;
	cfg.max_sessions = 1000;
	if (bx_server_new(&cfg, &srv) != 0)
		abort();
	ws = bx_ws_new(srv, 1);
	if (!ws)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!srv)
		init();
	if (size > 8192)
		return 0;
	/* Encode the frames. */
	uint8_t *out = malloc(size * 4 + 64); /* a 2-byte header becomes up to 8 */
	size_t n = 0, i = 0;
	const uint8_t key[4] = {0xa5, 0x01, 0x5a, 0x10};
	while (i + 2 <= size) {
		uint8_t h = data[i], l = data[i + 1];
		i += 2;
		size_t len = l & 0x7f;
		if (len > size - i)
			len = size - i;
		bool mask = !(l & 0x80);
		out[n++] = h;
		if (len < 126) {
			out[n++] = (uint8_t)((mask ? 0x80 : 0) | len);
		} else {
			out[n++] = (uint8_t)((mask ? 0x80 : 0) | 126);
			out[n++] = 0;
			out[n++] = (uint8_t)len;
		}
		if (mask) {
			memcpy(out + n, key, 4);
			n += 4;
		}
		for (size_t k = 0; k < len; k++)
			out[n++] = data[i + k] ^ (mask ? key[k & 3] : 0);
		i += len;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		free(out);
		return 0;
	}
	bx_ws_peer p = {.done = done_close};
	if (bx_ws_adopt(ws, sv[1], out, n, &p) != 0) {
		close(sv[1]);
		close(sv[0]);
		free(out);
		return 0;
	}
	free(out);
	/* Read what comes back for a moment, then go away. */
	char buf[4096];
	struct timespec ts = {0, 200 * 1000};
	for (int k = 0; k < 20; k++) {
		ssize_t r = recv(sv[0], buf, sizeof buf, MSG_DONTWAIT);
		if (r == 0)
			break;
		nanosleep(&ts, NULL);
	}
	close(sv[0]);
	for (int k = 0; k < 20000 && bx_ws_count(ws) > 0; k++)
		nanosleep(&ts, NULL);
	if (bx_ws_count(ws) > 0)
		abort(); /* a socket that never goes: a leak of the state machine */
	return 0;
}
