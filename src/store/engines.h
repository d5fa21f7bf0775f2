/*
 * engines.h — how the composition root (src/lib/server.c) and the tests open
 * a history store engine. The core sees only bx_store (src/core/store.h).
 */
#ifndef BX_STORE_ENGINES_H
#define BX_STORE_ENGINES_H

#include <stdbool.h>
#include <stddef.h>

#include "bayeux.h"
#include "core/store.h"

/* In-memory rings, one per channel: nothing survives a restart; done is
 * called before append returns. Returns 0 or -BX_ENOMEM. */
int bx_store_memory_open(bx_store *out);

/* LMDB in folder dir (created if missing): every append is durable (one
 * write transaction and sync shared by the appends that arrive together,
 * made by the engine's writer thread, which calls done). map_size is the
 * most bytes the file may hold (0: 1 GiB). full_sync false: the meta page
 * is not synced (MDB_NOMETASYNC; see lmdb.c). Returns 0, or a negative BX_E*
 * code with the reason in err. */
int bx_store_lmdb_open(const char *dir, size_t map_size, bool full_sync, bx_store *out, char *err,
                       size_t errlen);

struct bx_buf;
/* The LMDB engine's /metrics families (a bx_metrics_fn; self: its
 * bx_store.self). */
void bx_store_lmdb_metrics(void *self, struct bx_buf *out);

struct bx_server;
/* Parses cfg's --retain rules and opens the engine cfg->store_dir asks for
 * into srv->history (left NULL without rules); with shared (a cluster's
 * store, handed over by the composition root), history lives there
 * (bx_config_check refuses --store with --redis). Returns 0, or a negative BX_E* code (reason logged). */
int bx_history_open(struct bx_server *srv, const bx_config *cfg, const bx_store *shared);

#endif
