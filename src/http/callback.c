/*
 * transport_callback.c — the callback-polling (JSONP) wire (PROTOCOL.md §6).
 *
 * A page on another origin adds <script src="/cometd/connect?jsonp=CB&
 * message=[...]">; the reply is JavaScript that calls CB with the same JSON
 * array long polling would have sent. http.c reads the query and holds the
 * request like a long poll; this file says which callback names are
 * acceptable and writes the reply body. Nothing here knows HTTP.
 */
#include <string.h>

#include "core/server.h"
#include "core/dispatch.h"
#include "http.h"

/* True when c may start a callback name: [A-Za-z_$]. */
static bool name_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '$';
}

bool bx_jsonp_callback_ok(const char *name)
{
	if (!name || !name_start(name[0]))
		return false;
	size_t n = 1;
	for (; name[n]; n++) {
		char c = name[n];
		if (n >= BX_JSONP_CALLBACK_MAX)
			return false;
		if (!name_start(c) && !(c >= '0' && c <= '9') && c != '.')
			return false;
	}
	return true;
}

void bx_jsonp_wrap(bx_buf *out, const char *name, const char *json, size_t len)
{
	/* The leading comment keeps a response that starts with attacker-chosen
	 * bytes from being read as another file type (the "Rosetta Flash" fix). */
	bx_buf_puts(out, "/**/");
	bx_buf_puts(out, name);
	bx_buf_putc(out, '(');
	/* U+2028 and U+2029 are valid in JSON strings but end a line in older
	 * JavaScript: write them as escapes. In JSON text they can only occur
	 * inside strings, where \u2028 means the same character. */
	size_t start = 0;
	for (size_t i = 0; i + 2 < len; i++) {
		if ((unsigned char)json[i] == 0xE2 && (unsigned char)json[i + 1] == 0x80 &&
		    ((unsigned char)json[i + 2] == 0xA8 || (unsigned char)json[i + 2] == 0xA9)) {
			bx_buf_append(out, json + start, i - start);
			bx_buf_puts(out,
			            (unsigned char)json[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
			i += 2;
			start = i + 1;
		}
	}
	bx_buf_append(out, json + start, len - start);
	bx_buf_puts(out, ");");
}
