/*
 * hooks.h — the embedding program's hooks (include/bayeux.h: listeners,
 * extensions, session listeners, the policy) as the core calls them.
 *
 * Hooks are registered before bx_server_start() and never change while the
 * server runs, so the core reads them with no lock; srv->api stays NULL
 * until the first registration, and every call site tests it first so a
 * server with no hook pays one pointer test per message.
 */
#ifndef BX_HOOKS_H
#define BX_HOOKS_H

#include "reply.h"

/* Longest error text an extension may return (longer is cut). */
#define BX_API_ERR_MAX 256

/* What a hook sees: a message being handled and its sender. */
struct bx_message {
	bx_in *in;
	bx_session *session; /* NULL: a backend, a handshake, or the server */
};

typedef struct bx_listener {
	char *pattern;
	size_t len;
	unsigned flags; /* enum bx_channel_flags of pattern */
	bx_listener_fn fn;
	void *arg;
} bx_listener;

typedef struct bx_extension {
	bx_ext_fn incoming, outgoing;
	void *arg;
} bx_extension;

typedef struct bx_session_hook {
	bx_session_fn fn;
	void *arg;
} bx_session_hook;

struct bx_api {
	bx_listener *listeners;
	size_t nlisteners;
	bx_extension *exts;
	size_t nexts, nincoming, noutgoing;
	bx_session_hook *session_hooks;
	size_t nsession_hooks;
	bx_policy_fn policy;
	void *policy_arg;
};

/* Runs the incoming extensions on in, sent by s (NULL: none found). Returns NULL, or the rejecting error
 * text copied into err (BX_API_ERR_MAX bytes). */
const char *bx_api_incoming(bx_server *srv, bx_session *s, bx_in *in, char *err);

/* Asks the policy (if any); true = allowed. */
bool bx_api_allow(bx_server *srv, enum bx_policy_op op, bx_session *s, const char *channel,
                  bx_in *in);

/* Runs the listeners whose pattern matches in's channel; false when one
 * deleted the message. */
bool bx_api_listeners(bx_server *srv, bx_session *from, bx_in *in);

/*
 * The delivered form {"channel","data"[,"id"]} of a message, serialized once
 * after the outgoing extensions. Returns NULL with err set to the rejecting
 * text, or NULL with err "" on OOM. err holds BX_API_ERR_MAX bytes.
 */
bx_msg *bx_api_delivery(bx_server *srv, bx_session *from, const char *channel, size_t chlen,
                        json_object *data, const char *id_json, char *err);

/* Tells the session listeners that s was added or removed. */
void bx_api_session_event(bx_server *srv, bx_session *s, bool added);

/* Frees the hooks (bx_server_free). */
void bx_api_free(bx_server *srv);

#endif
