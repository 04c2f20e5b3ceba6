#!/usr/bin/env bash
# Pre-migration checks, target ranking and hooks, on a 3-host lab:
# - `cmt check` passes against a healthy host and fails, naming the check,
#   against a host whose CRIU cannot run; `cmt migrate` refuses that host
#   unless --force (and with --force it fails cleanly, the container stays);
# - `cmt hosts` ranks the two healthy hosts and excludes the broken one with
#   the reason; `--to auto` picks a healthy one;
# - the pre-restore, post-restore and failed-restore hooks run in order,
#   exactly once; on a forced restore failure the failed-restore hook runs, cmt
#   exits nonzero, and the container runs once, on the source.
set -u
. "$(dirname "$0")/lib.sh"
require_root
require_cmt
lab_start 3
work=$(mktemp -d /tmp/cmt-t20.XXXXXX)
at_exit rm -rf "$work"
RSH="ssh -F $LAB_SSH_CONFIG"

# h3's CRIU cannot run: it answers --version but every real command fails.
cat >"$work/badcriu" <<'SH'
#!/bin/sh
case "$1" in
--version) echo "Version: 4.2.1" ;;
*) echo "Error (criu/kerndat.c:1021): simulated: this CRIU cannot run here" >&2; exit 1 ;;
esac
SH
chmod +x "$work/badcriu"
echo "criu = $work/badcriu" >>"$LAB_DIR/h3/cmt/config"

counter='i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done'
make_bundle "$work/ct1" h1 sh -c "$counter"
on h1 sh -c "cd '$work/ct1' && exec runc run -d ct1 </dev/null >/dev/null 2>&1"
count=$work/ct1/rootfs/tmp/count
wait_until 10 test -s "$count" || bail "container did not start"

running_on() { on "$1" runc state ct1 2>/dev/null | grep -q '"status": "running"'; }
n_running() { local n=0 h; for h in h1 h2 h3; do running_on $h && n=$((n + 1)); done; echo $n; }
advances() { local a b; a=$(cat "$1"); wait_until 5 sh -c "[ \"\$(cat '$1')\" != '$a' ]"; }

# --- cmt check --------------------------------------------------------------
out=$(on h1 "$CMT" check ct1 --to h2 --rsh "$RSH" --remote-cmt "$CMT" --json)
rc=$?
is "$rc" 0 "cmt check against a healthy host exits 0"
check "its JSON says ok" python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["ok"] is True; assert {c["name"] for c in d["checks"]} >= {"criu-source","criu-destination","memory","cpu","runc","workload-files"}' "$out"

out=$(on h1 "$CMT" check ct1 --to h3 --rsh "$RSH" --remote-cmt "$CMT" --json)
rc=$?
is "$rc" 1 "cmt check against a host whose CRIU cannot run exits 1"
check "the failing check is criu-destination, with a hint" python3 -c 'import json,sys; d=json.loads(sys.argv[1]); f=[c for c in d["checks"] if c["status"]=="fail"]; assert any(c["name"]=="criu-destination" and "h3" in c["detail"] and c["hint"] for c in f), f' "$out"
human=$(on h1 "$CMT" check ct1 --to h3 --rsh "$RSH" --remote-cmt "$CMT" 2>&1)
check "the human table names the check" grep -q 'fail *criu-destination' <<<"$human"

# A bind mount whose source exists on h1 only (h1's own /var/lib/cmt).
make_bundle "$work/ct2" h1 sh -c 'while :; do sleep 1; done'
on h1 mkdir -p /var/lib/cmt/vol-t20
python3 - "$work/ct2/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["mounts"].append({"destination": "/data", "type": "bind", "source": "/var/lib/cmt/vol-t20", "options": ["rbind", "rw"]})
json.dump(c, open(p, "w"), indent=1)
PY
on h1 sh -c "cd '$work/ct2' && exec runc run -d ct2 </dev/null >/dev/null 2>&1"
at_exit "on h1 runc delete -f ct2 >/dev/null 2>&1"
out=$(on h1 "$CMT" check ct2 --to h2 --rsh "$RSH" --remote-cmt "$CMT" --json)
is "$?" 1 "a bind mount missing on the destination fails the check"
check "the mounts check names the path and h2" python3 -c 'import json,sys; d=json.loads(sys.argv[1]); m=[c for c in d["checks"] if c["name"]=="mounts"][0]; assert m["status"]=="fail" and "/var/lib/cmt/vol-t20" in m["detail"] and "h2" in m["detail"], m; b=[c for c in d["checks"] if c["name"]=="bundle"][0]; assert b["status"]=="pass", b' "$out"
check "the kernel features are reported per host" python3 -c 'import json,sys; d=json.loads(sys.argv[1]); k=[c for c in d["checks"] if c["name"]=="kernel-features"][0]; assert "lazy pages" in k["detail"] and "h2" in k["detail"], k' "$out"
on h1 runc delete -f ct2 >/dev/null 2>&1

# --- migrate refuses, --force fails cleanly ---------------------------------
err=$(on h1 "$CMT" migrate ct1 --to h3 --rsh "$RSH" --remote-cmt "$CMT" 2>&1 >/dev/null)
rc=$?
is "$rc" 1 "migrate to the broken host is refused"
check "the refusal names the failed check and --force" grep -q 'criu-destination' <<<"$err"
check "... and mentions --force" grep -q -- '--force' <<<"$err"
check "container still running on h1 after the refusal" running_on h1
check "and still counting" advances "$count"

