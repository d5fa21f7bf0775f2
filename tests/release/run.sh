#!/bin/bash
# The release checks, run once (not per build) by scripts/test-all:
#   1. `make distcheck`: the tarball builds, passes the unit tests
#      (--with-check=unit, see Makefile.am), installs and uninstalls cleanly;
#   2. `dpkg-buildpackage -b -us -uc` from that tarball: bayeuxd, libbayeux0
#      and libbayeux-dev;
#   3. the packages unpacked into a scratch root (dpkg -x) hold every file
#      in its place; the installed daemon starts on the installed sample
#      config; a program builds against the installed header and library;
#      systemd-analyze verifies the installed unit.
# Prints progress, one "ok"/"not ok" line per check, then
# "release: N passed, M failed"; writes "N M" to $RELEASE_BUILD/test-counts.
# Environment: RELEASE_BUILD (scratch folder, default build-release; emptied).
set -uo pipefail
cd "$(dirname "$0")/../.."
src=$(pwd)
work=$src/${RELEASE_BUILD:-build-release}
passed=0
failed=0
t0=$SECONDS
step() { echo "release: [$((SECONDS - t0)) s] $*"; }
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() {
	echo "not ok - $1"
	failed=$((failed + 1))
}
finish() {
	echo "$passed $failed" >"$work/test-counts"
	echo "release: $passed passed, $failed failed ($((SECONDS - t0)) s; logs in $work)"
	[ "$failed" -eq 0 ]
	exit
}
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

rm -rf "$work"
mkdir -p "$work"
[ -x configure ] || ./autogen.sh >/dev/null

step "make distcheck (configure, dist, build from the tarball, unit tests, install, uninstall)"
if (cd "$work" && "$src/configure" -q && make -s distcheck) >"$work/distcheck.log" 2>&1; then
	ok "make distcheck"
else
	not_ok "make distcheck (see $work/distcheck.log)"
	tail -30 "$work/distcheck.log"
	finish
fi
tarball=$(ls "$work"/bayeuxd-*.tar.gz | head -1)

step "dpkg-buildpackage -b -us -uc from $(basename "$tarball")"
mkdir -p "$work/deb"
tar -C "$work/deb" -xzf "$tarball"
srcdir=$(ls -d "$work"/deb/bayeuxd-*/)
if command -v dpkg-buildpackage >/dev/null 2>&1 &&
	(cd "$srcdir" && dpkg-buildpackage -b -us -uc) >"$work/dpkg-buildpackage.log" 2>&1; then
	ok "dpkg-buildpackage builds $(cd "$work/deb" && echo *.deb)"
else
	not_ok "dpkg-buildpackage (see $work/dpkg-buildpackage.log)"
	tail -30 "$work/dpkg-buildpackage.log"
	finish
fi

step "unpacking the packages into a scratch root"
root=$work/root
mkdir -p "$root"
for p in bayeuxd libbayeux0 libbayeux-dev; do
	deb=$(ls "$work"/deb/${p}_*.deb 2>/dev/null | head -1)
	if [ -n "$deb" ] && dpkg -x "$deb" "$root"; then ok "package $p unpacks"; else not_ok "package $p is missing"; fi
done
has() { # has PACKAGE FILE...: each file is in PACKAGE's listing and in the root
	local p=$1 f missing=()
	shift
	local listing
	listing=$(dpkg -c "$work"/deb/${p}_*.deb | awk '{print $6}')
	for f in "$@"; do
		# shellcheck disable=SC2053
		if ! grep -qx "\./$f" <<<"$listing" || [ ! -e "$root/$f" ]; then missing+=("$f"); fi
	done
	[ ${#missing[@]} -eq 0 ] || echo "  $p lacks: ${missing[*]}"
	[ ${#missing[@]} -eq 0 ]
}
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
check "bayeuxd holds the daemon, its man page, the unit, the sample config and the demo" \
	has bayeuxd usr/bin/bayeuxd usr/share/man/man8/bayeuxd.8.gz lib/systemd/system/bayeuxd.service \
	etc/bayeuxd/bayeuxd.conf usr/share/bayeuxd/web/index.html usr/share/bayeuxd/web/chat.js
check "libbayeux0 holds the shared library" has libbayeux0 usr/lib/$multiarch/libbayeux.so.0
check "libbayeux-dev holds the header, the .so link, bayeux.pc and libbayeux(3)" \
	has libbayeux-dev usr/include/bayeux.h usr/lib/$multiarch/libbayeux.so \
	usr/lib/$multiarch/pkgconfig/bayeux.pc usr/share/man/man3/libbayeux.3.gz
check "the sample config is a conffile of bayeuxd" \
	sh -c "dpkg-deb -e '$(ls "$work"/deb/bayeuxd_*.deb)' '$work/ctl' && grep -qx /etc/bayeuxd/bayeuxd.conf '$work/ctl/conffiles'"
check "bayeuxd depends on libmicrohttpd, json-c and libsodium" \
	sh -c "dpkg-deb -f '$(ls "$work"/deb/bayeuxd_*.deb)' Depends | grep -q libmicrohttpd && dpkg-deb -f '$(ls "$work"/deb/bayeuxd_*.deb)' Depends | grep -q libjson-c && dpkg-deb -f '$(ls "$work"/deb/bayeuxd_*.deb)' Depends | grep -q libsodium"

step "running what was installed"
check "the installed bayeuxd says its version" \
	sh -c "'$root/usr/bin/bayeuxd' --version | grep -q '^bayeuxd [0-9]'"
# The installed sample config must start the daemon (on a free port: the
# command line wins over the file's listen).
run_installed() {
	local log=$work/installed-daemon.log pid i
	"$root/usr/bin/bayeuxd" --config "$root/etc/bayeuxd/bayeuxd.conf" --listen 127.0.0.1:0 >"$log" 2>&1 &
	pid=$!
	for i in $(seq 1 100); do
		grep -q 'listening on' "$log" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	local rc=$?
	grep -q 'listening on' "$log" && [ "$rc" -eq 0 ] || { cat "$log"; return 1; }
}
check "the installed bayeuxd starts on the installed sample config and stops cleanly" run_installed
build_embed() {
	cc -o "$work/embed" "$src/examples/embed.c" -I"$root/usr/include" \
		-L"$root/usr/lib/$multiarch" -lbayeux -pthread >"$work/embed.log" 2>&1 &&
		LD_LIBRARY_PATH="$root/usr/lib/$multiarch" ldd "$work/embed" | grep -q "$root/usr/lib/$multiarch/libbayeux.so.0"
}
check "examples/embed.c builds against the installed header and library" build_embed
check "bayeux.pc names -lbayeux" grep -q -- '-lbayeux' "$root/usr/lib/$multiarch/pkgconfig/bayeux.pc"
verify_unit() {
	if ! command -v systemd-analyze >/dev/null 2>&1; then
		echo "  systemd-analyze is missing (apt-get install systemd)"
		return 1
	fi
	sed "s|/usr/bin/bayeuxd|$root/usr/bin/bayeuxd|" "$root/lib/systemd/system/bayeuxd.service" >"$work/bayeuxd.service"
	MANPATH=$root/usr/share/man systemd-analyze verify "$work/bayeuxd.service"
}
check "systemd-analyze verify accepts the installed unit (and finds bayeuxd(8))" verify_unit
finish
