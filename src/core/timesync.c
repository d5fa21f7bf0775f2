/*
 * timesync.c — ext.timesync on replies to meta messages (timesync.h).
 */
#include "timesync.h"

#include <math.h>
#include <time.h>

int64_t bx_wall_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* A JSON number as integer milliseconds; false for anything else (or a
 * value no clock reaches, so the arithmetic below cannot overflow). */
static bool get_ms(json_object *o, const char *key, int64_t *out)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		return false;
	if (json_object_is_type(v, json_type_int)) {
		*out = json_object_get_int64(v);
	} else if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);
		if (!isfinite(d) || d > 1e15 || d < -1e15)
			return false;
		*out = (int64_t)(d < 0 ? d - 0.5 : d + 0.5);
	} else {
		return false;
	}
	return *out >= -1000000000000000LL && *out <= 1000000000000000LL;
}

void bx_timesync_read(bx_timesync *t, json_object *ext, int64_t ts)
{
	*t = (bx_timesync){.ts = ts};
	json_object *ts_obj;
	if (!ext || !json_object_object_get_ex(ext, "timesync", &ts_obj) ||
	    !json_object_is_type(ts_obj, json_type_object))
		return;
	if (!get_ms(ts_obj, "tc", &t->tc))
		return;
	t->present = true;
	t->has_l = get_ms(ts_obj, "l", &t->l);
	if (t->has_l && !get_ms(ts_obj, "o", &t->o))
		t->o = 0;
}

bool bx_timesync_write(bx_buf *out, const bx_timesync *t, int64_t now)
{
	if (!t->present)
		return false;
	int64_t p = now - t->ts;
	if (p < 0)
		p = 0; /* the wall clock stepped back meanwhile */
	if (!t->has_l) {
		bx_buf_printf(out, "\"timesync\":{\"tc\":%lld,\"ts\":%lld,\"p\":%lld}",
		              (long long)t->tc, (long long)t->ts, (long long)p);
		return true;
	}
	int64_t a = t->tc + t->o + t->l - t->ts;
	if (t->l != 0 && a > -BX_TIMESYNC_ACCURACY && a < BX_TIMESYNC_ACCURACY)
		return false;
	bx_buf_printf(out, "\"timesync\":{\"tc\":%lld,\"ts\":%lld,\"p\":%lld,\"a\":%lld}",
	              (long long)t->tc, (long long)t->ts, (long long)p, (long long)a);
	return true;
}
