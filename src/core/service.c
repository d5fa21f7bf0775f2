/*
 * service.c — server-side channel listeners and messages to one session:
 * /service/** request/reply (PROTOCOL.md §5: "handled by server-side
 * listeners, which may reply to the sender only, same channel, same id").
 *
 * Listener patterns match like subscriptions:
 *   /a/b   matches /a/b only
 *   /a/*   matches /a/b, not /a nor /a/b/c
 *   /a/**  matches /a/b and /a/b/c, not /a
 */
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "json.h"
#include "table.h"
#include "channel.h"
#include "log.h"

/* True when channel (len bytes, a plain name) matches listener l. */
static bool listener_matches(const bx_listener *l, const char *channel, size_t len)
{
	if (!(l->flags & BX_CH_WILD))
		return l->len == len && memcmp(l->pattern, channel, len) == 0;
	/* "/a/*" and "/a/**": the prefix is "/a/" */
	size_t plen = l->len - ((l->flags & BX_CH_WILD_ANY) ? 2 : 1);
	if (len <= plen || memcmp(l->pattern, channel, plen) != 0)
		return false;
	if (l->flags & BX_CH_WILD_ANY)
		return true;
	return memchr(channel + plen, '/', len - plen) == NULL;
}

bool bx_api_listeners(bx_server *srv, bx_session *from, bx_in *in)
{
	struct bx_api *api = srv->api;
	if (!api)
		return true;
	bx_message msg = {.in = in, .session = from};
	for (size_t i = 0; i < api->nlisteners; i++) {
		bx_listener *l = &api->listeners[i];
		if (listener_matches(l, in->channel, in->chlen) && !l->fn(l->arg, &msg))
			return false;
	}
	return true;
}

/*---- Messages to one session --------------------------------------------------*/


/* An id is a short string or an integer (PROTOCOL.md §1). */
static bool valid_id_json(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > BX_MSGID_MAX)
		return false;
	bool ok;
	json_object *v = bx_json_parse_all(id, n, &ok);
	bool good = ok && (json_object_is_type(v, json_type_string) ||
	                   json_object_is_type(v, json_type_int));
	json_object_put(v);
	return good;
}

int bx_deliver(bx_session *to, const char *channel, const char *data, size_t len,
               const char *id_json)
{
	unsigned flags;
	size_t chlen = channel ? strlen(channel) : 0;
	if (!to || !channel || !bx_channel_check(channel, chlen, &flags) ||
	    (flags & (BX_CH_META | BX_CH_WILD)))
		return -BX_ECHANNEL;
	if (id_json && !valid_id_json(id_json))
		return -BX_EJSON;
	bool ok;
	json_object *obj = bx_json_parse_all(data, len, &ok);
	if (!ok)
		return -BX_EJSON;

	pthread_mutex_lock(&to->lock);
	bool removed = to->removed;
	pthread_mutex_unlock(&to->lock);
	if (removed) {
		json_object_put(obj);
		return -BX_ESTATE;
	}
	char err[BX_API_ERR_MAX];
	bx_msg *m = bx_api_delivery(to->srv, NULL, channel, chlen, obj, id_json, err);
	json_object_put(obj);
	if (!m)
		return err[0] ? -BX_EREJECTED : -BX_ENOMEM;
	/* Ignored if the session ended meanwhile, as if it ended just after. */
	bx_session_deliver(to, m);
	bx_msg_unref(m);
	return 0;
}

int bx_reply(const bx_message *request, const char *data, size_t len)
{
	if (!request->session)
		return -BX_ESTATE;
	return bx_deliver(request->session, request->in->channel, data, len,
	                  request->in->id_json[0] ? request->in->id_json : NULL);
}
