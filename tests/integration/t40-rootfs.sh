#!/usr/bin/env bash
# The root filesystem moves with the container: copied while it runs, then
# only what changed after that (deletions included) while it is frozen.
#   - owner, mode, xattrs, hard links, a sparse file and a device node arrive
#     as they were;
#   - files changed, created and deleted after the pre-copy (by the pre-dump
#     hook, which runs after it) arrive changed, created, deleted; a file
#     replaced by a directory arrives as the directory;
#   - a file the container keeps appending to arrives complete up to the
#     freeze and goes on growing on h2 without a gap or a repeat;
#   - the JSON counts what was pre-copied and what travelled while frozen;
#   - --shared-storage: nothing is copied, h2 runs the container on the same
#     root filesystem.
set -u
. "$(dirname "$0")/lib.sh"
require_root
require_cmt
require_cmd runc busybox python3 mknod truncate
lab_start 2
work=$(mktemp -d /tmp/cmt-t40.XXXXXX)
at_exit rm -rf "$work"
RSH="ssh -F $LAB_SSH_CONFIG"

# ct1 appends one number per line to /data/seq (so a lost or repeated line shows)
make_bundle "$work/ct1" h1 sh -c 'i=0; while :; do i=$((i+1)); echo $i >> /seq; sleep 0.02; done' >/dev/null ||
	bail "bundle"
r=$work/ct1/rootfs
printf 'keep me\n' >"$r/keep"
chown 1234:5678 "$r/keep" && chmod 0640 "$r/keep"
printf 'linked\n' >"$r/hl-a" && ln "$r/hl-a" "$r/hl-b"
truncate -s 64M "$r/sparse" && printf 'head' | dd of="$r/sparse" conv=notrunc status=none
mkdir -p "$r/dev2" && mknod "$r/dev2/null2" c 1 3
printf 'x\n' >"$r/xattr-file"
python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.cmt", b"hello")' "$r/xattr-file" || bail "setxattr"
printf 'old\n' >"$r/to-change"
printf 'bye\n' >"$r/to-delete"
mkdir -p "$r/to-delete-dir/sub" && printf 'deep\n' >"$r/to-delete-dir/sub/f"
printf 'file now\n' >"$r/to-become-dir"
dd if=/dev/urandom of="$r/big" bs=1M count=8 status=none

on h1 sh -c "cd '$work/ct1' && exec runc run -d ct1 </dev/null >/dev/null 2>&1" || bail "runc run"
at_exit "on h1 runc delete --force ct1 >/dev/null 2>&1; on h2 runc delete --force ct1 >/dev/null 2>&1"
wait_until 10 test -s "$r/seq" || bail "ct1 did not start"

# changes after the pre-copy: the pre-dump hook runs once it is done
hook="printf 'new\n' >$r/to-change; rm $r/to-delete; rm -r $r/to-delete-dir; rm $r/to-become-dir; \
mkdir $r/to-become-dir; printf 'inside\n' >$r/to-become-dir/f; printf 'born\n' >$r/created-late"
migrate_from h1 ct1 --to h2 --hook-pre-dump "$hook"
is "$MIG_RC" 0 "ct1 migrates to h2"
d=$LAB_DIR/h2/cmt/bundles/ct1/rootfs
is "$(stat -c '%U:%G %u:%g %a' "$d/keep" 2>&1 | cut -d' ' -f2-)" "1234:5678 640" "owner and mode kept"
is "$(cat "$d/keep")" "keep me" "content kept"
is "$(stat -c %i "$d/hl-a")" "$(stat -c %i "$d/hl-b")" "the hard link is still one inode"
is "$(stat -c %h "$d/hl-a")" 2 "with two links"
is "$(stat -c %s "$d/sparse")" $((64 << 20)) "the sparse file keeps its size"
check "and stays sparse (under 1 MiB allocated)" sh -c "[ \$(du -k '$d/sparse' | cut -f1) -lt 1024 ]"
is "$(head -c 4 "$d/sparse")" head "with its data"
is "$(stat -c '%F %t,%T' "$d/dev2/null2")" "character special file 1,3" "the device node arrives"
is "$(python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.cmt").decode())' "$d/xattr-file" 2>&1)" hello \
	"the xattr arrives"
cmp -s "$r/big" "$d/big"
is "$?" 0 "an 8 MiB file arrives intact"
is "$(cat "$d/to-change")" new "a file changed after the pre-copy arrives changed"
is "$(cat "$d/created-late" 2>&1)" born "a file created after the pre-copy arrives"
check "a file deleted after the pre-copy stays deleted" test ! -e "$d/to-delete"
check "a directory tree deleted after the pre-copy stays deleted" test ! -e "$d/to-delete-dir"
check "a file replaced by a directory arrives as the directory" test -d "$d/to-become-dir"
is "$(cat "$d/to-become-dir/f" 2>&1)" inside "with its content"
jtest "JSON: the root filesystem was pre-copied (the 8 MiB file and the rest)" 'd["rootfs_precopy_bytes"] >= 8 << 20' \
	"JSON: while frozen only the changes travelled" 'd["rootfs_bytes"] < (1 << 20)' \
	"JSON: three deletions (a file, a tree, a file that became a directory)" 'd["rootfs_deleted"] >= 3'

# the sequence file: complete up to the freeze, continued on h2 without a gap
n0=$(wc -l <"$d/seq")
wait_until 10 sh -c "[ \$(wc -l <'$d/seq') -gt $((n0 + 20)) ]"
is "$?" 0 "ct1 appends on h2"
check "the sequence has no gap and no repeat" seq_intact "$d/seq"

# --- shared storage -------------------------------------------------------------------
make_bundle "$work/ct2" h1 sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done' >/dev/null ||
	bail "bundle ct2"
python3 - "$work/ct2/config.json" "$work/ct2/rootfs" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["root"]["path"] = sys.argv[2] # absolute: the path both hosts see
json.dump(c, open(sys.argv[1], "w"))
EOF
on h1 sh -c "cd '$work/ct2' && exec runc run -d ct2 </dev/null >/dev/null 2>&1" || bail "runc run ct2"
at_exit "on h1 runc delete --force ct2 >/dev/null 2>&1; on h2 runc delete --force ct2 >/dev/null 2>&1"
wait_until 10 test -s "$work/ct2/rootfs/tmp/count" || bail "ct2 did not start"
migrate_from h1 ct2 --to h2 --shared-storage
is "$MIG_RC" 0 "ct2 migrates with --shared-storage"
jtest "JSON: nothing of the root filesystem was copied" 'd["rootfs_precopy_bytes"] == 0 and d["rootfs_bytes"] == 0'
check "h2 received no root filesystem" test ! -e "$LAB_DIR/h2/cmt/bundles/ct2/rootfs"
is "$(runc_status h2 ct2)" running "ct2 runs on h2"
c0=$(count_read "$work/ct2/rootfs/tmp/count")
wait_until 5 count_ge "$work/ct2/rootfs/tmp/count" $((c0 + 5))
is "$?" 0 "on the shared root filesystem"
