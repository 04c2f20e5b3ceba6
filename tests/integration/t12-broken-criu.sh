#!/usr/bin/env bash
# t12-broken-criu.sh - migrations that fail on the destination never lose the
# workload: it keeps running (not paused) and counting on the source, the
# destination is left clean (nothing registered in its runc root, no bundle,
# no cgroup, no images), and cmt says what failed where (exit 1, JSON result
# "failed", error, error_host, source_running). The failures:
#   A. h2's CRIU cannot run (`criu check` fails), through the pre-migration
#      checks and, when cmt has --force, through the agent's own check;
#   B. the restore itself fails on h2 (a real CRIU restore of images that get
#      damaged on h2 just before it);
#   C. h2 already has a container with that ID: refused before anything is
#      frozen, and h2's container is left alone.
# Then, with h2 repaired, the same migration succeeds.
# LAB_* come from the lab's env file; single quotes keep $ for the shells in the hosts:
# shellcheck disable=SC2154,SC2016
set -u
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

require_root
require_cmt
require_cmd runc busybox python3

# --- helpers -----------------------------------------------------------------

# failed_cleanly WHAT: the checks every failed migration of ct1 to h2 must pass.
failed_cleanly() {
	local what=$1 n
	is "$MIG_RC" 1 "$what: cmt exits 1"
	jtest "$what: JSON result is failed" 'd["result"] == "failed"' \
		"$what: JSON source_running is true" 'd.get("source_running") is True'
	is "$(runc_status h1 ct1)" running "$what: ct1 is still running on h1 (not paused)"
	n=$(count_read "$count")
	if wait_until 5 count_ge "$count" $((n + 5)); then
		ok "$what: ct1 keeps counting on h1 ($n, then $(count_read "$count"))"
	else
		fail "$what: ct1 keeps counting on h1" "count: $n, then $(cat "$count" 2>&1)"
	fi
	is "$(on h2 runc list -q)" "" "$what: nothing is registered in h2's runc root"
	check "$what: no bundle of ct1 is left on h2" test ! -e "$LAB_DIR/h2/cmt/bundles/ct1"
	is "$(ls -d /sys/fs/cgroup/*/"$LAB_CGROUP_h2"/ct1 2>/dev/null)" "" "$what: no cgroup of ct1 on h2"
	is "$(images_left h1)$(images_left h2)" "" "$what: no migration images are left on h1 or h2"
}

set_h2_criu() { # PATH, or nothing for h2's own
	cp "$work/h2.config" "$LAB_DIR/h2/cmt/config"
	[ -z "${1:-}" ] || echo "criu = $1" >>"$LAB_DIR/h2/cmt/config"
}

# ---------------------------------------------------------------------------

lab_start 2
work=$(mktemp -d /tmp/cmt-t12.XXXXXX)
at_exit rm -rf "$work"
at_exit 'on h1 runc delete --force ct1 >/dev/null 2>&1; on h2 runc delete --force ct1 >/dev/null 2>&1'
cp "$LAB_DIR/h2/cmt/config" "$work/h2.config"

make_bundle "$work/ct1" h1 sh -c 'i=0; while :; do i=$((i+1)); echo $i >/tmp/count; sleep 0.05; done' ||
	bail "make_bundle failed"
on h1 sh -c "cd '$work/ct1' && exec runc run -d ct1 </dev/null >/dev/null 2>&1" || bail "runc run ct1 on h1 failed"
count=$work/ct1/rootfs/tmp/count
wait_until 10 count_ge "$count" 5 || bail "ct1 does not count on h1"
ok "ct1 counts on h1"

# The CRIU h2 really has (the agent's `cmt version` says which and where).
real_criu=$(on h2 "$CMT" version 2>/dev/null | sed -n 's/^criu [^ ]* (\([^,]*\),.*/\1/p')
[ -x "$real_criu" ] || bail "cannot tell which CRIU h2 uses: $(on h2 "$CMT" version 2>&1)"

# --- A. h2's CRIU cannot run ---------------------------------------------------
# It answers --version like CRIU 4.2.1 but fails everything else the way CRIU
# 3.17 fails on this kernel.
cat >"$work/broken-criu" <<'EOF'
#!/bin/sh
case "$1" in
--version | -V)
	echo "Version: 4.2.1"
	exit 0
	;;
esac
echo "(00.003012) Error (criu/vdso.c:218): vdso: Unexpected rt vDSO area bounds" >&2
echo "(00.003051) Error (criu/cr-check.c:1655): check_vdso failed" >&2
echo "Looks like something is wrong" >&2
exit 1
EOF
chmod +x "$work/broken-criu"
set_h2_criu "$work/broken-criu"

migrate_from h1 ct1 --to h2
failed_cleanly "A (broken CRIU on h2)"
jtest "A: JSON error mentions CRIU" 're.search("criu", d.get("error", ""), re.I)' \
	"A: JSON error_host is h2" 'd.get("error_host") == "h2"'
if grep -qi 'criu check' <<<"$MIG_ERR$MIG_JSON"; then
	ok "A: the message says \`criu check\` fails"
else
	fail "A: the message says \`criu check\` fails"
