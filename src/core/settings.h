/*
 * settings.h — every tunable number of the server: its default, its range,
 * its flag. One table serves bx_config_init(), bx_server_new()'s checks and
 * the daemon's command line and --help, so the three cannot disagree.
 */
#ifndef BX_SETTINGS_H
#define BX_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "bayeux.h"

enum bx_opt_type { BX_OPT_I64, BX_OPT_SIZE, BX_OPT_UNSIGNED };

typedef struct bx_limit {
	const char *flag; /* the daemon's flag, without "--" */
	const char *unit; /* shown in --help and errors */
	enum bx_opt_type type;
	size_t offset; /* into bx_config */
	int64_t def, min, max;
	const char *help;
} bx_limit;

/* Length of the backend publish token (bx_config.publish_token). */
#define BX_PUBLISH_TOKEN_MIN 16
#define BX_PUBLISH_TOKEN_MAX 4096

extern const bx_limit bx_limits[];
extern const size_t bx_nlimits;

/* Reads and writes a numeric field of cfg as int64. */
int64_t bx_limit_get(const bx_config *cfg, const bx_limit *l);
void bx_limit_set(bx_config *cfg, const bx_limit *l, int64_t v);

/* Checks every numeric field and the strings; returns 0, or -BX_EINVAL with
 * a message naming the flag, the value and the range in err. */
int bx_config_check(const bx_config *cfg, char *err, size_t errlen);

#endif
