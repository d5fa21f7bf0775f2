#!/bin/bash
# The layering rules of docs/ARCHITECTURE.md, checked on the tree and on the
# build's objects. Prints one TAP-like line per rule and "layers: N passed,
# M failed"; exits non-zero when a rule is broken.
#
#   tests/layers/check.sh [BUILDDIR]
#
# 1. No file under src/core/ includes libmicrohttpd, wslay, hiredis, LMDB or
#    systemd headers, nor a header of src/http, src/security, src/store or
#    src/cluster: every quoted include of the core names a header that is in
#    src/core/ (or the public include/bayeux.h).
# 2. No file under src/store/ or src/cluster/ includes src/http/ or another
#    engine's folder: an engine plugs into the core's interfaces only.
# 3. The modules of the core import each other without a circle: module A
#    imports B when A's object file uses a function that B's defines (read
#    with nm from the build, so it is what the linker sees, not a guess from
#    the text). The one allowed shape is a dispatcher and its verbs sharing
#    the reply module, which is no circle at all.
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${BUILDDIR:-$src/build}}
pass=0
fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
notok() { echo "not ok - $1"; fail=$((fail + 1)); }

# ---- 1. what the core includes ------------------------------------------------
bad=""
for f in "$src"/src/core/*.[ch]; do
	while IFS= read -r line; do
		inc=$(echo "$line" | sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*\([<"][^>"]*[>"]\).*/\1/p')
		[ -n "$inc" ] || continue
		name=${inc:1:${#inc}-2}
		case "$inc" in
		\<*)
			case "$name" in
			microhttpd.h | wslay/* | hiredis/* | hiredis.h | lmdb.h | systemd/* | adapters/*)
				bad+="  ${f#$src/}: $inc (an engine's or a transport's library)"$'\n' ;;
			esac ;;
		\"*)
			if [ "$name" != "bayeux.h" ] && [ ! -f "$src/src/core/$name" ]; then
				bad+="  ${f#$src/}: $inc (not a header of src/core)"$'\n'
			fi ;;
		esac
	done <"$f"
done
if [ -z "$bad" ]; then
	ok "src/core includes only libc, pthreads, json-c, libsodium and its own headers"
else
	notok "src/core includes what it must not:"
	printf '%s' "$bad"
fi

# ---- 2. engines reach the core only --------------------------------------------
bad=""
for dir in store cluster; do
	[ -d "$src/src/$dir" ] || continue
	for f in "$src"/src/$dir/*.[ch]; do
		[ -e "$f" ] || continue
		while IFS= read -r inc; do
			case "$inc" in
			*http/* | *security/* | *microhttpd.h*) bad+="  ${f#$src/}: $inc"$'\n' ;;
			*store/* | *cluster/*) case "$inc" in *"$dir/"*) ;; *) bad+="  ${f#$src/}: $inc"$'\n' ;; esac ;;
			esac
		done < <(grep -E '^[[:space:]]*#[[:space:]]*include' "$f")
	done
done
if [ -z "$bad" ]; then
	ok "src/store and src/cluster include the core's interfaces, never HTTP or each other"
else
	notok "an engine includes another layer:"
	printf '%s' "$bad"
fi

# ---- 3. no import circle between the core's modules ---------------------------
objs=$(ls "$build"/src/core/.libs/*.o 2>/dev/null)
if [ -z "$objs" ]; then
	notok "no core objects under $build/src/core/.libs (build first)"
else
	cycles=$(for o in $objs; do
		m=$(basename "$o" .o)
		m=${m#libbayeux_core_la-}
		nm "$o" | awk -v m="$m" '$2 == "T" { print "D", m, $3 } $1 == "U" { print "U", m, $2 }'
	done | python3 -c '
import sys, collections
defs, uses = {}, collections.defaultdict(set)
rows = [l.split() for l in sys.stdin]
for k, m, sym in rows:
    if k == "D": defs[sym] = m
for k, m, sym in rows:
    if k == "U" and sym in defs and defs[sym] != m: uses[m].add(defs[sym])
# Tarjan: strongly connected components of more than one module are circles.
index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in sorted(uses[v]):
        if w not in index: visit(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: out.append(sorted(comp))
for v in sorted(set(defs.values()) | set(uses)):
    if v not in index: visit(v)
for c in out:
    print("  circle: " + " <-> ".join(c))
    for a in c:
        print("    %s imports %s" % (a, ", ".join(sorted(b for b in uses[a] if b in c))))
')
	if [ -z "$cycles" ]; then
		ok "the core's modules import each other without a circle"
	else
		notok "import circles between the core's modules:"
		echo "$cycles"
	fi
fi

echo "layers: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
