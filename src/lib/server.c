/*
 * server.c — libbayeux as a whole: the composition root that builds the
 * core, starts the HTTP layer and the timer around it (create, start, stop,
 * free), and the library's publish entry point.
 */
#include <errno.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hooks.h"
#include "core/channel.h"
#include "core/settings.h"
#include "core/server.h"
#include "core/table.h"
#include "core/verbs.h"
#include "core/json.h"
#include "core/history.h"
#include "http/http.h"
#include "core/dispatch.h"
#include "core/log.h"
#include "core/limits.h"
#include "store/engines.h"
#include "cluster/redis.h"

const char *bx_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case BX_OK:
		return "success";
	case BX_EINVAL:
		return "invalid argument";
	case BX_ENOMEM:
		return "out of memory";
	case BX_ELISTEN:
		return "cannot listen on the configured address";
	case BX_ESTATE:
		return "the server is not in a state that allows this call";
	case BX_ECHANNEL:
		return "the channel name is not valid here";
	case BX_EJSON:
		return "the data is not valid JSON";
	case BX_EREJECTED:
		return "an extension rejected the message";
	default:
		return "unknown error";
	}
}

/* The timer thread's clock: the server's, which tests may replace. */
static int64_t server_now(void *arg)
{
	return bx_now(arg);
}

int bx_server_new(const bx_config *cfg, bx_server **out)
{
	char err[256];
	*out = NULL;
	if (bx_config_check(cfg, err, sizeof err) != 0) {
		bx_error("%s", err);
		return -BX_EINVAL;
	}
	if (sodium_init() < 0) {
		bx_error("libsodium failed to initialise");
		return -BX_ENOMEM;
	}
	bx_server *srv = calloc(1, sizeof *srv);
	if (!srv)
		return -BX_ENOMEM;
	srv->cfg = *cfg;
	bx_swap_init(&srv->publish_token, NULL);
	srv->host = strdup(cfg->listen_host);
	srv->path = strdup(cfg->path);
	if (!srv->host || !srv->path || bx_router_init(&srv->router) != 0) {
		free(srv->host);
		free(srv->path);
		free(srv);
		return -BX_ENOMEM;
	}
	srv->cfg.listen_host = srv->host;
	srv->cfg.path = srv->path;
	srv->conn_types = BX_CT_LONG_POLLING | BX_CT_CALLBACK_POLLING;
	if (cfg->sse)
		srv->conn_types |= BX_CT_EVENTSOURCE;
	if (cfg->websocket)
		srv->conn_types |= BX_CT_WEBSOCKET;
	srv->now = bx_clock_monotonic;
	if (!(srv->peers = bx_peers_new())) {
		bx_router_destroy(&srv->router);
		free(srv->host);
		free(srv->path);
		free(srv);
		return -BX_ENOMEM;
	}
	bx_table_init(&srv->sessions);
	bx_timer_init(&srv->timer, bx_table_timer_fire, srv);
	bx_browsers_init(&srv->browsers);
	/* Browser-facing settings with strings of their own (cors.c, static.c). */
	int wrc = bx_cors_init(srv, cfg);
	if (wrc == 0)
		wrc = bx_static_init(srv, cfg);
	srv->cfg.allow_origins = NULL;
	srv->cfg.n_allow_origins = 0;
	srv->cfg.web_root = NULL;
	srv->cfg.web_mounts = NULL;
	srv->cfg.n_web_mounts = 0;
	if (wrc != 0) {
		bx_server_free(srv);
		return wrc;
	}
	/* Never kept as the caller's pointer: it is a secret they may wipe. */
	srv->cfg.publish_token = NULL;
	if (cfg->publish_token && bx_server_set_publish_token(srv, cfg->publish_token) != 0) {
		bx_server_free(srv);
		return -BX_ENOMEM;
	}
	srv->cfg.metrics_host = NULL;
	if (cfg->metrics_host && !(srv->cfg.metrics_host = srv->metrics_host =
	                                   strdup(cfg->metrics_host))) {
		bx_server_free(srv);
		return -BX_ENOMEM;
	}
	bx_log_set_level(cfg->log_level);
	/* The node bus: its thread connects in the background (a Redis that is
	 * down is retried, not an error). It copies what it keeps. */
	srv->cfg.redis = srv->cfg.redis_prefix = srv->cfg.node_id = NULL;
	if (!cfg->redis && (cfg->redis_prefix || cfg->node_id)) {
		bx_error("%s needs --redis", cfg->node_id ? "--node-id" : "--redis-prefix");
		bx_server_free(srv);
		return -BX_EINVAL;
	}
	if (cfg->redis) {
		bx_redis_opts ro = {
		        .url = cfg->redis, .prefix = cfg->redis_prefix, .node_id = cfg->node_id};
		bx_bus *bus = calloc(1, sizeof *bus);
		int brc = bus ? bx_redis_bus_new(srv, &ro, bus) : -BX_ENOMEM;
		if (brc != 0) {
			free(bus);
			bx_server_free(srv);
			return brc;
		}
		srv->bus = bus;
	}
	/* History: with a bus, in the cluster's shared store (Redis Streams). */
	bx_store shared;
	if (srv->bus)
		bx_redis_store(srv->bus, &shared);
	int hrc = bx_history_open(srv, cfg, srv->bus ? &shared : NULL);
	srv->cfg.retain = NULL;
	srv->cfg.n_retain = 0;
	srv->cfg.store_dir = NULL;
	if (hrc != 0) {
		bx_server_free(srv);
		return hrc;
	}
	*out = srv;
	return 0;
}

