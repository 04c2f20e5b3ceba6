#!/usr/bin/env bash
# bench/classic.sh - the classic stop-and-copy pipeline that bench/bench.sh
# compares cmt with.  Not meant to be run by hand; bench.sh runs
#
#   classic.sh source ID DEST SSH_CONFIG CRIU IMAGES_SRC IMAGES_DST BUNDLES_DST CGROUP_PARENT_DST [KEEP]
#
# inside the source host.  It does what an operator would do without cmt:
#   1. runc checkpoint --image-path IMAGES_SRC ID   (dumps and kills the container;
#      with KEEP=1: runc pause, then runc checkpoint --leave-running, so that the
#      frozen source stays until the restore succeeded - as cmt does - and is
#      deleted after it, or resumed if something failed)
#   2. tar the images | ssh DEST 'mkdir -p IMAGES_DST && tar -x'
#   3. tar the bundle | ssh DEST 'mkdir -p BUNDLES_DST && tar -x'
#   4. ssh DEST: point config.json's cgroupsPath at /CGROUP_PARENT_DST/ID (python3)
#      and runc restore -d --image-path IMAGES_DST --bundle BUNDLES_DST/ID ID
# and prints one JSON line: the time of each step and downtime_ms, from just
# before the checkpoint to the restore returning (the freeze-to-running time),
# total_ms (with KEEP=1 up to the source's removal), plus result
# ("ok"/"failed"), failed_step and error on failure.
#
#   classic.sh dest-restore ID CRIU IMAGES_DST BUNDLE_DST CGROUPS_PATH LOG
# is step 4, run on DEST through ssh.
set -uo pipefail

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

dest_restore() {
	local id=$1 criu=$2 images=$3 bundle=$4 cgpath=$5 log=$6
	/usr/bin/python3 - "$bundle/config.json" "$cgpath" <<-'EOF' || exit 1
		import json, os, sys
		path, cg = sys.argv[1], sys.argv[2]
		with open(path) as f:
		    spec = json.load(f)
		spec.setdefault("linux", {})["cgroupsPath"] = cg
		with open(path + ".tmp", "w") as f:
		    json.dump(spec, f)
		os.rename(path + ".tmp", path)
	EOF
	# the restored container must not inherit ssh's pipes: /dev/null, and
	# runc's own messages to a log file
	cd "$bundle" || exit 1
	exec runc --criu "$criu" restore -d --image-path "$images" --bundle "$bundle" "$id" </dev/null >/dev/null 2>"$log"
}

source_side() {
	local id=$1 dest=$2 sshcfg=$3 criu=$4 img_src=$5 img_dst=$6 bundles_dst=$7 cgparent=$8 keep=${9:-0}
	local self bundle t0 t1 t2 t3 t4 t5 step="" err="" q_img q_bdst q_bundle q_log
	local -a ckpt=(checkpoint)
	self=$(readlink -f "${BASH_SOURCE[0]}")
	bundle=$(runc state "$id" 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["bundle"])') ||
		{ printf '{"result":"failed","failed_step":"inspect","error":"no container %s"}\n' "$id"; return 1; }
	mkdir -p "$(dirname "$img_src")"
	q_img=$(printf %q "$img_dst")
	q_bdst=$(printf %q "$bundles_dst")
	q_bundle=$(printf %q "$bundles_dst/$id")
	q_log=$(printf %q "$img_dst.restore.log")

	t0=$(now_ms)
	if [ "$keep" = 1 ]; then
		ckpt=(checkpoint --leave-running)
		err=$(runc pause "$id" 2>&1 </dev/null) || step=pause
	fi
	if [ -z "$step" ] && ! err=$(runc --criu "$criu" "${ckpt[@]}" --image-path "$img_src" "$id" 2>&1 </dev/null); then
		step=checkpoint
	fi
	t1=$(now_ms)
	if [ -z "$step" ] && ! err=$(tar -C "$img_src" -cf - . |
		ssh -F "$sshcfg" "$dest" "mkdir -p $q_img && tar -C $q_img -xf -" 2>&1); then
		step=copy_images
	fi
	t2=$(now_ms)
	if [ -z "$step" ] && ! err=$(tar -C "$(dirname "$bundle")" -cf - "$(basename "$bundle")" |
		ssh -F "$sshcfg" "$dest" "mkdir -p $q_bdst && tar -C $q_bdst -xf - && test -d $q_bundle" 2>&1); then
		step=copy_bundle
	fi
	t3=$(now_ms)
	if [ -z "$step" ] && ! err=$(ssh -F "$sshcfg" "$dest" \
		"bash $(printf %q "$self") dest-restore $(printf %q "$id") $(printf %q "$criu") $q_img $q_bundle" \
		"$(printf %q "/$cgparent/$id") $q_log || { cat $q_log >&2; exit 1; }" 2>&1 </dev/null); then
		step=restore
	fi
	t4=$(now_ms)
	if [ "$keep" = 1 ]; then
		if [ -z "$step" ]; then
			runc delete --force "$id" >/dev/null 2>&1 </dev/null || { step=delete_source; err="runc delete --force $id failed"; }
		else
			runc resume "$id" >/dev/null 2>&1 </dev/null || true
		fi
	fi
	t5=$(now_ms)
	/usr/bin/python3 -c '
import json, sys
t = [int(x) for x in sys.argv[1:7]]
step, err = sys.argv[7], sys.argv[8]
r = {"result": "failed" if step else "ok",
     "downtime_ms": t[4] - t[0], "total_ms": t[5] - t[0], "checkpoint_ms": t[1] - t[0], "copy_images_ms": t[2] - t[1],
     "copy_bundle_ms": t[3] - t[2], "restore_ms": t[4] - t[3], "t_freeze_ms": t[0], "t_running_ms": t[4]}
if step:
    r["failed_step"] = step
    r["error"] = err.strip()[-2000:]
print(json.dumps(r))
' "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$step" "$err"
	[ -z "$step" ]
}

case ${1:-} in
source) shift; source_side "$@" ;;
dest-restore) shift; dest_restore "$@" ;;
*) sed -n '2,22s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
