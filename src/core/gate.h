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
/* A /meta/subscribe reply that waits for replays from a shared history
 * store (history.h, bx_history_defers): written at once as successful, and
 * rebuilt (with the replays' gaps, or the first failure) once every replay
 * is done, before the request is answered. A request that cannot park
 * waits for them. */
typedef struct bx_later bx_later;
struct bx_session;
/* A new deferred reply for the message being answered; NULL on OOM. */
bx_later *bx_gate_later(bx_batch *b);
/* Starts one deferred subscription of s to pattern for l. */
void bx_gate_replay(bx_batch *b, bx_later *l, struct bx_session *s, const char *pattern,
                    size_t len, json_object *replay);
/* The reply written meanwhile is body[start, end). okpre and errpre: the
 * opening of its successful and of its failed form; echo: the
 * ,"subscription":… member; gaps: replayGap members known already. The bufs
 * are taken (left empty). */
void bx_gate_later_set(bx_later *l, size_t start, size_t end, bx_buf *okpre, bx_buf *errpre,
                       bx_buf *echo, const bx_buf *gaps, const bx_timesync *ts);
/* Before a batch's retained publishes park it (durable.c): waits for the
 * deferred replies and rebuilds them in the body. */
void bx_gate_settle_laters(bx_batch *b);

/* At the end of a batch: parks the complete reply (res->hold set, transport
 * suspended) while confirmations are still to come, else lets it go. */
void bx_gate_park(bx_batch *b);
/* The transport resumed a parked reply: moves it into res and frees h. */
void bx_gate_finish(bx_hold *h, bx_response *res);
/* The transport went away: frees h; the gate never resumes it. */
void bx_gate_abandon(bx_hold *h);

#endif
