/* buf.c — growable byte buffer and JSON string escaping. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bx_buf_init(bx_buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = false;
}

void bx_buf_free(bx_buf *b)
{
	free(b->data);
	bx_buf_init(b);
}

char *bx_buf_steal(bx_buf *b, size_t *len)
{
	char *d = b->data;
	if (len)
		*len = b->len;
	bx_buf_init(b);
	return d;
}

/* Makes room for n more bytes plus a NUL; false (and b->failed) on OOM. */
static bool reserve(bx_buf *b, size_t n)
{
	if (b->failed)
		return false;
	if (b->len + n + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n + 1)
		cap *= 2;
	char *d = realloc(b->data, cap);
	if (!d) {
		b->failed = true;
		return false;
	}
	b->data = d;
	b->cap = cap;
	return true;
}

void bx_buf_append(bx_buf *b, const void *p, size_t n)
{
	if (!reserve(b, n))
		return;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void bx_buf_puts(bx_buf *b, const char *s)
{
	bx_buf_append(b, s, strlen(s));
}

void bx_buf_putc(bx_buf *b, char c)
{
	bx_buf_append(b, &c, 1);
}

void bx_buf_printf(bx_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

size_t bx_hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ULL;
	return (size_t)h;
}

void bx_buf_json_str(bx_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (!s)
		n = 0, s = ""; /* no arithmetic on a null pointer, even with n 0 */
	bx_buf_putc(b, '"');
	size_t run = 0; /* start of the pending run of bytes that need no escape */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[7];
		if (c == '"')
			esc = "\\\"";
		else if (c == '\\')
			esc = "\\\\";
		else if (c == '\n')
			esc = "\\n";
		else if (c == '\r')
			esc = "\\r";
		else if (c == '\t')
			esc = "\\t";
		else if (c < 0x20) {
			u[0] = '\\', u[1] = 'u', u[2] = '0', u[3] = '0';
			u[4] = hex[c >> 4], u[5] = hex[c & 15], u[6] = '\0';
			esc = u;
		}
		if (esc) {
			bx_buf_append(b, s + run, i - run);
			bx_buf_puts(b, esc);
			run = i + 1;
		}
	}
	bx_buf_append(b, s + run, n - run);
	bx_buf_putc(b, '"');
}
