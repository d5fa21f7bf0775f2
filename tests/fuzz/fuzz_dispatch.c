/*
 * fuzz_dispatch.c — libFuzzer target over the request path: bytes →
 * bx_dispatch() → reply, on a server that is never started (no sockets),
 * with a fake clock and a fake waker.
 *
 * One input is a short conversation: requests separated by the line
 * "\n---\n". Each request starts with one flag byte (see below); the rest
 * is the body. "$ID" in a body is replaced by the client id of the last
 * successful handshake, so the fuzzer reaches subscribe, publish and
 * connect on a live session without guessing random ids.
 *
 * Oracles beyond the sanitizers: a 200 reply that was not held is a
 * non-empty JSON array of objects; any other status has a text body.
 * Holds are finished (released by a later request, the timer, or at the
 * end of the input) or abandoned, as a transport would.
 */
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/settings.h"
#include "core/server.h"
#include "core/dispatch.h"
#include "core/table.h"
#include "core/stream.h"
#include "core/verbs.h"
#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Flag byte of a request. */
enum {
	F_BACKEND = 1 << 0,  /* the transport authorized a sessionless publish */
	F_BROWSER = 1 << 1,  /* send the last BAYEUX_BROWSER cookie we were given */
	F_CLOCK = 1 << 2,    /* move the clock 7 s and run the timers first */
	F_CALLBACK = 1 << 3, /* came over callback polling */
	F_NOHOLD = 1 << 4,   /* the transport cannot hold (no waker) */
	F_ABANDON = 1 << 5,  /* the transport goes away from a held reply */
};

#define MAX_REQUESTS 32

static int64_t clock_ms;

static int64_t fake_now(void *arg)
{
	(void)arg;
	return clock_ms;
}

typedef struct pending {
	bx_hold *hold; /* NULL: no live hold in this slot */
	int suspended, resumed;
	bool abandon;
} pending;

static void fake_suspend(void *arg)
{
	((pending *)arg)->suspended++;
}

static void fake_resume(void *arg)
{
	((pending *)arg)->resumed++;
}

/* True when every number in v is finite: json-c writes NaN and Infinity as
 * bare words that no client's JSON.parse accepts. */
static bool all_finite(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_double:
		return isfinite(json_object_get_double(v));
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (!all_finite(json_object_array_get_idx(v, i)))
				return false;
		return true;
	case json_type_object: {
		json_object_object_foreach(v, key, val)
		{
			(void)key;
			if (!all_finite(val))
				return false;
		}
		return true;
	}
	default:
		return true;
	}
}

/* Aborts (a finding) when a finished reply breaks the reply contract: a 200
 * is a non-empty array of objects in strict JSON and valid UTF-8 that a
 * browser parses; anything else is a 4xx/5xx with a text. */
static void check_reply(const bx_response *res)
{
	if (res->status != 200) {
		if (res->body.len == 0 || res->status < 400 || res->status > 599)
			abort();
		return;
	}
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *v = json_tokener_parse_ex(tok, res->body.data, (int)res->body.len);
	if (!v || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != res->body.len || !all_finite(v) ||
	    !json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0)
		abort();
	size_t n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++)
		if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_object))
			abort();
	json_object_put(v);
	json_tokener_free(tok);
}

/* Finishes every hold whose waker was resumed (or that the transport
 * abandons); `all` also releases the rest (the end of the input). Slots
 * never move: a waker's arg points at its slot. */
static void settle(bx_server *srv, pending *p, size_t n, bool all)
{
	for (size_t i = 0; i < n; i++) {
		pending *h = &p[i];
		if (!h->hold)
			continue;
		if (all && !h->resumed && !h->abandon) {
			bx_session *s = h->hold->session;
			pthread_mutex_lock(&s->lock);
			bx_session_wake_locked(s, BX_WAKE_TIMEOUT);
			pthread_mutex_unlock(&s->lock);
		}
		if (h->abandon) {
			bx_hold_abandon(srv, h->hold);
			h->hold = NULL;
		} else if (h->resumed) {
			if (h->resumed != 1 || h->suspended != 1)
				abort();
			bx_response res;
			bx_response_init(&res);
			bx_hold_finish(srv, h->hold, &res);
			h->hold = NULL;
			check_reply(&res);
			bx_response_free(&res);
		}
	}
}

