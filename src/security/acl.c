/*
 * acl.c — channel authorization rules (--acl FILE; docs/SECURITY.md, "ACL").
 *
 * One rule a line, '#' starts a comment:
 *     allow|deny  WHO  subscribe|publish|service  PATTERN [PATTERN...]
 * WHO is `anonymous` (no token), `authenticated` (any valid token),
 * `anyone`, or `user:NAME` (the token's subject). `service` rules govern
 * /service/... channels (publishing to a service is how a client calls
 * it); `subscribe` and `publish` rules never reach /service/...
 *
 * A request is allowed when an allow rule grants it and no deny rule
 * touches it; with an ACL file, anything not allowed is denied. For a
 * subscription (a pattern), an allow rule grants it when the rule's pattern
 * covers every channel the subscription could match, and a deny rule
 * touches it when the two patterns share any channel. So a deny of
 * /chat/admin/** also refuses subscribing to /chat/** (wildcards stand
 * only last, so no other form reaches /chat/admin/x), and the root
 * wildcards (slash-star, slash-star-star) are refused unless allowed
 * whole. Meta channels are not named in rules: no client may subscribe
 * to them and the dispatcher matches their names exactly
 * (/meta/subscribe/x is not /meta/subscribe).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/channel.h"
#include "security.h"

enum who { WHO_ANONYMOUS, WHO_AUTHENTICATED, WHO_ANYONE, WHO_USER };
enum rule_op { OP_SUBSCRIBE, OP_PUBLISH, OP_SERVICE };

typedef struct rule {
	bool allow;
	enum who who;
	char *user; /* WHO_USER */
	enum rule_op op;
	char *patterns[BX_AUTH_PATTERNS_MAX];
	size_t npatterns;
} rule;

struct bx_acl {
	rule *rules;
	size_t n, cap;
};

void bx_acl_free(bx_acl *acl)
{
	if (!acl)
		return;
	for (size_t i = 0; i < acl->n; i++) {
		free(acl->rules[i].user);
		for (size_t k = 0; k < acl->rules[i].npatterns; k++)
			free(acl->rules[i].patterns[k]);
	}
	free(acl->rules);
	free(acl);
}

/* Parses one non-empty line into r; NULL or what is wrong. */
static const char *parse_line(char *line, rule *r)
{
	char *save = NULL;
	char *action = strtok_r(line, " \t", &save);
	char *who = strtok_r(NULL, " \t", &save);
	char *op = strtok_r(NULL, " \t", &save);
	if (!action || !who || !op)
		return "a rule is: allow|deny WHO subscribe|publish|service PATTERN...";
	if (strcmp(action, "allow") == 0)
		r->allow = true;
	else if (strcmp(action, "deny") == 0)
		r->allow = false;
	else
		return "a rule starts with allow or deny";
	if (strcmp(who, "anonymous") == 0)
		r->who = WHO_ANONYMOUS;
	else if (strcmp(who, "authenticated") == 0)
		r->who = WHO_AUTHENTICATED;
	else if (strcmp(who, "anyone") == 0)
		r->who = WHO_ANYONE;
	else if (strncmp(who, "user:", 5) == 0 && who[5]) {
		r->who = WHO_USER;
		if (!(r->user = strdup(who + 5)))
			return "out of memory";
	} else
		return "WHO is anonymous, authenticated, anyone or user:NAME";
	if (strcmp(op, "subscribe") == 0)
		r->op = OP_SUBSCRIBE;
	else if (strcmp(op, "publish") == 0)
		r->op = OP_PUBLISH;
	else if (strcmp(op, "service") == 0)
		r->op = OP_SERVICE;
	else
		return "the operation is subscribe, publish or service";
	char *p;
	while ((p = strtok_r(NULL, " \t", &save))) {
		unsigned flags;
		if (!bx_channel_check(p, strlen(p), &flags))
			return "not a channel name or wildcard pattern (e.g. /chat/**)";
		if (flags & BX_CH_META)
			return "/meta channels are not named in rules: no client may subscribe to "
			       "them, and the server handles them itself";
		if (r->op == OP_SERVICE && !(flags & BX_CH_SERVICE))
			return "a service rule names /service/... patterns";
		if (r->op != OP_SERVICE && (flags & BX_CH_SERVICE))
			return "/service/... patterns belong in service rules";
		if (r->npatterns == BX_AUTH_PATTERNS_MAX)
			return "too many patterns in one rule (at most 64)";
		if (!(r->patterns[r->npatterns++] = strdup(p)))
			return "out of memory";
	}
	if (r->npatterns == 0)
		return "a rule names at least one pattern";
	return NULL;
}

bx_acl *bx_acl_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot read --acl '%s'", path);
		return NULL;
	}
	bx_acl *acl = calloc(1, sizeof *acl);
	char line[4096];
	unsigned lineno = 0;
	const char *why = acl ? NULL : "out of memory";
	while (!why && fgets(line, sizeof line, f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			why = "line longer than 4095 characters";
			break;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		if (strspn(line, " \t") == strlen(line))
			continue;
		if (acl->n == acl->cap) {
			size_t cap = acl->cap ? acl->cap * 2 : 16;
			rule *v = realloc(acl->rules, cap * sizeof *v);
			if (!v) {
				why = "out of memory";
				break;
			}
			acl->rules = v;
			acl->cap = cap;
		}
		rule *r = &acl->rules[acl->n++];
		memset(r, 0, sizeof *r);
		why = parse_line(line, r);
	}
	fclose(f);
	if (why) {
		snprintf(err, errlen, "--acl %s:%u: %s", path, lineno, why);
		bx_acl_free(acl);
		return NULL;
	}
	return acl;
}

static bool applies_to(const rule *r, const char *subject)
{
	switch (r->who) {
	case WHO_ANYONE:
		return true;
	case WHO_ANONYMOUS:
		return subject == NULL;
	case WHO_AUTHENTICATED:
		return subject != NULL;
	default:
		return subject && strcmp(subject, r->user) == 0;
	}
}

bool bx_acl_allows(const bx_acl *acl, const char *subject, enum bx_acl_op op, const char *channel)
{
	unsigned flags;
	if (!bx_channel_check(channel, strlen(channel), &flags) || (flags & BX_CH_META))
		return false;
	enum rule_op want = (flags & BX_CH_SERVICE)  ? OP_SERVICE
	                    : op == BX_ACL_SUBSCRIBE ? OP_SUBSCRIBE
	                                             : OP_PUBLISH;
	bool allowed = false;
	for (size_t i = 0; i < acl->n; i++) {
		const rule *r = &acl->rules[i];
		if (r->op != want || !applies_to(r, subject))
			continue;
		for (size_t k = 0; k < r->npatterns; k++) {
			if (r->allow && !allowed && bx_pattern_covers(r->patterns[k], channel))
				allowed = true;
			if (!r->allow && bx_pattern_overlaps(r->patterns[k], channel))
				return false;
		}
	}
	return allowed;
}
