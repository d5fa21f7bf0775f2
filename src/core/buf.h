/* buf.h — a growable byte buffer, and JSON text writing helpers. */
#ifndef BX_BUF_H
#define BX_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bx_buf {
	char *data; /* owned; NUL-terminated after every append (not counted in len) */
	size_t len;
	size_t cap;
	bool failed; /* an allocation failed; the content is then incomplete */
} bx_buf;

void bx_buf_init(bx_buf *b);
void bx_buf_free(bx_buf *b);
/* Hands the bytes to the caller (who frees them) and leaves b empty. */
char *bx_buf_steal(bx_buf *b, size_t *len);
void bx_buf_append(bx_buf *b, const void *p, size_t n);
void bx_buf_puts(bx_buf *b, const char *s);
void bx_buf_putc(bx_buf *b, char c);
void bx_buf_printf(bx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* FNV-1a of n bytes: the hash of every table in the broker (sessions,
 * browsers, client addresses, trie children). */
size_t bx_hash(const void *p, size_t n);
/* Appends s (n bytes, may hold NUL) as a quoted JSON string. */
void bx_buf_json_str(bx_buf *b, const char *s, size_t n);

#endif
