/*
 * fuzz_token.c — libFuzzer target over what --auth and --acl parse from
 * clients: tokens (bx_token_verify), and the pattern algebra the policy
 * decides with (bx_pattern_covers, bx_pattern_overlaps).
 *
 * Input: "A\nB\nTOKEN". Oracles: a pattern that covers another also
 * overlaps it; overlap is symmetric; a pattern covers itself; a token that
 * verifies under the fuzzer's key was minted by it (verify(mint(x)) holds
 * its subject and exp).
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/channel.h"
#include "security/security.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char KEY[] = "fuzzing key of at least thirty-two bytes";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	if (!init) {
		if (sodium_init() < 0)
			abort();
		init = true;
	}
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	char *a = s, *b = strchr(a, '\n'), *tok = NULL;
	if (b) {
		*b++ = '\0';
		tok = strchr(b, '\n');
		if (tok)
			*tok++ = '\0';
	}
	if (b) {
		bool valid_a = bx_channel_check(a, strlen(a), NULL);
		bool valid_b = bx_channel_check(b, strlen(b), NULL);
		bool cov = bx_pattern_covers(a, b), ov = bx_pattern_overlaps(a, b);
		if (cov && !ov)
			abort();
		if (ov != bx_pattern_overlaps(b, a))
			abort();
		if (valid_a && (!bx_pattern_covers(a, a) || !bx_pattern_overlaps(a, a)))
			abort();
		if ((cov || ov) && !(valid_a && valid_b))
			abort();
	}
	const char *t = tok ? tok : s;
	bx_grant *g = bx_token_verify(KEY, sizeof KEY - 1, t, strlen(t), 0);
	bx_grant_free(g);
	/* Round trip: a token minted from the input's first line as subject. */
	const char *pats[] = {"/chat/**"};
	char *m = bx_token_mint(KEY, sizeof KEY - 1, a, 1000, pats, 1, pats, 1);
	if (m) {
		g = bx_token_verify(KEY, sizeof KEY - 1, m, strlen(m), 999);
		if (!g || strcmp(g->sub, a) != 0 || g->exp != 1000 || g->nsubscribe != 1)
			abort();
		bx_grant_free(g);
		free(m);
	}
	free(s);
	return 0;
}
