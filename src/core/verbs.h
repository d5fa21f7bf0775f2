/*
 * verbs.h — one handler per Bayeux verb (meta_handshake.c, meta_connect.c,
 * meta_subscribe.c, meta_disconnect.c, publish.c). dispatch.c calls them;
 * they answer through the reply module (reply.h) and never call back into
 * the dispatcher.
 */
#ifndef BX_VERBS_H
#define BX_VERBS_H

#include <stdbool.h>
#include <stddef.h>

#include "msg.h"
#include "reply.h"

struct bx_server;

void bx_meta_handshake(bx_batch *b, bx_in *in);
void bx_meta_connect(bx_batch *b, bx_in *in);
void bx_meta_subscribe(bx_batch *b, bx_in *in, bool subscribe);
void bx_meta_disconnect(bx_batch *b, bx_in *in);
void bx_publish_message(bx_batch *b, bx_in *in);

/* Publishes a serialized message to every subscriber of channel; returns the
 * number of sessions it was queued for (publish.c). */
size_t bx_broadcast(struct bx_server *srv, const char *channel, size_t len, bx_msg *m);

#endif