/* Copies body into out, replacing "$ID" with id. */
static char *expand(const uint8_t *body, size_t len, const char *id, size_t *outlen)
{
	size_t idlen = strlen(id);
	char *out = malloc(len * (idlen > 3 ? idlen : 3) / 3 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (i + 3 <= len && memcmp(body + i, "$ID", 3) == 0) {
			memcpy(out + o, id, idlen);
			o += idlen;
			i += 2;
		} else {
			out[o++] = (char)body[i];
		}
	}
	*outlen = o;
	return out;
}

/* Pulls "clientId" out of a handshake reply into id (size BX_ID_LEN + 1). */
static void learn_id(const bx_response *res, char *id)
{
	if (res->status != 200 || res->hold)
		return;
	const char *p = strstr(res->body.data, "\"clientId\":\"");
	if (p && strlen(p + 12) > BX_ID_LEN && p[12 + BX_ID_LEN] == '"') {
		memcpy(id, p + 12, BX_ID_LEN);
		id[BX_ID_LEN] = '\0';
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bx_config cfg;
	bx_config_init(&cfg);
	cfg.log_level = BX_LOG_ERROR;
	cfg.max_sessions = 8;
	cfg.max_queue = 4;
	cfg.max_batch = 64;
	bx_server *srv = NULL;
	if (bx_server_new(&cfg, &srv) != 0)
		abort();
	clock_ms = 1000000;
	srv->now = fake_now;

	pending holds[MAX_REQUESTS];
	memset(holds, 0, sizeof holds);
	int nreq = 0;
	char id[BX_ID_LEN + 1] = "none";
	char browser[BX_ID_LEN + 1] = "";

	static const char sep[] = "\n---\n";
	size_t pos = 0;
	for (; nreq < MAX_REQUESTS && pos < size; nreq++) {
		const uint8_t *end = memmem(data + pos, size - pos, sep, sizeof sep - 1);
		size_t len = end ? (size_t)(end - (data + pos)) : size - pos;
		const uint8_t *req_bytes = data + pos;
		pos += len + (end ? sizeof sep - 1 : 0);
		if (len == 0)
			continue;
		unsigned flags = req_bytes[0];
		size_t blen = 0;
		char *body = expand(req_bytes + 1, len - 1, id, &blen);
		if (!body)
			break;

		if (flags & F_CLOCK) {
			clock_ms += 7000;
			bx_timer_run(&srv->timer, clock_ms);
		}
		pending *p = &holds[nreq];
		p->abandon = (flags & F_ABANDON) != 0;
		bx_request req = {
		        .body = body,
		        .len = blen,
		        .browser = (flags & F_BROWSER) && browser[0] ? browser : NULL,
		        .transport =
		                (flags & F_CALLBACK) ? BX_CT_CALLBACK_POLLING : BX_CT_LONG_POLLING,
		        .waker = {.suspend = (flags & F_NOHOLD) ? NULL : fake_suspend,
		                  .resume = fake_resume,
		                  .arg = p},
		        .backend = (flags & F_BACKEND) != 0,
		};
		bx_response res;
		bx_response_init(&res);
		bx_dispatch(srv, &req, &res);
		if (res.hold) {
			if (p->suspended != 1 || res.body.len != 0)
				abort();
			p->hold = res.hold;
		} else {
			if (p->suspended)
				abort();
			check_reply(&res);
			learn_id(&res, id);
			if (res.set_browser[0])
				memcpy(browser, res.set_browser, sizeof browser);
		}
		bx_response_free(&res);
		free(body);
		settle(srv, holds, (size_t)nreq + 1, false);
	}
	/* The end of the input: the poll timeout passes for every hold. */
	clock_ms += 60000;
	bx_timer_run(&srv->timer, clock_ms);
	settle(srv, holds, (size_t)nreq, true);
	bx_server_free(srv);
	return 0;
}
