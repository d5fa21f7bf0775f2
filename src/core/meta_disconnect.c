/*
 * meta_disconnect.c — /meta/disconnect (PROTOCOL.md §5): end the session and
 * release its held connect with advice reconnect:"none".
 */
#include "verbs.h"
#include "table.h"
#include "browser.h"
#include "stream.h"

void bx_meta_disconnect(bx_batch *b, bx_in *in)
{
	bx_session *s = bx_need_session(b, in);
	if (!s)
		return;
	bx_session_remove(b->srv, s, BX_WAKE_DISCONNECT);
	bx_session_unref(s);
	bx_reply_open(b, in, "/meta/disconnect", true);
	bx_reply_close(b, in, NULL);
}
