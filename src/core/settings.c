/* settings.c — defaults and ranges of every server setting (see settings.h). */
#include "settings.h"
#include "history.h"

#include <stdio.h>
#include <string.h>

#define KIB      1024
#define MIB      (1024 * 1024)
#define F(field) offsetof(bx_config, field)

const bx_limit bx_limits[] = {
        {"timeout", "ms", BX_OPT_I64, F(timeout_ms), 30000, 0, 600000,
         "how long a /meta/connect is held when there is nothing to deliver"},
        {"interval", "ms", BX_OPT_I64, F(interval_ms), 0, 0, 600000,
         "pause advised to clients between two connects"},
        {"max-interval", "ms", BX_OPT_I64, F(max_interval_ms), 10000, 1000, 3600000,
         "a session with no connect for interval + this long expires"},
        {"max-body", "bytes", BX_OPT_SIZE, F(max_body), 512 * KIB, KIB, 64 * MIB,
         "largest request body; larger gets HTTP 413"},
        {"max-batch", "messages", BX_OPT_SIZE, F(max_batch), 4096, 1, 100000,
         "most messages in one request; more gets HTTP 400"},
        {"max-queue", "messages", BX_OPT_SIZE, F(max_queue), 10000, 1, 10000000,
         "messages queued per session; past it the oldest is dropped"},
        {"max-sessions", "sessions", BX_OPT_SIZE, F(max_sessions), 100000, 1, 10000000,
         "sessions in total; past it handshakes get 503::too_many_sessions"},
        {"max-sessions-per-ip", "sessions", BX_OPT_SIZE, F(max_sessions_per_ip), 1000, 0, 10000000,
         "sessions per client address; past it 503::too_many_sessions_per_ip; 0 = no limit"},
        {"max-handshakes-per-ip", "per second", BX_OPT_UNSIGNED, F(max_handshakes_per_ip), 20, 0,
         1000000, "handshakes per client address per second; past it 429::too_many_handshakes; 0 = no limit"},
        {"max-subscriptions", "subscriptions", BX_OPT_SIZE, F(max_subscriptions), 1000, 1, 1000000,
         "subscriptions per session; past it 403::too_many_subscriptions"},
        {"threads", "threads", BX_OPT_UNSIGNED, F(threads), 0, 0, 256,
         "HTTP threads (epoll loops); 0 = one per core"},
        {"connection-timeout", "s", BX_OPT_UNSIGNED, F(connection_timeout_s), 60, 1, 3600,
         "an idle or slow connection (not a held connect) is closed after this"},
        {"connection-memory", "bytes", BX_OPT_SIZE, F(connection_memory), 8 * KIB, 4 * KIB, MIB,
         "libmicrohttpd memory pool per connection (headers and replies)"},
        {"shutdown-delay", "ms", BX_OPT_I64, F(shutdown_delay_ms), 0, 0, 600000,
         "on SIGTERM, answer /healthz with 503 and keep serving this long before stopping"},
        {"max-sessions-per-browser", "connects", BX_OPT_UNSIGNED, F(max_sessions_per_browser), 1, 0,
         1000,
         "held connects per browser (BAYEUX_BROWSER cookie); another tab polls instead; 0 = no "
         "limit"},
        {"multi-session-interval", "ms", BX_OPT_I64, F(multi_session_interval_ms), 2000, 100,
         600000, "interval advised to a browser's tabs beyond --max-sessions-per-browser"},
        {"cors-max-age", "s", BX_OPT_UNSIGNED, F(cors_max_age_s), 1800, 0, 86400,
         "how long a browser may cache a CORS preflight answer"},
        {"sse", "0 or 1", BX_OPT_UNSIGNED, F(sse), 1, 0, 1,
         "offer Server-Sent Events: the eventsource connection type and <path>/sse"},
        {"sse-heartbeat", "ms", BX_OPT_I64, F(sse_heartbeat_ms), 15000, 100, 300000,
         "an SSE stream with no event for this long gets a comment line (proxies, dead peers)"},
        {"sse-max-age", "ms", BX_OPT_I64, F(sse_max_age_ms), 300000, 0, 86400000,
         "an SSE stream ends after this long; the client reconnects; 0 = never"},
        {"sse-max-bytes", "bytes", BX_OPT_SIZE, F(sse_max_bytes), 4 * MIB, 0, 1024 * MIB,
         "an SSE stream ends after this many bytes; the client reconnects; 0 = no limit"},
        {"sse-retry", "ms", BX_OPT_I64, F(sse_retry_ms), 1000, 0, 600000,
         "reconnection delay sent to SSE clients (the retry: field)"},
        {"store-sync", "0 or 1", BX_OPT_UNSIGNED, F(store_sync), 1, 0, 1,
         "--store: 1 syncs every write fully; 0 leaves LMDB's meta page unsynced (faster; the "
         "last writes may be lost to a power loss, never to a crash of bayeuxd)"},
        {"websocket", "0 or 1", BX_OPT_UNSIGNED, F(websocket), 1, 0, 1,
         "offer WebSocket: the websocket connection type, upgrades on <path> and below"},
        {"ws-max-pending", "bytes", BX_OPT_SIZE, F(ws_max_pending), MIB, 16 * KIB, 1024 * MIB,
         "unsent bytes a WebSocket may have; past it it is closed (1008) and the session queues"},
        {"ws-ping", "ms", BX_OPT_I64, F(ws_ping_ms), 25000, 0, 600000,
         "a ping to a WebSocket silent this long; silent as long again: closed; 0 = never"},
        {"sse-replay", "messages", BX_OPT_SIZE, F(sse_replay), 256, 0, 100000,
         "messages a session keeps so a reconnecting stream's Last-Event-ID gets what it missed"},
};
const size_t bx_nlimits = sizeof bx_limits / sizeof bx_limits[0];

