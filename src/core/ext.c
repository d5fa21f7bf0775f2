/*
 * ext.c — the hooks an embedding program registers (include/bayeux.h):
 * registration, the bx_message accessors, incoming and outgoing extensions,
 * the session listeners and the policy. Channel listeners, bx_reply() and
 * bx_deliver() are in service.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "json.h"
#include "channel.h"
#include "log.h"

/*---- Registration ------------------------------------------------------------*/

/* The server's hook table, created on first use; NULL once it has started
 * (hooks are fixed while it runs) or on OOM, with *rc set. */
static struct bx_api *api_for_registration(bx_server *srv, int *rc)
{
	if (srv->http || srv->timer.started || atomic_load(&srv->stopped)) {
		*rc = -BX_ESTATE;
		return NULL;
	}
	if (!srv->api) {
		srv->api = calloc(1, sizeof *srv->api);
		if (!srv->api) {
			*rc = -BX_ENOMEM;
			return NULL;
		}
	}
	*rc = 0;
	return srv->api;
}

/* Grows *v (of *n items of size sz) by one zeroed item; NULL on OOM. */
static void *append(void *v, size_t *n, size_t sz, void **out)
{
	char *nv = realloc(v, (*n + 1) * sz);
	if (!nv)
		return NULL;
	memset(nv + *n * sz, 0, sz);
	*out = nv + *n * sz;
	(*n)++;
	return nv;
}

int bx_server_add_listener(bx_server *srv, const char *pattern, bx_listener_fn fn, void *arg)
{
	unsigned flags;
	size_t len = pattern ? strlen(pattern) : 0;
	if (!pattern || !fn || !bx_channel_check(pattern, len, &flags) || (flags & BX_CH_META))
		return -BX_ECHANNEL;
	int rc;
	struct bx_api *api = api_for_registration(srv, &rc);
	if (!api)
		return rc;
	char *copy = strdup(pattern);
	if (!copy)
		return -BX_ENOMEM;
	void *slot;
	bx_listener *v = append(api->listeners, &api->nlisteners, sizeof *v, &slot);
	if (!v) {
		free(copy);
		return -BX_ENOMEM;
	}
	api->listeners = v;
	*(bx_listener *)slot =
	        (bx_listener){.pattern = copy, .len = len, .flags = flags, .fn = fn, .arg = arg};
	return 0;
}

int bx_server_add_extension(bx_server *srv, bx_ext_fn incoming, bx_ext_fn outgoing, void *arg)
{
	if (!incoming && !outgoing)
		return -BX_EINVAL;
	int rc;
	struct bx_api *api = api_for_registration(srv, &rc);
	if (!api)
		return rc;
	void *slot;
	bx_extension *v = append(api->exts, &api->nexts, sizeof *v, &slot);
	if (!v)
		return -BX_ENOMEM;
	api->exts = v;
	*(bx_extension *)slot =
	        (bx_extension){.incoming = incoming, .outgoing = outgoing, .arg = arg};
	api->nincoming += incoming != NULL;
	api->noutgoing += outgoing != NULL;
	return 0;
}

int bx_server_add_session_listener(bx_server *srv, bx_session_fn fn, void *arg)
{
	if (!fn)
		return -BX_EINVAL;
	int rc;
	struct bx_api *api = api_for_registration(srv, &rc);
	if (!api)
		return rc;
	void *slot;
	bx_session_hook *v = append(api->session_hooks, &api->nsession_hooks, sizeof *v, &slot);
	if (!v)
		return -BX_ENOMEM;
	api->session_hooks = v;
	*(bx_session_hook *)slot = (bx_session_hook){.fn = fn, .arg = arg};
	return 0;
}

int bx_server_set_policy(bx_server *srv, bx_policy_fn fn, void *arg)
{
	int rc;
	struct bx_api *api = api_for_registration(srv, &rc);
	if (!api)
		return rc;
	api->policy = fn;
	api->policy_arg = arg;
	return 0;
}

void bx_api_free(bx_server *srv)
{
	struct bx_api *api = srv->api;
	if (!api)
		return;
	for (size_t i = 0; i < api->nlisteners; i++)
		free(api->listeners[i].pattern);
	free(api->listeners);
	free(api->exts);
	free(api->session_hooks);
	free(api);
	srv->api = NULL;
}

/*---- Messages ----------------------------------------------------------------*/


const char *bx_message_channel(const bx_message *m)
{
	return m->in->channel;
}

bx_session *bx_message_session(const bx_message *m)
{
	return m->session;
}

const char *bx_message_id(const bx_message *m)
{
	return m->in->id_json[0] ? m->in->id_json : NULL;
}

