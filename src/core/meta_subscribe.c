/*
 * meta_subscribe.c — /meta/subscribe and /meta/unsubscribe (PROTOCOL.md §5):
 * `subscription` is one channel pattern or an array of them; the reply
 * echoes it.
 */
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "channel.h"
#include "verbs.h"
#include "table.h"
#include "browser.h"
#include "stream.h"
#include "history.h"
#include "gate.h"

/* Most patterns in one subscribe message. */
#define BX_SUBSCRIPTIONS_PER_MESSAGE 256

/* Echoes the subscription field as the client sent it (string or array). */
static void echo(bx_buf *o, json_object *sub)
{
	if (!sub)
		return;
	bx_buf_puts(o, ",\"subscription\":");
	if (json_object_is_type(sub, json_type_string)) {
		bx_buf_json_str(o, json_object_get_string(sub),
		                (size_t)json_object_get_string_len(sub));
		return;
	}
	bx_buf_putc(o, '[');
	size_t n = json_object_array_length(sub);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(sub, i);
		if (i)
			bx_buf_putc(o, ',');
		if (json_object_is_type(e, json_type_string))
			bx_buf_json_str(o, json_object_get_string(e),
			                (size_t)json_object_get_string_len(e));
		else /* not a pattern, refused: echoed as sent */
			bx_buf_puts(o, json_object_to_json_string_ext(
			                       e, JSON_C_TO_STRING_PLAIN |
			                                  JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	bx_buf_putc(o, ']');
}

static void reply(bx_batch *b, bx_in *in, const char *verb, json_object *sub, const char *error)
{
	bx_reply_open(b, in, verb, error == NULL);
	if (error) {
		bx_buf_puts(b->out, ",\"error\":");
		bx_buf_json_str(b->out, error, strlen(error));
	}
	echo(b->out, sub);
	bx_reply_close(b, in, NULL);
}

/* A malformed ext.replay (history.h): a Bayeux error naming the entry. */
static void replay_error(bx_batch *b, bx_in *in, json_object *sub, const char *key)
{
	static const char hint[] =
	        "ext.replay maps each subscription to a replay id: -2 (every retained message), "
	        "-1 (only new ones) or the last id received (an integer from 0 to 2^53-1)";
	bx_reply_open(b, in, "/meta/subscribe", false);
	bx_buf_puts(b->out, ",\"error\":");
	bx_buf tmp;
	bx_buf_init(&tmp);
	bx_buf_puts(&tmp, "400:");
	bx_buf_puts(&tmp, key[0] ? key : "ext.replay");
	bx_buf_puts(&tmp, ":replay_invalid");
	bx_buf_json_str(b->out, tmp.data ? tmp.data : "400::replay_invalid", tmp.len);
	bx_buf_free(&tmp);
	bx_buf_puts(b->out, ",\"hint\":");
	bx_buf_json_str(b->out, hint, sizeof hint - 1);
	echo(b->out, sub);
	bx_reply_close(b, in, NULL);
}

/* Checks one pattern; returns the error text, or NULL when it may be used.
 * *record is false for /service/** (accepted, not recorded). */
static const char *check(json_object *e, bool *record)
{
	unsigned flags;
	*record = true;
	if (!json_object_is_type(e, json_type_string))
		return "403::subscription_invalid";
	const char *p = json_object_get_string(e);
	size_t n = (size_t)json_object_get_string_len(e);
	if (!bx_channel_check(p, n, &flags))
		return "403::subscription_invalid";
	if (flags & BX_CH_META)
		return "403:denied_by_security_policy:subscribe_denied";
	/* A wildcard at the root (/* or /**) would reach /meta/**: but meta
	 * messages are never broadcast, so it only sees ordinary channels. */
	if (flags & BX_CH_SERVICE)
		*record = false;
	return NULL;
}

/* Hands the gate what it needs to rebuild the reply just written
 * (body[start, end)) once the deferred replays are done. */
static void defer_reply(bx_batch *b, bx_in *in, const char *verb, json_object *sub,
                        bx_later *later, size_t start, const bx_buf *gaps)
{
	bx_buf okpre, errpre, ech;
	bx_buf_init(&okpre);
	bx_buf_init(&errpre);
	bx_buf_init(&ech);
	bx_buf *out = b->out;
	bool any = b->any;
	b->any = false;
	b->out = &okpre;
	bx_reply_open(b, in, verb, true);
	b->out = &errpre;
	b->any = false; /* (no comma before it either) */
	bx_reply_open(b, in, verb, false);
	b->out = out;
	b->any = any;
	echo(&ech, sub);
	bx_gate_later_set(later, start, out->len, &okpre, &errpre, &ech, gaps, &in->timesync);
	bx_buf_free(&okpre);
	bx_buf_free(&errpre);
	bx_buf_free(&ech);
}

void bx_meta_subscribe(bx_batch *b, bx_in *in, bool subscribe)
{
	const char *verb = subscribe ? "/meta/subscribe" : "/meta/unsubscribe";
	json_object *sub = NULL;
	json_object_object_get_ex(in->obj, "subscription", &sub);
	bool is_str = sub && json_object_is_type(sub, json_type_string);
	bool is_arr = sub && json_object_is_type(sub, json_type_array);
	size_t n = is_str ? 1 : is_arr ? json_object_array_length(sub) : 0;
	if (!is_str && !is_arr) {
		reply(b, in, verb, NULL, "403::subscription_missing");
		return;
	}
	if (n == 0) {
		reply(b, in, verb, sub, "403::subscription_missing");
		return;
	}
	if (n > BX_SUBSCRIPTIONS_PER_MESSAGE) {
		reply(b, in, verb, NULL, "403::subscription_invalid");
		return;
	}
	json_object *replay = NULL;
	if (subscribe && in->ext && json_object_object_get_ex(in->ext, "replay", &replay)) {
		const char *bad = bx_replay_check(replay);
		if (bad) {
			replay_error(b, in, sub, bad);
			return;
		}
	}
	bx_session *s = bx_need_session(b, in);
	if (!s)
		return;
	bool record[BX_SUBSCRIPTIONS_PER_MESSAGE];
	for (size_t i = 0; i < n; i++) {
		json_object *e = is_str ? sub : json_object_array_get_idx(sub, i);
		const char *err = check(e, &record[i]);
		if (!err && b->srv->api &&
		    !bx_api_allow(b->srv, BX_POLICY_SUBSCRIBE, s, json_object_get_string(e), in))
			err = "403:denied_by_security_policy:subscribe_denied";
		if (err) {
			reply(b, in, verb, sub, err);
			bx_session_unref(s);
			return;
		}
	}
	const char *err = NULL;
	bx_later *later = NULL; /* replies rebuilt after deferred replays */
	bx_buf gaps; /* ext.replayGap entries (history.h) */
	bx_buf_init(&gaps);
	for (size_t i = 0; i < n; i++) {
		if (!record[i])
			continue;
		json_object *e = is_str ? sub : json_object_array_get_idx(sub, i);
		const char *p = json_object_get_string(e);
		size_t len = (size_t)json_object_get_string_len(e);
		if (subscribe && bx_history_defers(b->srv, p, len, replay)) {
			/* Replayed from a shared store at its cut: the reply is
			 * rebuilt when that is done (gate.h). */
			if (!later)
				later = bx_gate_later(b);
			if (!later)
				err = "500::out_of_memory";
			else
				bx_gate_replay(b, later, s, p, len, replay);
		} else if (subscribe) {
			int rc;
			if (b->srv->history) {
				bx_replay_result r;
				rc = bx_history_subscribe(b->srv, s, p, len, replay, &r);
				bx_replay_gaps_write(&gaps, &r);
			} else {
				rc = bx_router_subscribe(&b->srv->router, s, p, len);
			}
			if (rc == -BX_ESTATE)
				err = "402::session_unknown"; /* removed while we worked */
			else if (rc == -BX_EREJECTED)
				err = "403::too_many_subscriptions"; /* --max-subscriptions */
			else if (rc != 0)
				err = "500::out_of_memory";
			else
				bx_gate_wait(b, p, len); /* the reply waits for the bus */
		} else {
			bx_router_unsubscribe(&b->srv->router, s, p, len);
		}
	}
	size_t start = b->out->len + (b->any ? 1 : 0);
	if (gaps.len && !err) {
		bx_reply_open(b, in, verb, true);
		echo(b->out, sub);
		bx_buf ext;
		bx_buf_init(&ext);
		bx_buf_puts(&ext, "\"replayGap\":{");
		bx_buf_append(&ext, gaps.data, gaps.len);
		bx_buf_putc(&ext, '}');
		bx_reply_close(b, in, ext.data);
		bx_buf_free(&ext);
	} else {
		reply(b, in, verb, sub, err);
	}
	if (later && !err)
		defer_reply(b, in, verb, sub, later, start, &gaps);
	bx_buf_free(&gaps);
	bx_session_unref(s);
}
