/*
 * msg.c — shared serialized messages: one published message becomes one
 * immutable, reference-counted buffer that every subscriber queue points to.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "msg.h"
#include "stats.h"

bx_msg *bx_msg_new(const char *data, size_t len)
{
	bx_msg *m = malloc(sizeof *m + len + 1);
	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->born_us = bx_clock_us();
	m->len = len;
	memcpy(m->data, data, len);
	m->data[len] = '\0';
	return m;
}

void bx_msg_ref(bx_msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void bx_msg_unref(bx_msg *m)
{
	if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}

bx_msg *bx_delivery_new(const char *channel, size_t chlen, json_object *data, const char *id_json)
{
	bx_buf b;
	bx_buf_init(&b);
	bx_buf_puts(&b, "{\"channel\":");
	bx_buf_json_str(&b, channel, chlen);
	bx_buf_puts(&b, ",\"data\":");
	size_t dlen = 0;
	const char *d = json_object_to_json_string_length(
	        data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &dlen);
	bx_buf_append(&b, d ? d : "null", d ? dlen : 4);
	if (id_json && id_json[0]) {
		bx_buf_puts(&b, ",\"id\":");
		bx_buf_puts(&b, id_json);
	}
	bx_buf_putc(&b, '}');
	bx_msg *m = b.failed ? NULL : bx_msg_new(b.data, b.len);
	bx_buf_free(&b);
	return m;
}
