#!/usr/bin/env bash
# The model cache check: the fetched weights verify against
# models/face-api.manifest, and a truncated, changed or missing file is an
# error that names the file.   test_fetch_models.sh FETCH_SCRIPT MODELS_DIR
. "$(dirname "$0")/../../lib.sh"
fetch=$1
models=$2

out=$("$fetch" --verify "$models" 2>&1); rc=$?
check_eq "fetched cache verifies" 0 "$rc"

cp -r "$models" "$PV_TMP/m"
f=model/face_recognition_model.bin
truncate -s -1 "$PV_TMP/m/$f"
out=$("$fetch" --verify "$PV_TMP/m" 2>&1); rc=$?
check_eq "truncated file fails" 1 "$rc"
check_match "truncated file named" "$f has [0-9]+ bytes" "$out"

cp "$models/$f" "$PV_TMP/m/$f"
printf '\x01' | dd of="$PV_TMP/m/$f" bs=1 seek=1000 conv=notrunc status=none
out=$("$fetch" --verify "$PV_TMP/m" 2>&1); rc=$?
check_eq "changed byte fails" 1 "$rc"
check_match "changed file named" "$f has SHA-256" "$out"

cp "$models/$f" "$PV_TMP/m/$f"
rm "$PV_TMP/m/demo/sample3.jpg"
out=$("$fetch" --verify "$PV_TMP/m" 2>&1); rc=$?
check_eq "missing file fails" 1 "$rc"
check_match "missing file named" "missing demo/sample3.jpg" "$out"

out=$("$fetch" --verify 2>&1); rc=$?
check_eq "usage error" 1 "$rc"
pv_finish
