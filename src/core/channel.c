// channel.c — the channel-name grammar (PROTOCOL.md §1, §5).
//
// Valid:    /foo   /foo/bar   /a-b/c_d/e.f!~()$@   /foo/*   /foo/**   /*   /**
// Invalid:  ""   foo   /   //   /foo/   /foo//bar   /foo/*/bar   /foo/a*   /foo/***
//           /foo bar   /föö (non-ASCII)   names longer than BX_CHANNEL_MAX_LEN
//           or deeper than BX_CHANNEL_MAX_DEPTH segments
// Wildcards stand only as the whole last segment.
#include "channel.h"

#include <string.h>

static bool segment_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("-_!~()$@.", c) != NULL;
}

bool bx_channel_check(const char *name, size_t len, unsigned *flags)
{
	if (len < 2 || len > BX_CHANNEL_MAX_LEN || name[0] != '/')
		return false;
	unsigned f = 0;
	size_t depth = 0;
	size_t i = 1;
	while (i <= len) {
		size_t start = i;
		while (i < len && name[i] != '/')
			i++;
		size_t n = i - start;
		const char *s = name + start;
		if (n == 0 || ++depth > BX_CHANNEL_MAX_DEPTH)
			return false;
		bool last = (i == len);
		if (n == 1 && s[0] == '*') {
			if (!last)
				return false;
			f |= BX_CH_WILD_ONE;
		} else if (n == 2 && s[0] == '*' && s[1] == '*') {
			if (!last)
				return false;
			f |= BX_CH_WILD_ANY;
		} else {
			for (size_t k = 0; k < n; k++)
				if (!segment_char((unsigned char)s[k]))
					return false;
		}
		if (depth == 1 && n == 4 && memcmp(s, "meta", 4) == 0)
			f |= BX_CH_META;
		if (depth == 1 && n == 7 && memcmp(s, "service", 7) == 0)
			f |= BX_CH_SERVICE;
		i++; /* skip the '/' (or step past the end) */
	}
	if (flags)
		*flags = f;
	return true;
}

size_t bx_channel_split(const char *name, size_t len, const char **seg, size_t *seglen)
{
	size_t n = 0;
	size_t i = 1;
	while (i <= len && n < BX_CHANNEL_MAX_DEPTH) {
		size_t start = i;
		while (i < len && name[i] != '/')
			i++;
		seg[n] = name + start;
		seglen[n] = i - start;
		n++;
		i++;
	}
	return n;
}
