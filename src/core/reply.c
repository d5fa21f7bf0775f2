/*
 * reply.c — the reply writers the dispatcher and every verb share (reply.h).
 */
#include <string.h>

#include "reply.h"
#include "table.h"

void bx_reply_open(bx_batch *b, const bx_in *in, const char *channel, bool ok)
{
	bx_buf *o = b->out;
	if (b->any)
		bx_buf_putc(o, ',');
	b->any = true;
	bx_buf_putc(o, '{');
	if (channel) {
		bx_buf_puts(o, "\"channel\":");
		bx_buf_json_str(o, channel, strlen(channel));
	} else if (in->channel && in->channel_ok) {
		bx_buf_puts(o, "\"channel\":");
		bx_buf_json_str(o, in->channel, in->chlen);
	} else {
		bx_buf_puts(o, "\"channel\":null");
	}
	bx_buf_puts(o, ok ? ",\"successful\":true" : ",\"successful\":false");
	if (in->id_json[0]) {
		bx_buf_puts(o, ",\"id\":");
		bx_buf_puts(o, in->id_json);
	}
}

void bx_reply_error(bx_batch *b, const bx_in *in, const char *error, const char *advice)
{
	bx_reply_open(b, in, NULL, false);
	bx_buf_puts(b->out, ",\"error\":");
	bx_buf_json_str(b->out, error, strlen(error));
	if (advice) {
		bx_buf_puts(b->out, ",\"advice\":");
		bx_buf_puts(b->out, advice);
	}
	bx_reply_close(b, in, NULL);
}

void bx_write_ext(bx_buf *out, const char *ext, const bx_timesync *ts, int64_t wall)
{
	bx_buf sync;
	bx_buf_init(&sync);
	bool has_sync = ts && bx_timesync_write(&sync, ts, wall);
	bool members = ext && ext[0];
	if (members || has_sync) {
		bx_buf_puts(out, ",\"ext\":{");
		if (members)
			bx_buf_puts(out, ext);
		if (members && has_sync)
			bx_buf_putc(out, ',');
		if (has_sync)
			bx_buf_append(out, sync.data, sync.len);
		bx_buf_putc(out, '}');
	}
	bx_buf_free(&sync);
}

void bx_reply_close(bx_batch *b, const bx_in *in, const char *ext)
{
	bx_write_ext(b->out, ext, &in->timesync, in->timesync.present ? bx_wall_ms() : 0);
	bx_buf_putc(b->out, '}');
}

void bx_write_retry_advice(bx_buf *out, const bx_server *srv, bool multiple_clients)
{
	if (multiple_clients)
		bx_buf_printf(out,
		              "{\"reconnect\":\"retry\",\"interval\":%lld,\"timeout\":%lld,"
		              "\"multiple-clients\":true}",
		              (long long)srv->cfg.multi_session_interval_ms,
		              (long long)srv->cfg.timeout_ms);
	else
		bx_buf_printf(out, "{\"reconnect\":\"retry\",\"interval\":%lld,\"timeout\":%lld}",
		              (long long)srv->cfg.interval_ms, (long long)srv->cfg.timeout_ms);
}

void bx_write_connect_reply(bx_buf *out, const bx_server *srv, const char *id_json, bool ok,
                            const char *advice)
{
	bx_write_connect_reply_ext(out, srv, id_json, ok, advice, NULL, NULL, 0);
}

void bx_write_connect_reply_ext(bx_buf *out, const bx_server *srv, const char *id_json, bool ok,
                                const char *advice, const char *ext, const bx_timesync *ts,
                                int64_t wall)
{
	(void)srv;
	bx_buf_puts(out, "{\"channel\":\"/meta/connect\",\"successful\":");
	bx_buf_puts(out, ok ? "true" : "false");
	if (id_json && id_json[0]) {
		bx_buf_puts(out, ",\"id\":");
		bx_buf_puts(out, id_json);
	}
	if (advice) {
		bx_buf_puts(out, ",\"advice\":");
		bx_buf_puts(out, advice);
	}
	bx_write_ext(out, ext, ts, wall);
	bx_buf_putc(out, '}');
}

bx_session *bx_need_session(bx_batch *b, const bx_in *in)
{
	bx_session *s = NULL;
	if (in->client_id)
		s = bx_session_find(b->srv, in->client_id, in->client_id_len);
	if (!s) {
		bx_reply_error(b, in, "402::session_unknown", BX_ADVICE_HANDSHAKE);
		return NULL;
	}
	/* Any message keeps the session alive for at least max-interval
	 * (PROTOCOL.md §3); a held connect keeps it alive by itself. */
	pthread_mutex_lock(&s->lock);
	int64_t e = b->now + b->srv->cfg.max_interval_ms;
	if (!s->hold && e > s->expiry) {
		s->expiry = e;
		bx_session_rearm_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
	return s;
}
