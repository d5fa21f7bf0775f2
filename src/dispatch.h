/*
 * dispatch.h — what the per-verb handlers (meta_*.c, publish.c) share: the
 * batch being answered, one parsed incoming message, and reply writers.
 */
#ifndef BX_DISPATCH_H
#define BX_DISPATCH_H

#include <json-c/json.h>

#include "core.h"

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
} bx_in;

/* Starts a reply object: {"channel":…,"successful":…,"id":… (no closing brace). */
void bx_reply_open(bx_batch *b, const bx_in *in, const char *channel, bool ok);
/* A complete failed reply with error text and optional advice JSON. */
void bx_reply_error(bx_batch *b, const bx_in *in, const char *error, const char *advice);
/* Writes the retry advice the server gives on connect and handshake replies. */
void bx_write_retry_advice(bx_buf *out, const bx_server *srv, bool multiple_clients);
/* Writes a /meta/connect reply object (no leading comma). */
void bx_write_connect_reply(bx_buf *out, const bx_server *srv, const char *id_json, bool ok,
                            const char *advice);

/* Parses len bytes of JSON (no NUL needed) with our depth limit and strict,
 * UTF-8-validating rules. Returns the value, or NULL with *err set; *end is
 * where parsing stopped (trailing bytes are the caller's to judge). */
json_object *bx_json_parse(const char *p, size_t len, size_t *end, enum json_tokener_error *err);

/* Finds the message's session and refreshes its expiry; on failure writes
 * the 402 reply and returns NULL. The result holds a reference. */
bx_session *bx_need_session(bx_batch *b, const bx_in *in);

/* Serializes a delivery {"channel":…,"data":…,"id":…} once; NULL on OOM.
 * id_json may be NULL or "". */
bx_msg *bx_delivery_new(const char *channel, size_t chlen, json_object *data, const char *id_json);

/* The verbs. */
void bx_meta_handshake(bx_batch *b, bx_in *in);
void bx_meta_connect(bx_batch *b, bx_in *in);
void bx_meta_subscribe(bx_batch *b, bx_in *in, bool subscribe);
void bx_meta_disconnect(bx_batch *b, bx_in *in);
void bx_publish_message(bx_batch *b, bx_in *in);

#endif
