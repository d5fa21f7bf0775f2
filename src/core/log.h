/* log.h — leveled logging to stderr. */
#ifndef BX_LOG_H
#define BX_LOG_H

#include "bayeux.h"

void bx_log_set_level(int level);
int bx_log_get_level(void);
void bx_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define bx_error(...) bx_log(BX_LOG_ERROR, __VA_ARGS__)
#define bx_warn(...)  bx_log(BX_LOG_WARN, __VA_ARGS__)
#define bx_info(...)  bx_log(BX_LOG_INFO, __VA_ARGS__)
#define bx_debug(...)                                                                              \
	do {                                                                                       \
		if (bx_log_get_level() >= BX_LOG_DEBUG)                                            \
			bx_log(BX_LOG_DEBUG, __VA_ARGS__);                                         \
	} while (0)

#endif
