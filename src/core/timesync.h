/*
 * timesync.h — CometD's timesync extension on the server side (PROTOCOL.md
 * §8, TimeSyncExtension.js).
 *
 * A /meta/* request carries ext.timesync {tc, l, o}: the client's clock when
 * it sent the message, its lag and offset estimates. The reply carries
 * ext.timesync {tc, ts, p, a}: tc echoed, ts our wall clock when the message
 * arrived, p how long we kept it (a held /meta/connect's wait included), and
 * a = tc + o + l - ts, how far off the client's estimate was. Like CometD's
 * server we answer {tc, ts, p} when the request has no l, and leave the
 * field out when the client's estimate is already within 25 ms (|a| < 25)
 * and l is not 0: the client keeps its estimate then.
 */
#ifndef BX_TIMESYNC_H
#define BX_TIMESYNC_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

/* CometD's accuracy target: an estimate off by less is not corrected. */
#define BX_TIMESYNC_ACCURACY 25

/* What a request's ext.timesync said, and when it arrived. */
typedef struct bx_timesync {
	bool present; /* the request carried a usable ext.timesync */
	bool has_l;   /* ...with l and o */
	int64_t tc, l, o;
	int64_t ts; /* our wall clock (ms since 1970) when it arrived */
} bx_timesync;

/* Reads ext.timesync from a message's ext object (NULL: none); ts is the
 * arrival time. A non-object or a missing or non-numeric tc makes it absent. */
void bx_timesync_read(bx_timesync *t, json_object *ext, int64_t ts);
/* Appends the member "timesync":{…} (no leading comma) for a reply leaving
 * at wall-clock `now`; returns false and writes nothing when there is
 * nothing to say. */
bool bx_timesync_write(bx_buf *out, const bx_timesync *t, int64_t now);
/* Milliseconds since 1970 (CLOCK_REALTIME). */
int64_t bx_wall_ms(void);

#endif
