/*
 * msg.h — a published message, serialized once to its delivered JSON form
 * and shared, by reference, by every queue that holds it.
 */
#ifndef BX_MSG_H
#define BX_MSG_H

#include <json-c/json.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Longest message id we echo (a short string or a number, PROTOCOL.md §1). */
#define BX_MSGID_MAX 64

typedef struct bx_msg {
	atomic_uint refs;
	int64_t born_us; /* when it was made (bx_clock_us): publish-to-write latency */
	size_t len;
	char data[];
} bx_msg;

/* A new message with one reference holding a copy of data, or NULL on OOM. */
bx_msg *bx_msg_new(const char *data, size_t len);
void bx_msg_ref(bx_msg *m);
void bx_msg_unref(bx_msg *m);

/* Serializes a delivery {"channel":…,"data":…,"id":…} once; NULL on OOM.
 * id_json may be NULL or "". */
bx_msg *bx_delivery_new(const char *channel, size_t chlen, json_object *data, const char *id_json);

#endif