int64_t bx_limit_get(const bx_config *cfg, const bx_limit *l)
{
	const char *p = (const char *)cfg + l->offset;
	switch (l->type) {
	case BX_OPT_I64:
		return *(const int64_t *)(const void *)p;
	case BX_OPT_SIZE:
		return (int64_t) * (const size_t *)(const void *)p;
	default:
		return (int64_t) * (const unsigned *)(const void *)p;
	}
}

void bx_limit_set(bx_config *cfg, const bx_limit *l, int64_t v)
{
	char *p = (char *)cfg + l->offset;
	switch (l->type) {
	case BX_OPT_I64:
		*(int64_t *)(void *)p = v;
		break;
	case BX_OPT_SIZE:
		*(size_t *)(void *)p = (size_t)v;
		break;
	default:
		*(unsigned *)(void *)p = (unsigned)v;
	}
}

void bx_config_init(bx_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->listen_host = "127.0.0.1";
	cfg->listen_port = 8080;
	cfg->path = "/cometd";
	cfg->log_level = BX_LOG_INFO;
	for (size_t i = 0; i < bx_nlimits; i++)
		bx_limit_set(cfg, &bx_limits[i], bx_limits[i].def);
}

int bx_config_check(const bx_config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < bx_nlimits; i++) {
		const bx_limit *l = &bx_limits[i];
		int64_t v = bx_limit_get(cfg, l);
		if (v < l->min || v > l->max) {
			snprintf(err, errlen, "--%s must be between %lld and %lld (%s), got %lld",
			         l->flag, (long long)l->min, (long long)l->max, l->unit,
			         (long long)v);
			return -BX_EINVAL;
		}
	}
	const char *p = cfg->path;
	if (!p || p[0] != '/' || strlen(p) > 256 || (strlen(p) > 1 && p[strlen(p) - 1] == '/') ||
	    strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./~") !=
	            strlen(p)) {
		snprintf(err, errlen,
		         "--path must start with '/', not end with '/', and use only letters, "
		         "digits and -_./~, got '%s'",
		         p ? p : "(null)");
		return -BX_EINVAL;
	}
	if (!cfg->listen_host || !cfg->listen_host[0]) {
		snprintf(err, errlen, "--listen needs a host");
		return -BX_EINVAL;
	}
	if (cfg->listen_port > 65535) {
		snprintf(err, errlen, "--listen port must be between 0 and 65535, got %u",
		         cfg->listen_port);
		return -BX_EINVAL;
	}
	if (cfg->metrics_host && (!cfg->metrics_host[0] || cfg->metrics_port > 65535)) {
		snprintf(err, errlen, "--metrics-listen needs a host and a port between 0 and 65535");
		return -BX_EINVAL;
	}
	if (cfg->cookie_samesite < BX_SAMESITE_LAX || cfg->cookie_samesite > BX_SAMESITE_NONE) {
		snprintf(err, errlen, "--cookie-samesite must be Lax, Strict or None");
		return -BX_EINVAL;
	}
	if ((cfg->n_allow_origins && !cfg->allow_origins) ||
	    (cfg->n_web_mounts && !cfg->web_mounts)) {
		snprintf(err, errlen, "allow_origins and web_mounts need an array when counted");
		return -BX_EINVAL;
	}
	if (cfg->publish_token) {
		size_t n = strlen(cfg->publish_token);
		if (n < BX_PUBLISH_TOKEN_MIN || n > BX_PUBLISH_TOKEN_MAX ||
		    strcspn(cfg->publish_token, " \t\r\n") != n) {
			snprintf(err, errlen,
			         "the publish token (--publish-token-file) must be %d to %d "
			         "characters with no spaces, got %zu; make one with: head -c 32 "
			         "/dev/urandom | base64",
			         BX_PUBLISH_TOKEN_MIN, BX_PUBLISH_TOKEN_MAX, n);
			return -BX_EINVAL;
		}
	}
	if (cfg->n_retain > BX_RETAIN_MAX || (cfg->n_retain && !cfg->retain)) {
		snprintf(err, errlen, "at most %d --retain rules", BX_RETAIN_MAX);
		return -BX_EINVAL;
	}
	for (size_t i = 0; i < cfg->n_retain; i++) {
		bx_retain_rule r;
		if (!cfg->retain[i] ||
		    bx_retain_parse(cfg->retain[i], strlen(cfg->retain[i]), &r, err, errlen) != 0) {
			if (!cfg->retain[i])
				snprintf(err, errlen, "--retain: a rule is NULL");
			return -BX_EINVAL;
		}
	}
	if (cfg->store_dir && (!cfg->store_dir[0] || !cfg->n_retain)) {
		snprintf(err, errlen,
		         cfg->store_dir[0] ? "--store needs at least one --retain rule (what to keep)"
		                           : "--store needs a folder");
		return -BX_EINVAL;
	}
	if (cfg->store_dir && cfg->redis) {
		snprintf(err, errlen, "--store and --redis both keep history: with --redis, retained "
		                      "channels' history lives in Redis Streams; drop --store");
		return -BX_EINVAL;
	}
	if (cfg->log_level < BX_LOG_ERROR || cfg->log_level > BX_LOG_DEBUG) {
		snprintf(err, errlen, "--log-level must be error, warn, info or debug");
		return -BX_EINVAL;
	}
	return 0;
}
