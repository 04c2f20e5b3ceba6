#!/usr/bin/env bash
# Concurrency: 8 containers among 3 hosts, all moved at once (h1 -> h2,
# h2 -> h3, h3 -> h1: every host is source and destination at the same time).
# Every migration succeeds, every workload verifies its memory on its new
# host and runs exactly once, and each cmt's peak memory stays far below the
# memory it moved (it streams; it never holds an image).  Two migrations of
# one workload at once: the second is refused (also in t21, with a crash).
set -u
. "$(dirname "$0")/lib.sh"
require_root
require_cmt
require_cmd runc busybox

MIB=96          # each workload's memory
RSS_BOUND_MIB=48 # each cmt's peak RSS must stay below this

lab_start 3
work=$(mktemp -d /tmp/cmt-t61.XXXXXX)
at_exit rm -rf "$work"
RSH="ssh -F $LAB_SSH_CONFIG"
make -s -C "$REPO/tests/workload" OUT="$work/bin" >/dev/null || bail "cannot build memhog"

next_host() { case $1 in h1) echo h2 ;; h2) echo h3 ;; h3) echo h1 ;; esac; }

ids=(c1 c2 c3 c4 c5 c6 c7 c8)
declare -A from
for i in "${!ids[@]}"; do
	id=${ids[$i]}
	h=h$((i * 3 / 8 + 1)) # c1-c3 on h1, c4-c6 on h2, c7-c8 on h3
	from[$id]=$h
	b=$work/$id
	make_bundle "$b" "$h" /bin/memhog --mib "$MIB" --dirty-mib-s 4 --verify-ms 0 --state /tmp/state >/dev/null ||
		bail "bundle $id"
	cp "$work/bin/memhog" "$b/rootfs/bin/memhog"
	on "$h" sh -c "cd '$b' && exec runc run -d '$id' </dev/null >/dev/null 2>&1" || bail "runc run $id on $h"
	at_exit "for h in h1 h2 h3; do on \$h runc delete --force $id >/dev/null 2>&1; done"
done
for id in "${ids[@]}"; do
	wait_until 60 test -s "$work/$id/rootfs/tmp/state" || bail "$id did not fill its memory"
done
diag "8 containers of $MIB MiB: c1-c3 on h1, c4-c6 on h2, c7-c8 on h3"

# --- one workload, two migrations at once -------------------------------------
on_bg h1 "$CMT" migrate c1 --to h2 --rsh "$RSH" --remote-cmt "$CMT" --hook-pre-dump "sleep 3" --json
first=$ON_BG_PID
wait_until 10 sh -c "grep -qs . $LAB_DIR/h1/cmt/locks/container-c1.lock"
err=$(on h1 "$CMT" migrate c1 --to h3 --rsh "$RSH" --remote-cmt "$CMT" 2>&1 >/dev/null)
is "$?" 1 "a second migration of c1 while the first runs is refused"
check "naming the first" grep -q 'another migration of container c1 is in progress' <<<"$err"
wait "$first"
is "$?" 0 "the first migration of c1 completes"
# c1 is on h2 now; move it back so that the big round below starts from the plan
on h2 "$CMT" migrate c1 --to h1 --rsh "$RSH" --remote-cmt "$CMT" >/dev/null 2>&1
is "$?" 0 "c1 moves back to h1"
b=$work/c1
# (its bundle now lives under h1's state root)
[ "$(runc_status h1 c1)" = running ] || bail "c1 is not back on h1"

# --- 8 at once ------------------------------------------------------------------
pids=()
t0=${EPOCHREALTIME/./}
for id in "${ids[@]}"; do
	src=${from[$id]} dst=$(next_host "${from[$id]}")
	on "$src" "$CMT" migrate "$id" --to "$dst" --rsh "$RSH" --remote-cmt "$CMT" --json \
		>"$work/$id.json" 2>"$work/$id.err" </dev/null &
	pids+=($!)
done
rcs=()
for p in "${pids[@]}"; do
	wait "$p"
	rcs+=($?)
done
diag "8 concurrent migrations took $(((${EPOCHREALTIME/./} - t0) / 1000)) ms"
for i in "${!ids[@]}"; do
	id=${ids[$i]}
	dst=$(next_host "${from[$id]}")
	if [ "${rcs[$i]}" != 0 ]; then
		fail "$id ${from[$id]} -> $dst migrated" "exit ${rcs[$i]}: $(tail -n 5 "$work/$id.err")"
		continue
	fi
	ok "$id ${from[$id]} -> $dst migrated"
	where=()
	for h in h1 h2 h3; do [ "$(runc_status "$h" "$id")" = running ] && where+=("$h"); done
	is "${where[*]:-}" "$dst" "$id runs exactly once, on $dst"
	st=$LAB_DIR/$dst/cmt/bundles/$id/rootfs/tmp/state
	u=$(mh_get "$st" usr1 || echo 0)
	on "$dst" runc kill "$id" USR1
	if wait_until 60 mh_ge "$st" usr1 $((u + 1)); then
		is "$(mh_get "$st" verify_fail)" 0 "$id's memory is intact on $dst"
	else
		fail "$id verified its memory on $dst" "$(cat "$st" 2>&1)"
	fi
	for who in cmt agent; do
		rss=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])[sys.argv[2]])' \
			"$work/$id.json" "${who}_peak_rss_kib" 2>/dev/null)
		if [ -n "$rss" ] && [ "$rss" -lt $((RSS_BOUND_MIB * 1024)) ]; then
			ok "$id: the $who's peak RSS $((rss / 1024)) MiB < $RSS_BOUND_MIB MiB for a $MIB MiB workload"
		else
			fail "$id: the $who's peak RSS below $RSS_BOUND_MIB MiB" "${who}_peak_rss_kib=${rss:-missing}"
		fi
	done
done
check "no images left on any host" sh -c "[ -z \"\$(find $LAB_DIR/h[123]/cmt/migrations -name images 2>/dev/null)\" ]"
check "no journal left on any host" sh -c "[ -z \"\$(find $LAB_DIR/h[123]/cmt/migrations -name journal 2>/dev/null)\" ]"