/* A member as compact JSON text; the text belongs to the member. */
static const char *member_text(json_object *v, bool present, size_t *len)
{
	if (!present) {
		if (len)
			*len = 0;
		return NULL;
	}
	size_t n = 0;
	const char *t = json_object_to_json_string_length(
	        v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	if (len)
		*len = t ? n : 0;
	return t;
}

const char *bx_message_data(const bx_message *m, size_t *len)
{
	/* A "data":null member is present: json-c holds it as a NULL object. */
	bool present = json_object_object_get_ex(m->in->obj, "data", NULL);
	return member_text(m->in->data, present, len);
}

const char *bx_message_ext(const bx_message *m, size_t *len)
{
	return member_text(m->in->ext, m->in->ext != NULL, len);
}

int bx_message_set_data(bx_message *m, const char *json, size_t len)
{
	bool ok;
	json_object *v = bx_json_parse_all(json, len, &ok);
	if (!ok)
		return -BX_EJSON;
	if (json_object_object_add(m->in->obj, "data", v) != 0) {
		json_object_put(v);
		return -BX_ENOMEM;
	}
	m->in->data = v;
	return 0;
}

int bx_message_set_ext(bx_message *m, const char *json, size_t len)
{
	if (!json) {
		json_object_object_del(m->in->obj, "ext");
		m->in->ext = NULL;
		return 0;
	}
	bool ok;
	json_object *v = bx_json_parse_all(json, len, &ok);
	if (!ok || !json_object_is_type(v, json_type_object)) {
		json_object_put(v);
		return -BX_EJSON;
	}
	if (json_object_object_add(m->in->obj, "ext", v) != 0) {
		json_object_put(v);
		return -BX_ENOMEM;
	}
	m->in->ext = v;
	return 0;
}

/*---- Extensions ----------------------------------------------------------------*/

/* Runs the incoming or outgoing hooks of every extension on msg. */
static const char *run_extensions(struct bx_api *api, bx_message *msg, bool incoming, char *err)
{
	for (size_t i = 0; i < api->nexts; i++) {
		bx_ext_fn fn = incoming ? api->exts[i].incoming : api->exts[i].outgoing;
		if (!fn)
			continue;
		const char *e = fn(api->exts[i].arg, msg);
		if (e) {
			snprintf(err, BX_API_ERR_MAX, "%s", e[0] ? e : "403::rejected");
			return err;
		}
	}
	return NULL;
}

const char *bx_api_incoming(bx_server *srv, bx_session *s, bx_in *in, char *err)
{
	struct bx_api *api = srv->api;
	if (!api || !api->nincoming)
		return NULL;
	bx_message msg = {.in = in, .session = s};
	return run_extensions(api, &msg, true, err);
}

bx_msg *bx_api_delivery(bx_server *srv, bx_session *from, const char *channel, size_t chlen,
                        json_object *data, const char *id_json, char *err)
{
	struct bx_api *api = srv->api;
	err[0] = '\0';
	if (!api || !api->noutgoing)
		return bx_delivery_new(channel, chlen, data, id_json);

	/* Build the delivered message as an object the hooks can change. */
	bx_in in;
	memset(&in, 0, sizeof in);
	in.obj = json_object_new_object();
	json_object *ch = json_object_new_string_len(channel, (int)chlen);
	if (!in.obj || !ch || json_object_object_add(in.obj, "channel", ch) != 0) {
		json_object_put(ch);
		json_object_put(in.obj);
		return NULL;
	}
	in.channel = json_object_get_string(ch);
	in.chlen = chlen;
	in.channel_ok = bx_channel_check(channel, chlen, &in.chflags);
	in.data = json_object_get(data);
	json_object_object_add(in.obj, "data", in.data);
	if (id_json && id_json[0]) {
		bool ok;
		json_object *id = bx_json_parse_all(id_json, strlen(id_json), &ok);
		if (ok && id) {
			json_object_object_add(in.obj, "id", id);
			snprintf(in.id_json, sizeof in.id_json, "%s", id_json);
		} else {
			json_object_put(id);
		}
	}
	bx_message msg = {.in = &in, .session = from};
	bx_msg *m = NULL;
	if (!run_extensions(api, &msg, false, err)) {
		size_t n = 0;
		const char *t = json_object_to_json_string_length(
		        in.obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
		if (t)
			m = bx_msg_new(t, n);
	}
	json_object_put(in.obj);
	return m;
}

/*---- Sessions and policy -------------------------------------------------------*/

void bx_api_session_event(bx_server *srv, bx_session *s, bool added)
{
	struct bx_api *api = srv->api;
	if (!api)
		return;
	for (size_t i = 0; i < api->nsession_hooks; i++)
		api->session_hooks[i].fn(api->session_hooks[i].arg, s, added);
}

bool bx_api_allow(bx_server *srv, enum bx_policy_op op, bx_session *s, const char *channel,
                  bx_in *in)
{
	struct bx_api *api = srv->api;
	if (!api || !api->policy)
		return true;
	bx_message msg = {.in = in, .session = s};
	return api->policy(api->policy_arg, op, s, channel, &msg);
}