int bx_server_start(bx_server *srv)
{
	if (srv->http || srv->timer.started || atomic_load(&srv->stopped))
		return -BX_ESTATE;
	int rc = bx_timer_start(&srv->timer, server_now, srv);
	if (rc != 0)
		return rc;
	rc = bx_http_start(srv);
	if (rc != 0) {
		bx_timer_join(&srv->timer);
		return rc;
	}
	return 0;
}

unsigned bx_server_port(const bx_server *srv)
{
	return bx_http_port((bx_server *)srv);
}

int bx_publish(bx_server *srv, const char *channel, const char *data, size_t len)
{
	unsigned flags;
	size_t chlen = channel ? strlen(channel) : 0;
	if (!channel || !bx_channel_check(channel, chlen, &flags) ||
	    (flags & (BX_CH_META | BX_CH_SERVICE | BX_CH_WILD)))
		return -BX_ECHANNEL;
	size_t end = 0;
	enum json_tokener_error jerr;
	json_object *obj = data ? bx_json_parse(data, len, &end, &jerr) : NULL;
	if (!obj && (!data || jerr != json_tokener_success))
		return -BX_EJSON;
	for (; end < len; end++)
		if (!strchr(" \t\r\n", data[end]) || !data[end]) {
			json_object_put(obj);
			return -BX_EJSON;
		}
	char err[BX_API_ERR_MAX];
	bx_msg *m = bx_api_delivery(srv, NULL, channel, chlen, obj, NULL, err);
	json_object_put(obj);
	if (!m)
		return err[0] ? -BX_EREJECTED : -BX_ENOMEM;
	const bx_retain_rule *rule = bx_history_rule(srv->history, channel, chlen);
	if (rule) {
		/* Retained: appended, and delivered once durable (history.h). */
		uint64_t id;
		int rc = bx_history_publish(srv, rule, channel, chlen, m, NULL, NULL, &id);
		bx_msg_unref(m);
		return rc < 0 ? rc : 0;
	}
	size_t n = bx_broadcast(srv, channel, chlen, m);
	bx_msg_unref(m);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

static void wake_for_shutdown(bx_session *s, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&s->lock);
	bx_session_wake_locked(s, BX_WAKE_SHUTDOWN);
	bx_session_end_sink_locked(s, BX_WAKE_SHUTDOWN);
	pthread_mutex_unlock(&s->lock);
}

void bx_server_stop(bx_server *srv)
{
	if (atomic_exchange(&srv->stopped, true))
		return;
	/* /healthz says 503 from here; with a delay, everything else is still
	 * served meanwhile, so a load balancer stops sending clients first. */
	atomic_store(&srv->draining, true);
	int64_t delay = srv->cfg.shutdown_delay_ms;
	if (srv->http && delay > 0) {
		bx_info("stopping in %lld ms (--shutdown-delay); /healthz answers 503", (long long)delay);
		struct timespec ts = {delay / 1000, (long)(delay % 1000) * 1000000};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	atomic_store(&srv->stopping, true);
	if (srv->http) {
		bx_http_quiesce(srv);
		/* New connects are no longer held (stopping); answer the held ones. */
		bx_session_foreach(srv, wake_for_shutdown, NULL);
		/* Publishes waiting for the disk are answered while the
		 * transport can still send. */
		bx_history_close(srv->history);
	}
	/* Replies waiting for the bus are released (unconfirmed) too; no more
	 * deliveries from other nodes. */
	if (srv->bus)
		srv->bus->ops->stop(srv->bus->self);
	if (srv->http)
		bx_http_stop(srv);
	bx_timer_join(&srv->timer);
}

void bx_server_free(bx_server *srv)
{
	if (!srv)
		return;
	bx_server_stop(srv);
	bx_table_destroy(srv);
	bx_timer_destroy(&srv->timer, bx_table_timer_drop);
	bx_browsers_destroy(&srv->browsers);
	bx_cors_free(srv);
	bx_static_free(srv);
	bx_router_destroy(&srv->router);
	if (srv->bus) { /* after the sessions: their unsubscribes went to it */
		srv->bus->ops->close(srv->bus->self);
		free(srv->bus);
		srv->bus = NULL;
	}
	bx_api_free(srv);
	bx_peers_free(srv->peers);
	bx_history_free(srv->history);
	char *token = bx_swap_destroy(&srv->publish_token);
	if (token) {
		sodium_memzero(token, strlen(token));
		free(token);
	}
	free(srv->metrics_host);
	free(srv->host);
	free(srv->path);
	free(srv);
}
