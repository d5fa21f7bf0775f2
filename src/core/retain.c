/*
 * retain.c — the parsers of history: --retain PATTERN=COUNT[,AGE] and a
 * subscribe's ext.replay map, and channel-pattern matching. Both parsers see
 * untrusted text (a flag, a client's message) and are fuzzed
 * (tests/fuzz/fuzz_retain.c).
 */
#include <stdio.h>
#include <string.h>

#include "bayeux.h"
#include "channel.h"
#include "history.h"

/* Reads a decimal number of at most 18 digits from p[*i...]; false when
 * there is none. */
static bool number(const char *p, size_t len, size_t *i, uint64_t *v)
{
	size_t start = *i;
	uint64_t n = 0;
	while (*i < len && p[*i] >= '0' && p[*i] <= '9') {
		if (*i - start == 18)
			return false;
		n = n * 10 + (uint64_t)(p[*i] - '0');
		(*i)++;
	}
	*v = n;
	return *i > start;
}

int bx_retain_parse(const char *text, size_t len, bx_retain_rule *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	const char *eq = memchr(text, '=', len);
	if (!eq) {
		snprintf(err, errlen,
		         "--retain wants PATTERN=COUNT[,AGE], e.g. '/chat/**=1000,24h': no '=' in "
		         "it");
		return -BX_EINVAL;
	}
	size_t plen = (size_t)(eq - text);
	unsigned flags = 0;
	if (!bx_channel_check(text, plen, &flags)) {
		snprintf(err, errlen,
		         "--retain: '%.*s' is not a channel name or pattern (like /chat/room or "
		         "/chat/**)",
		         (int)(plen > 80 ? 80 : plen), text);
		return -BX_EINVAL;
	}
	if (flags & (BX_CH_META | BX_CH_SERVICE)) {
		snprintf(err, errlen,
		         "--retain: /meta and /service channels are never broadcast, so never "
		         "retained: '%.*s'",
		         (int)(plen > 80 ? 80 : plen), text);
		return -BX_EINVAL;
	}
	memcpy(out->pattern, text, plen);
	out->pattern[plen] = '\0';
	out->plen = plen;
	size_t i = plen + 1;
	uint64_t count;
	if (!number(text, len, &i, &count) || count == 0 || count > BX_RETAIN_COUNT_MAX) {
		snprintf(err, errlen,
		         "--retain %s: COUNT after '=' must be a whole number from 1 to 10000000",
		         out->pattern);
		return -BX_EINVAL;
	}
	out->count = count;
	if (i == len)
		return 0;
	if (text[i] != ',') {
		snprintf(err, errlen,
		         "--retain %s: after COUNT comes nothing or ',AGE' (like ,24h or ,30m)",
		         out->pattern);
		return -BX_EINVAL;
	}
	i++;
	uint64_t age;
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	bool ok = number(text, len, &i, &age) && age > 0;
	int64_t mult = 0;
	for (size_t u = 0; ok && u < sizeof units / sizeof units[0]; u++) {
		size_t ul = strlen(units[u].unit);
		if (len - i == ul && memcmp(text + i, units[u].unit, ul) == 0)
			mult = units[u].ms;
	}
	if (!ok || !mult || age > (uint64_t)(BX_RETAIN_AGE_MAX / mult)) {
		snprintf(err, errlen,
		         "--retain %s: AGE must be a number with a unit ms, s, m, h or d (like "
		         "24h), "
		         "at most 366d",
		         out->pattern);
		return -BX_EINVAL;
	}
	out->age_ms = (int64_t)age * mult;
	return 0;
}

bool bx_channel_matches(const char *pattern, size_t plen, const char *name, size_t nlen)
{
	if (plen >= 2 && pattern[plen - 1] == '*' && pattern[plen - 2] == '*') {
		/* "/a/**": every name below /a, at any depth. */
		size_t pre = plen - 2; /* keeps the '/' */
		return nlen > pre && memcmp(name, pattern, pre) == 0;
	}
	if (plen >= 1 && pattern[plen - 1] == '*') {
		size_t pre = plen - 1;
		return nlen > pre && memcmp(name, pattern, pre) == 0 &&
		       memchr(name + pre, '/', nlen - pre) == NULL;
	}
	return plen == nlen && memcmp(pattern, name, nlen) == 0;
}

/* JavaScript's largest exact integer: ids beyond it would not survive a
 * client's JSON.parse. */
#define JS_SAFE_MAX 9007199254740991LL

static bool value_ok(json_object *v)
{
	if (!json_object_is_type(v, json_type_int))
		return false;
	int64_t n = json_object_get_int64(v);
	/* json-c clamps what does not fit in int64; the clamped values are
	 * out of range below anyway. */
	return n >= BX_REPLAY_ALL && n <= JS_SAFE_MAX;
}

const char *bx_replay_check(json_object *replay)
{
	if (!replay)
		return NULL;
	if (!json_object_is_type(replay, json_type_object))
		return "";
	json_object_object_foreach(replay, key, val)
	{
		if (!value_ok(val))
			return key;
	}
	return NULL;
}

int64_t bx_replay_value(json_object *replay, const char *pattern, size_t plen)
{
	if (!replay || !json_object_is_type(replay, json_type_object))
		return BX_REPLAY_NEW;
	/* json-c's lookup wants a NUL-terminated key; patterns are short. */
	char key[512 + 1];
	if (plen >= sizeof key)
		return BX_REPLAY_NEW;
	memcpy(key, pattern, plen);
	key[plen] = '\0';
	json_object *v;
	if (!json_object_object_get_ex(replay, key, &v) || !value_ok(v))
		return BX_REPLAY_NEW;
	return json_object_get_int64(v);
}
