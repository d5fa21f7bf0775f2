/*
 * fuzz_retain.c — libFuzzer target over history's parsers: the --retain
 * value (bx_retain_parse) and a subscribe's ext.replay map
 * (bx_replay_check, bx_replay_value), and pattern matching.
 *
 * Input: a first byte choosing the parser, then its text. Oracles: a parsed
 * rule has a valid pattern, 1 <= count <= 10,000,000 and 0 <= age <= 366 d,
 * and its pattern matches what it names; a map that checks gives values in
 * [-2, 2^53) for any key; a name matches itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/channel.h"
#include "core/history.h"
#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	if (data[0] & 1) {
		bx_retain_rule r;
		char err[256];
		if (bx_retain_parse(p, n, &r, err, sizeof err) == 0) {
			unsigned f;
			if (!bx_channel_check(r.pattern, r.plen, &f) || r.count < 1 ||
			    r.count > BX_RETAIN_COUNT_MAX || r.age_ms < 0 ||
			    r.age_ms > BX_RETAIN_AGE_MAX)
				abort();
			if (!(f & BX_CH_WILD) &&
			    !bx_channel_matches(r.pattern, r.plen, r.pattern, r.plen))
				abort();
		} else if (!err[0]) {
			abort(); /* a refusal always says why */
		}
		return 0;
	}
	size_t end;
	enum json_tokener_error jerr;
	json_object *v = bx_json_parse(p, n, &end, &jerr);
	if (!v)
		return 0;
	if (!bx_replay_check(v) && json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, key, val)
		{
			(void)val;
			int64_t r = bx_replay_value(v, key, strlen(key));
			if (r < BX_REPLAY_ALL || r > 9007199254740991LL)
				abort();
			unsigned f;
			size_t kl = strlen(key);
			if (bx_channel_check(key, kl, &f) && !(f & BX_CH_WILD) &&
			    !bx_channel_matches(key, kl, key, kl))
				abort();
		}
	}
	json_object_put(v);
	return 0;
}
