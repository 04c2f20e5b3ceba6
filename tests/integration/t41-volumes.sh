#!/usr/bin/env bash
# Volumes (bind mounts of config.json) move by policy:
#   - a bind mount without a policy stops the migration before anything is
#     frozen (the pre-dump hook never runs), naming the mount and the option;
#   - copy: the data arrives, including what the container wrote during the
#     migration and a deletion made after the pre-copy; shared: the
#     destination uses the same path; skip: an empty directory there.
set -u
. "$(dirname "$0")/lib.sh"
require_root
require_cmt
require_cmd runc busybox python3
lab_start 2
work=$(mktemp -d /tmp/cmt-t41.XXXXXX)
at_exit rm -rf "$work"

mkdir -p "$work/data" "$work/shared" "$work/cache"
printf 'payload\n' >"$work/data/file"
printf 'gone soon\n' >"$work/data/to-delete"
dd if=/dev/urandom of="$work/data/blob" bs=1M count=4 status=none
printf 'same on both\n' >"$work/shared/file"
printf 'local cache\n' >"$work/cache/entry"

make_bundle "$work/ct1" h1 sh -c 'i=0; while :; do i=$((i+1)); echo $i >> /data/seq; sleep 0.02; done' >/dev/null ||
	bail "bundle"
python3 - "$work/ct1/config.json" "$work" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
for d in ("data", "shared", "cache"):
    c["mounts"].append({"destination": "/" + d, "type": "bind", "source": sys.argv[2] + "/" + d, "options": ["rbind", "rw"]})
json.dump(c, open(sys.argv[1], "w"), indent=1)
EOF
on h1 sh -c "cd '$work/ct1' && exec runc run -d ct1 </dev/null >/dev/null 2>&1" || bail "runc run"
at_exit "on h1 runc delete --force ct1 >/dev/null 2>&1; on h2 runc delete --force ct1 >/dev/null 2>&1"
wait_until 10 test -s "$work/data/seq" || bail "ct1 did not start"

# --- cmt check knows the policies -------------------------------------------------
RSH="ssh -F $LAB_SSH_CONFIG"
out=$(on h1 "$CMT" check ct1 --to h2 --rsh "$RSH" --remote-cmt "$CMT" --volume /data=copy --json 2>/dev/null)
is "$?" 1 "cmt check with a bind mount left without a policy fails"
check "its volumes check names the mount" python3 -c 'import json,sys; d=json.loads(sys.argv[1]); v=[c for c in d["checks"] if c["name"]=="volumes"][0]; assert v["status"]=="fail" and "/shared" in v["detail"], v' "$out"
out=$(on h1 "$CMT" check ct1 --to h2 --rsh "$RSH" --remote-cmt "$CMT" --volume /data=copy --volume /shared=shared \
	--volumes skip --json 2>/dev/null)
is "$?" 0 "with every mount covered cmt check passes"
check "volumes check passes" python3 -c 'import json,sys; d=json.loads(sys.argv[1]); v=[c for c in d["checks"] if c["name"]=="volumes"][0]; assert v["status"]=="pass", v' "$out"

# --- no policy: stopped before anything is frozen ----------------------------------
migrate_from h1 ct1 --to h2 --volume /data=copy --hook-pre-dump "touch $work/hook-ran"
is "$MIG_RC" 1 "a bind mount without a policy stops the migration"
check "the message names the mount and its source" grep -q 'bind mount at /shared (from .*/shared) and no policy' <<<"$MIG_ERR"
check "and the options" grep -q -- '--volume /shared=copy' <<<"$MIG_ERR"
check "before anything was frozen (the pre-dump hook never ran)" test ! -e "$work/hook-ran"
is "$(runc_status h1 ct1)" running "ct1 runs on h1, untouched"

# --- with policies ---------------------------------------------------------------------
hook="printf 'late\n' >$work/data/late; rm $work/data/to-delete"
migrate_from h1 ct1 --to h2 --volume /data=copy --volume /shared=shared --volumes skip --hook-pre-dump "$hook"
is "$MIG_RC" 0 "ct1 migrates with copy, shared and skip volumes"
is "$(runc_status h2 ct1)" running "ct1 runs on h2"
v=$LAB_DIR/h2/cmt/bundles/ct1/volumes/0
is "$(on h2 runc exec ct1 /bin/busybox cat /data/file 2>&1)" payload "copy: the data is there, inside the container"
is "$(on h2 runc exec ct1 /bin/busybox cat /data/late 2>&1)" late "copy: a file written after the pre-copy too"
check "copy: a file deleted after the pre-copy stays deleted" test ! -e "$v/to-delete"
cmp -s "$work/data/blob" "$v/blob"
is "$?" 0 "copy: a 4 MiB file arrives intact"
n0=$(wc -l <"$v/seq")
wait_until 10 sh -c "[ \$(wc -l <'$v/seq') -gt $((n0 + 20)) ]"
is "$?" 0 "the container goes on appending to /data/seq on h2"
check "with no gap and no repeat" seq_intact "$v/seq"
is "$(on h2 runc exec ct1 /bin/busybox cat /shared/file 2>&1)" "same on both" "shared: the same path, mounted"
is "$(on h2 runc exec ct1 /bin/busybox ls -A /cache 2>&1)" "" "skip: an empty directory"
jtest "JSON: the copied volume was pre-copied (its 4 MiB file)" 'd["volume_precopy_bytes"] >= 4 << 20' \
	"JSON: while frozen only its changes travelled" 'd["volume_bytes"] < (1 << 20)'