out=$(on h1 "$CMT" migrate ct1 --to h3 --force --rsh "$RSH" --remote-cmt "$CMT" --json 2>"$work/force.err")
rc=$?
is "$rc" 1 "migrate --force to the broken host fails"
check "the error says CRIU fails on h3" python3 -c 'import json,sys; d=json.loads(sys.argv[1].splitlines()[-1]); assert d["result"]=="failed" and d["error_host"]=="h3" and "criu" in d["error"].lower(), d' "$out"
check "container runs on h1 after the forced failure" running_on h1
is "$(n_running)" 1 "exactly one running copy"

# --- cmt hosts and --to auto --------------------------------------------------
out=$(on h1 "$CMT" hosts ct1 --candidates h3,h2,h1 --rsh "$RSH" --remote-cmt "$CMT" --json)
rc=$?
is "$rc" 0 "cmt hosts finds compatible hosts"
check "h3 excluded with the reason, h1 and h2 ranked" python3 -c '
import json,sys
d=json.loads(sys.argv[1])["hosts"]
by={h["host"]:h for h in d}
assert not by["h3"]["compatible"] and "criu" in by["h3"]["reason"].lower(), by["h3"]
assert by["h2"]["compatible"] and by["h1"]["compatible"]
ranks=sorted(h["rank"] for h in d if h["compatible"]); assert ranks==[1,2], ranks
assert d[-1]["host"]=="h3"
' "$out"
human=$(on h1 "$CMT" hosts ct1 --candidates h3,h2 --rsh "$RSH" --remote-cmt "$CMT")
check "human output says why h3 is excluded" grep -q 'h3.*excluded: .*criu' <<<"$human"

# --- hooks on success, with --to auto ----------------------------------------
log=$work/hooks.log
hooks=(--hook-pre-dump "echo pre-dump \$CMT_WORKLOAD >>$log"
	--hook-post-dump "echo post-dump >>$log"
	--hook-pre-restore "echo pre-restore \$CMT_DESTINATION \$CMT_MODE >>$log"
	--hook-post-restore "echo post-restore \$CMT_PHASE >>$log"
	--hook-failed-restore "echo failed-restore >>$log")
out=$(on h1 "$CMT" migrate ct1 --to auto --candidates h3,h2 --rsh "$RSH" --remote-cmt "$CMT" --json "${hooks[@]}")
rc=$?
is "$rc" 0 "migrate --to auto succeeds"
check "--to auto picked h2 (h3 is incompatible)" python3 -c 'import json,sys; d=json.loads(sys.argv[1].splitlines()[-1]); assert d["destination"]=="h2", d' "$out"
is "$(cat "$log" | tr '\n' '|')" "pre-dump ct1|post-dump|pre-restore h2 cold|post-restore post-restore|" \
	"hooks ran in order, exactly once, with their environment"
check "container runs on h2" running_on h2
is "$(n_running)" 1 "exactly one running copy after the move"

# --- a forced restore failure: h1's runc refuses to restore -------------------
# (moving back h2 -> h1; h1's runc is a wrapper that fails `runc restore`)
cat >"$work/runc-norestore" <<SH
#!/bin/sh
for a in "\$@"; do [ "\$a" = restore ] && { echo 'time="x" level=error msg="simulated restore failure"' >&2; exit 1; }; done
exec $(command -v runc) "\$@"
SH
chmod +x "$work/runc-norestore"
echo "runc = $work/runc-norestore" >>"$LAB_DIR/h1/cmt/config"
: >"$log"
count2=$LAB_DIR/h2/cmt/bundles/ct1/rootfs/tmp/count
before=$(cat "$count2")
out=$(on h2 "$CMT" migrate ct1 --to h1 --rsh "$RSH" --remote-cmt "$CMT" --json "${hooks[@]}" 2>"$work/fail.err")
rc=$?
is "$rc" 1 "a migration whose restore fails exits 1"
check "the error names the restore and the host" python3 -c 'import json,sys; d=json.loads(sys.argv[1].splitlines()[-1]); assert d["result"]=="failed" and d["error_host"]=="h1" and "restore" in d["error"], d; assert d["source_running"] is True' "$out"
is "$(cat "$log" | tr '\n' '|')" "pre-dump ct1|post-dump|pre-restore h1 cold|failed-restore|" \
	"on failure: pre hooks then failed-restore, once each, no post-restore"
check "container runs on h2 (the source) again" running_on h2
is "$(n_running)" 1 "exactly one running copy after the failure"
wait_until 5 sh -c "[ \"\$(cat '$count2')\" -gt '$before' ]"
is "$?" 0 "the source copy counts on from where it was"
check "nothing left registered on h1" sh -c "! on h1 runc state ct1 >/dev/null 2>&1"
check "no bundle left on h1" test ! -e "$LAB_DIR/h1/cmt/bundles/ct1"

# --- CRIU's answers are cached per boot and CRIU binary --------------------------
for h in h1 h2; do
	check "$h cached its successful criu check (keyed by boot and binary)" grep -q '^boot=.* criu=' "$LAB_DIR/$h/cmt/cache/criu-check"
done
check "h1 cached its cpuinfo image" test -s "$LAB_DIR/h1/cmt/cache/cpuinfo.img"
# a cache written under another key (another boot, another CRIU) is not believed
# (ct1 runs on h2 now: check from there, against h1)
printf 'boot=another criu=/x size=1 mtime=1.0\nok\n' >"$LAB_DIR/h1/cmt/cache/criu-check"
on h2 "$CMT" check ct1 --to h1 --rsh "$RSH" --remote-cmt "$CMT" >/dev/null 2>&1
check "a stale cache entry is replaced by a fresh check" sh -c "! grep -q 'boot=another' '$LAB_DIR/h1/cmt/cache/criu-check' && grep -q '^ok$' '$LAB_DIR/h1/cmt/cache/criu-check'"
