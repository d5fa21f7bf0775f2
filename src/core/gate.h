/*
 * gate.h — a /meta/subscribe reply that waits for the bus (gate.c): parked
 * with the request's waker until every new subscription is confirmed.
 */
#ifndef BX_GATE_H
#define BX_GATE_H

#include "dispatch.h"
#include "reply.h"

/* The reply of b waits until the bus confirms pattern (a no-op without a
 * bus, or when the request cannot park). */
void bx_gate_wait(bx_batch *b, const char *pattern, size_t len);
/* At the end of a batch: parks the complete reply (res->hold set, transport
 * suspended) while confirmations are still to come, else lets it go. */
void bx_gate_park(bx_batch *b);
/* The transport resumed a parked reply: moves it into res and frees h. */
void bx_gate_finish(bx_hold *h, bx_response *res);
/* The transport went away: frees h; the gate never resumes it. */
void bx_gate_abandon(bx_hold *h);

#endif
