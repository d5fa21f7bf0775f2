/*
 * reply.h — what the dispatcher and the verbs share: the batch being
 * answered, one parsed incoming message, and the reply writers (reply.c).
 * The verbs and dispatch.c both use it; it uses neither.
 */
#ifndef BX_REPLY_H
#define BX_REPLY_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "dispatch.h"
#include "msg.h"
#include "server.h"
#include "session.h"
#include "timesync.h"

/* Advice texts (PROTOCOL.md §3, §7). */
#define BX_ADVICE_HANDSHAKE "{\"reconnect\":\"handshake\",\"interval\":0}"
#define BX_ADVICE_NONE      "{\"reconnect\":\"none\"}"

/* The request being answered. */
typedef struct bx_batch {
	bx_server *srv;
	const bx_request *req;
	bx_response *res;
	bx_buf *out;  /* replies so far, after the opening '[' */
	bool any;     /* out holds at least one reply (the next needs a comma) */
	size_t count; /* messages in the request */
	int64_t now;
	int64_t wall; /* wall clock (ms since 1970) when the request arrived */
	struct bx_pending *pending; /* publishes waiting to be durable (durable.c) */
	struct bx_gate *gate; /* the reply waits for the bus (gate.c), or NULL */
} bx_batch;

/* One incoming message; pointers borrow from the parsed JSON. */
typedef struct bx_in {
	json_object *obj;
	const char *channel; /* NULL when missing or not a string */
	size_t chlen;
	bool channel_ok;                /* the channel is a valid name or pattern */
	unsigned chflags;               /* enum bx_channel_flags */
	char id_json[BX_MSGID_MAX + 8]; /* the id as JSON text, or "" */
	const char *client_id;          /* NULL when missing */
	size_t client_id_len;
	json_object *advice, *data, *ext;
	bx_timesync timesync; /* ext.timesync of a meta message (timesync.h) */
} bx_in;

/* Starts a reply object: {"channel":…,"successful":…,"id":… (no closing brace). */
void bx_reply_open(bx_batch *b, const bx_in *in, const char *channel, bool ok);
/* A complete failed reply with error text and optional advice JSON. */
void bx_reply_error(bx_batch *b, const bx_in *in, const char *error, const char *advice);
/* Ends a reply object opened with bx_reply_open(): ext (members as JSON
 * text without braces, e.g. "\"ack\":true", or NULL) and the message's
 * timesync (meta messages, PROTOCOL.md §8) in one "ext" object, then '}'. */
void bx_reply_close(bx_batch *b, const bx_in *in, const char *ext);
/* Appends ,"ext":{…} with members ext (or NULL) and timesync ts (or NULL)
 * as of wall-clock `wall`; nothing when both are empty. */
void bx_write_ext(bx_buf *out, const char *ext, const bx_timesync *ts, int64_t wall);
/* Writes the retry advice the server gives on connect and handshake replies. */
void bx_write_retry_advice(bx_buf *out, const bx_server *srv, bool multiple_clients);
/* Writes a /meta/connect reply object (no leading comma). */
void bx_write_connect_reply(bx_buf *out, const bx_server *srv, const char *id_json, bool ok,
                            const char *advice);
/* The same with an ext object (see bx_write_ext). */
void bx_write_connect_reply_ext(bx_buf *out, const bx_server *srv, const char *id_json, bool ok,
                                const char *advice, const char *ext, const bx_timesync *ts,
                                int64_t wall);

/* Finds the message's session and refreshes its expiry; on failure writes
 * the 402 reply and returns NULL. The result holds a reference. */
bx_session *bx_need_session(bx_batch *b, const bx_in *in);

#endif