fi
check "A: the message quotes what CRIU said" grep -q 'Unexpected rt vDSO area bounds' <<<"$MIG_ERR"

if "$CMT" migrate --help 2>&1 | grep -q -- '--force'; then
	# without the pre-migration checks, the agent's own check must stop it
	migrate_from h1 ct1 --to h2 --force
	failed_cleanly "A --force (broken CRIU on h2)"
	jtest "A --force: JSON error mentions criu check" 're.search("criu check", d.get("error", ""), re.I)' \
		"A --force: JSON error_host is h2" 'd.get("error_host") == "h2"'
	check "A --force: the message quotes what CRIU said" grep -q 'Unexpected rt vDSO area bounds' <<<"$MIG_ERR"
else
	diag "this cmt has no --force: the agent-side CRIU check is covered only through the pre-migration checks"
fi

# --- B. the restore fails on h2 --------------------------------------------------
# h2's CRIU is the real one, behind a wrapper: when runc starts it for
# `runc restore`, the wrapper first empties the inventory image of that
# restore (as a damaged transfer or disk would), so CRIU's restore fails for real.
cat >"$work/damaging-criu" <<EOF
#!/bin/sh
if [ "\$1" = swrk ] && tr '\\0' '\\n' </proc/\$PPID/cmdline | grep -qx restore; then
	dir=\$(tr '\\0' '\\n' </proc/\$PPID/cmdline | sed -n '/^--image-path\$/{n;p;}')
	if [ -n "\$dir" ] && [ -s "\$dir/inventory.img" ]; then
		: >"\$dir/inventory.img"
		echo "\$dir" >>"$work/damaged"
	fi
fi
exec "$real_criu" "\$@"
EOF
chmod +x "$work/damaging-criu"
set_h2_criu "$work/damaging-criu"

migrate_from h1 ct1 --to h2
check "B: the wrapper damaged the images of a restore on h2" test -s "$work/damaged"
failed_cleanly "B (restore fails on h2)"
jtest "B: JSON error_host is h2" 'd.get("error_host") == "h2"' \
	"B: JSON error says the restore failed" 're.search("restor", d.get("error", ""), re.I)' \
	"B: the container was frozen and dumped before (dump_ms > 0)" 'd["dump_ms"] > 0'
set_h2_criu

# --- C. h2 already has a container ct1 -------------------------------------------
# It lives where cmt puts the containers it receives (as if an earlier
# migration had brought it): refusing must not touch its bundle either.
make_bundle "$LAB_DIR/h2/cmt/bundles/ct1" h2 sleep 100000 || bail "make_bundle on h2 failed"
on h2 sh -c "cd /var/lib/cmt/bundles/ct1 && exec runc run -d ct1 </dev/null >/dev/null 2>&1" ||
	bail "runc run ct1 on h2 failed"
other_pid=$(runc_pid h2 ct1)
migrate_from h1 ct1 --to h2
is "$MIG_RC" 1 "C (ct1 exists on h2): cmt exits 1"
jtest "C: JSON result is failed" 'd["result"] == "failed"' \
	"C: the error says a container named 'ct1' already exists" \
	'"a container named '"'ct1'"' already exists" in d.get("error", "")' \
	"C: JSON error_host is h2" 'd.get("error_host") == "h2"' \
	"C: refused before freezing (nothing was dumped)" 'd["dump_ms"] == 0 and d["frozen_ms"] == 0' \
	"C: JSON source_running is true" 'd.get("source_running") is True'
is "$(runc_status h1 ct1)" running "C: ct1 is still running on h1 (not paused)"
n=$(count_read "$count")
if wait_until 5 count_ge "$count" $((n + 5)); then
	ok "C: ct1 keeps counting on h1"
else
	fail "C: ct1 keeps counting on h1" "count: $n, then $(cat "$count" 2>&1)"
fi
is "$(runc_status h2 ct1):$(runc_pid h2 ct1)" \
	"running:$other_pid" "C: h2's own ct1 still runs, untouched"
is "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["process"]["args"])' \
	"$LAB_DIR/h2/cmt/bundles/ct1/config.json" 2>&1)" "['sleep', '100000']" "C: h2's ct1 keeps its own bundle"
is "$(images_left h1)$(images_left h2)" "" "C: no migration images are left on h1 or h2"

# --- after all that, with h2 repaired, the migration works ----------------------
on h2 runc delete --force ct1
rm -rf "$LAB_DIR/h2/cmt/bundles/ct1"
last=$(count_read "$count")
migrate_from h1 ct1 --to h2
is "$MIG_RC" 0 "after the failures, with h2 repaired, the migration succeeds"
jtest "after the failures: JSON result is ok" 'd["result"] == "ok"'
is "$(on h1 runc list -q):$(runc_status h2 ct1)" ":running" "ct1 has moved to h2 and runs there"
count2=$LAB_DIR/h2/cmt/bundles/ct1/rootfs/tmp/count
if watch_count "$count2" "$last" 5 10; then
	ok "ct1 goes on counting on h2 from at least $last"
else
	fail "ct1 goes on counting on h2 from at least $last" "seen on h2: $WATCHED"
fi
