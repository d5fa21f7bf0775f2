/* wire.c — the Redis payload header, pattern translation, --redis URLs. */
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC     "bx1 "
#define MAGIC_LEN (sizeof MAGIC - 1)

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

bool bx_wire_name_ok(const char *name, size_t max)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char(name[i]))
			return false;
	return true;
}

size_t bx_wire_header(char *out, const char *origin, uint64_t seq)
{
	int n = snprintf(out, BX_WIRE_HEADER_MAX, MAGIC "%s %llu\n", origin,
	                 (unsigned long long)seq);
	return n < 0 ? 0 : (size_t)n < BX_WIRE_HEADER_MAX ? (size_t)n : BX_WIRE_HEADER_MAX - 1;
}

size_t bx_wire_cut(char *out, const char *origin, uint64_t token)
{
	int n = snprintf(out, BX_WIRE_HEADER_MAX, MAGIC "%s %llu c\n", origin,
	                 (unsigned long long)token);
	return n < 0 ? 0 : (size_t)n < BX_WIRE_HEADER_MAX ? (size_t)n : BX_WIRE_HEADER_MAX - 1;
}

/* Reads 1 to 20 digits at p[*i] into *v (within uint64); false when none or
 * too many. */
static bool digits(const char *p, size_t len, size_t *i, uint64_t *v)
{
	uint64_t x = 0;
	size_t d = *i;
	while (*i < len && p[*i] >= '0' && p[*i] <= '9') {
		unsigned digit = (unsigned)(p[*i] - '0');
		if (*i - d >= 20 || x > (UINT64_MAX - digit) / 10)
			return false;
		x = x * 10 + digit;
		(*i)++;
	}
	*v = x;
	return *i > d;
}

int bx_wire_parse(const char *p, size_t len, bx_wire_msg *out)
{
	if (len < MAGIC_LEN || memcmp(p, MAGIC, MAGIC_LEN) != 0)
		return -1;
	size_t i = MAGIC_LEN, o = i;
	while (i < len && i - o < BX_ORIGIN_MAX + 1 && (name_char(p[i]) || p[i] == '~'))
		i++;
	if (i == o || i - o > BX_ORIGIN_MAX || i >= len || p[i] != ' ')
		return -1;
	out->origin = p + o;
	out->olen = i - o;
	i++;
	uint64_t seq = 0;
	if (!digits(p, len, &i, &seq) || i >= len)
		return -1;
	out->replay_id = 0;
	out->cut = false;
	if (p[i] == ' ') { /* " r<replay id>" or " c" (a cut) */
		i++;
		if (i < len && p[i] == 'c') {
			out->cut = true;
			i++;
		} else if (i < len && p[i] == 'r') {
			i++;
			if (!digits(p, len, &i, &out->replay_id) || out->replay_id == 0)
				return -1;
		} else {
			return -1;
		}
	}
	if (i >= len || p[i] != '\n')
		return -1;
	i++;
	if (i == len && !out->cut)
		return -1;
	if (out->cut && i != len)
		return -1;
	out->seq = seq;
	out->json = p + i;
	out->jlen = len - i;
	return 0;
}

int bx_wire_stream_id(const char *p, size_t len, uint64_t *id)
{
	size_t i = 0;
	if (!digits(p, len, &i, id) || *id == 0 || i + 2 != len || p[i] != '-' || p[i + 1] != '0')
		return -1;
	return 0;
}

int bx_wire_number(const char *p, size_t len, int64_t *v)
{
	size_t i = 0;
	bool neg = len > 0 && p[0] == '-';
	if (neg)
		i++;
	uint64_t x;
	if (!digits(p, len, &i, &x) || i != len || x > (uint64_t)INT64_MAX)
		return -1;
	*v = neg ? -(int64_t)x : (int64_t)x;
	return 0;
}

/* Appends src to out at *n, a backslash before each Redis glob character. */
static bool put_escaped(char *out, size_t cap, size_t *n, const char *src, size_t len, bool glob)
{
	for (size_t i = 0; i < len; i++) {
		char c = src[i];
		if (glob && (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')) {
			if (*n + 1 >= cap)
				return false;
			out[(*n)++] = '\\';
		}
		if (*n + 1 >= cap)
			return false;
		out[(*n)++] = c;
	}
	return true;
}

size_t bx_wire_redis_key(const char *prefix, const char *pattern, size_t len, bool wild,
                         char *out, size_t cap, bool *is_pattern)
{
	size_t n = 0;
	size_t body = len;
	if (wild) { /* drop the last segment ("*" or "**"), keep its '/' */
		while (body && pattern[body - 1] == '*')
			body--;
	}
	if (!put_escaped(out, cap, &n, prefix, strlen(prefix), wild) ||
	    !put_escaped(out, cap, &n, ":", 1, wild) ||
	    !put_escaped(out, cap, &n, pattern, body, wild))
		return 0;
	if (wild) {
		if (n + 1 >= cap)
			return 0;
		out[n++] = '*';
	}
	out[n] = '\0';
	*is_pattern = wild;
	return n;
}

static int fail(char *err, size_t errlen, const char *url, const char *why)
{
	snprintf(err, errlen,
	         "--redis %s: %s (expected redis://HOST[:PORT][/DB] or unix:/PATH)", url, why);
	return -1;
}

int bx_redis_url_parse(const char *url, bx_redis_addr *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	out->port = 6379;
	if (!url || !*url)
		return fail(err, errlen, "\"\"", "empty");
	if (strncmp(url, "unix:", 5) == 0) {
		const char *path = url + 5;
		if (path[0] != '/')
			return fail(err, errlen, url, "the socket path must be absolute");
		if (strlen(path) >= sizeof out->path)
			return fail(err, errlen, url, "the socket path is too long");
		strcpy(out->path, path);
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0)
		return fail(err, errlen, url, "unknown scheme");
	const char *h = url + 8;
	if (strchr(h, '@'))
		return fail(err, errlen, url, "passwords in the URL are not supported");
	size_t hl = strcspn(h, ":/");
	if (hl == 0 || hl >= sizeof out->host)
		return fail(err, errlen, url, "missing or too long host");
	memcpy(out->host, h, hl);
	out->host[hl] = '\0';
	const char *p = h + hl;
	if (*p == ':') {
		char *end;
		p++;
		if (*p < '0' || *p > '9')
			return fail(err, errlen, url, "bad port");
		unsigned long port = strtoul(p, &end, 10);
		if (port == 0 || port > 65535 || (*end && *end != '/'))
			return fail(err, errlen, url, "bad port");
		out->port = (unsigned)port;
		p = end;
	}
	if (*p == '/') {
		p++;
		if (*p) {
			char *end;
			if (*p < '0' || *p > '9')
				return fail(err, errlen, url, "bad database number");
			unsigned long db = strtoul(p, &end, 10);
			if (*end || db > 1000000)
				return fail(err, errlen, url, "bad database number");
			out->db = (unsigned)db;
		}
	} else if (*p) {
		return fail(err, errlen, url, "unexpected characters after the host");
	}
	return 0;
}
