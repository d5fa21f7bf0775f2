/*
 * open.c — wires history into a server: parses the --retain rules, opens the
 * engine --store asks for (LMDB in a folder, else memory) and hands it to the
 * core (srv->history). The core itself never includes an engine.
 */
#include <stdio.h>
#include <string.h>

#include "core/history.h"
#include "core/log.h"
#include "core/server.h"
#include "core/stats.h"
#include "engines.h"

int bx_history_open(struct bx_server *srv, const bx_config *cfg, const bx_store *shared)
{
	if (!cfg->n_retain)
		return 0;
	bx_retain_rule rules[BX_RETAIN_MAX];
	char err[512];
	for (size_t i = 0; i < cfg->n_retain; i++)
		if (bx_retain_parse(cfg->retain[i], strlen(cfg->retain[i]), &rules[i], err,
		                    sizeof err) != 0) {
			bx_error("%s", err);
			return -BX_EINVAL;
		}
	bx_store st;
	int rc = shared ? (st = *shared, 0) : cfg->store_dir ? bx_store_lmdb_open(cfg->store_dir, 0, cfg->store_sync != 0, &st,
	                                             err, sizeof err)
	                        : bx_store_memory_open(&st);
	if (rc != 0) {
		bx_error("%s", rc == -BX_ENOMEM ? "out of memory" : err);
		return rc;
	}
	srv->history = bx_history_new(&st, rules, cfg->n_retain);
	if (!srv->history) {
		st.ops->close(st.self);
		return -BX_ENOMEM;
	}
	bx_metrics_add_source(&srv->stats.m, bx_history_metrics, srv->history);
	if (cfg->store_dir)
		bx_metrics_add_source(&srv->stats.m, bx_store_lmdb_metrics, st.self);
	bx_info("history: %zu --retain rule%s, kept %s%s", cfg->n_retain,
	        cfg->n_retain == 1 ? "" : "s",
	        shared ? "in Redis Streams" : cfg->store_dir ? "in LMDB at " : "in memory",
	        cfg->store_dir ? cfg->store_dir : "");
	return 0;
}
