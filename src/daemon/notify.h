/*
 * notify.h — readiness and status for systemd (Type=notify services): the
 * NOTIFY_SOCKET datagram protocol of sd_notify(3), spoken directly so the
 * daemon needs no libsystemd.
 */
#ifndef BXD_NOTIFY_H
#define BXD_NOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=listening") to the socket named by
 * $NOTIFY_SOCKET: a path, or '@' then an abstract name. Returns 1 when
 * sent, 0 when NOTIFY_SOCKET is unset (not run by systemd: nothing to do),
 * or -errno when it is set but sending failed. */
int bxd_notify(const char *state);

/* As bxd_notify(), for a reload: "RELOADING=1" with MONOTONIC_USEC (what
 * Type=notify-reload expects; plain Type=notify accepts it too). */
int bxd_notify_reloading(void);

#endif
