/*
 * publish.c — publishing on a broadcast channel (PROTOCOL.md §5): serialize
 * the delivered form once, queue it for every matching subscriber, and ack
 * the publisher with a reply that carries no `data`.
 */
#include <string.h>

#include "channel.h"
#include "dispatch.h"
#include "log.h"

size_t bx_broadcast(bx_server *srv, const char *channel, size_t len, bx_msg *m)
{
	bx_sessvec subs = {0};
	bx_router_match(&srv->router, channel, len, &subs);
	for (size_t i = 0; i < subs.n; i++)
		bx_session_deliver(subs.v[i], m);
	size_t n = subs.n;
	bx_sessvec_release(&subs);
	atomic_fetch_add(&srv->stats.publishes, 1);
	return n;
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

void bx_publish_message(bx_batch *b, bx_in *in)
{
	if (in->chflags & BX_CH_WILD) {
		bx_reply_error(b, in, "405::channel_invalid", NULL);
		return;
	}
	bx_session *s = bx_need_session(b, in);
	if (!s)
		return;
	bx_session_unref(s);
	if (!in->data) {
		bx_reply_error(b, in, "400::data_missing", NULL);
		return;
	}
	/* /service/** is never broadcast (PROTOCOL.md §5). */
	if (!(in->chflags & BX_CH_SERVICE)) {
		bx_msg *m = bx_delivery_new(in->channel, in->chlen, in->data, in->id_json);
		if (!m) {
			bx_reply_error(b, in, "500::out_of_memory", NULL);
			return;
		}
		bx_broadcast(b->srv, in->channel, in->chlen, m);
		bx_msg_unref(m);
	}
	bx_reply_open(b, in, NULL, true);
	bx_buf_putc(b->out, '}');
}
