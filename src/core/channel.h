/* channel.h — the Bayeux channel-name grammar. */
#ifndef BX_CHANNEL_H
#define BX_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

/* Longest channel name and most segments accepted (PROTOCOL.md §1). */
#define BX_CHANNEL_MAX_LEN   512
#define BX_CHANNEL_MAX_DEPTH 32

enum bx_channel_flags {
	BX_CH_META = 1 << 0,     /* /meta/... */
	BX_CH_SERVICE = 1 << 1,  /* /service/... */
	BX_CH_WILD_ONE = 1 << 2, /* last segment is * */
	BX_CH_WILD_ANY = 1 << 3, /* last segment is ** */
};
#define BX_CH_WILD (BX_CH_WILD_ONE | BX_CH_WILD_ANY)

/*
 * Checks name (len bytes, need not be NUL-terminated). Returns true and sets
 * *flags when it is a valid channel name or pattern, false otherwise.
 */
bool bx_channel_check(const char *name, size_t len, unsigned *flags);

/*
 * Splits a valid name into segments: seg[i] points into name, seglen[i] is
 * its length. Returns the number of segments (at most BX_CHANNEL_MAX_DEPTH).
 */
size_t bx_channel_split(const char *name, size_t len, const char **seg, size_t *seglen);

#endif
