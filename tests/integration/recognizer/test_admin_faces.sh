#!/usr/bin/env bash
# Integration test of `privid-admin faces`, the offline face tool: the real
# binary on the real sample photos (from the verified model download, under
# $PRIVID_MODELS) must print one JSON line per image with the faces the
# reference finds (counts from tests/data/face/expected.json), well-formed
# landmarks and descriptors, per-image errors that do not stop the run, and
# usage errors with exit status 2.
# Usage: test_admin_faces.sh PRIVID_ADMIN EXPECTED_JSON
set -u

ADMIN=${1:?usage: test_admin_faces.sh PRIVID_ADMIN EXPECTED_JSON}
EXPECTED=${2:?usage: test_admin_faces.sh PRIVID_ADMIN EXPECTED_JSON}
STEP=start
fail() {
    echo "FAIL [$STEP]: $*" >&2
    exit 1
}
command -v jq >/dev/null || fail "jq is not installed"
[ -x "$ADMIN" ] || fail "privid-admin not found at $ADMIN"
MODELS=${PRIVID_MODELS:-$(cd "$(dirname "$0")/../../.." && pwd)/build/models/face-api-1.7.15}
[ -f "$MODELS/demo/sample1.jpg" ] || fail "sample photos missing under $MODELS/demo (run deploy/setup.sh)"
export PRIVID_MODELS=$MODELS
WORK=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT

STEP="ssd on the six samples"
samples=()
for i in 1 2 3 4 5 6; do samples+=("$MODELS/demo/sample$i.jpg"); done
"$ADMIN" faces --detector ssd "${samples[@]}" >"$WORK/ssd.jsonl" 2>"$WORK/err" || fail "exit $?: $(cat "$WORK/err")"
[ "$(wc -l <"$WORK/ssd.jsonl")" = 6 ] || fail "expected 6 lines, got $(wc -l <"$WORK/ssd.jsonl")"
got=$(jq -c '.faces | length' "$WORK/ssd.jsonl" | tr '\n' ' ')
want=$(jq -c '.images[] | .ssd | length' "$EXPECTED" | tr '\n' ' ')
[ "$got" = "$want" ] || fail "face counts $got, reference $want"
jq -e 'select(.format != "jpeg" or .detector != "ssd" or .width < 1 or .height < 1
              or (.timing_ms.total < .timing_ms.detect))' "$WORK/ssd.jsonl" >/dev/null &&
    fail "a malformed image record"
jq -e '.faces[] | select((.landmarks | length) != 68 or (.descriptor | length) != 128
        or .score < 0.5 or .score > 1 or .box.width <= 0 or .quality.face_px <= 0
        or .quality.sharpness <= 0 or (.quality.yaw_deg | fabs) > 90)' "$WORK/ssd.jsonl" >/dev/null &&
    fail "a malformed face record"
# each descriptor close to the reference's for the same face (same decoder: 1e-3 per value)
jq -n --slurpfile got "$WORK/ssd.jsonl" --slurpfile ref "$EXPECTED" '
  [range(0; 6) as $i | $got[$i].faces[] as $f |
   [$ref[0].images[$i].ssd[] | [range(0; 128) as $k | ($f.descriptor[$k] - .descriptor[$k]) | fabs] | max] | min]
  | max' >"$WORK/maxdiff" || fail "jq comparison failed"
awk '{ exit !($1 < 1e-3) }' "$WORK/maxdiff" || fail "descriptor differs from the reference by $(cat "$WORK/maxdiff")"

STEP="tiny (default) with a threshold"
"$ADMIN" faces "$MODELS/demo/sample2.jpg" --min-score 0.5 >"$WORK/tiny.jsonl" || fail "exit $?"
[ "$(jq -r '.detector' "$WORK/tiny.jsonl")" = tiny ] || fail "default detector is not tiny"
[ "$(jq '.faces | length' "$WORK/tiny.jsonl")" = "$(jq '.images[1].tiny | length' "$EXPECTED")" ] ||
    fail "tiny face count differs from the reference"
"$ADMIN" faces "$MODELS/demo/sample2.jpg" --min-score 0.99 >"$WORK/strict.jsonl" || fail "exit $?"
[ "$(jq '.faces | length' "$WORK/strict.jsonl")" -le "$(jq '.faces | length' "$WORK/tiny.jsonl")" ] ||
    fail "a higher threshold found more faces"

STEP="per-image errors do not stop the run"
printf 'GIF89a\001\000\001\000' >"$WORK/fake.jpg"
head -c 5000 "$MODELS/demo/sample3.jpg" >"$WORK/truncated.jpg"
: >"$WORK/empty.png"
mkdir "$WORK/dir.jpg"
"$ADMIN" faces "$WORK/fake.jpg" "$WORK/missing.jpg" "$MODELS/demo/sample1.jpg" "$WORK/truncated.jpg" \
    "$WORK/empty.png" "$WORK/dir.jpg" >"$WORK/mixed.jsonl" 2>"$WORK/err"
rc=$?
[ $rc = 1 ] || fail "exit $rc, expected 1 when some images fail"
[ "$(wc -l <"$WORK/mixed.jsonl")" = 6 ] || fail "expected 6 lines"
[ "$(jq -r 'if .error then .error.code else "ok" end' "$WORK/mixed.jsonl" | tr '\n' ' ')" = \
    "bad_format io_error ok bad_format invalid_argument invalid_argument " ] ||
    fail "error codes: $(jq -c '.error' "$WORK/mixed.jsonl" | tr '\n' ' ')"
jq -e 'select(.error and (.error.message | length) == 0)' "$WORK/mixed.jsonl" >/dev/null && fail "an empty message"
[ "$(sed -n 3p "$WORK/mixed.jsonl" | jq '.faces | length')" -ge 1 ] || fail "the good image lost its faces"

STEP="usage errors"
"$ADMIN" faces >/dev/null 2>"$WORK/err"; rc=$?
[ $rc = 2 ] && grep -q 'missing argument IMAGE' "$WORK/err" || fail "no image: exit $rc, $(cat "$WORK/err")"
"$ADMIN" faces --detector yolo x.jpg >/dev/null 2>"$WORK/err"; rc=$?
[ $rc = 2 ] && grep -q -- '--detector' "$WORK/err" || fail "bad detector: exit $rc"
"$ADMIN" faces --min-score 2 x.jpg >/dev/null 2>"$WORK/err"; rc=$?
[ $rc = 2 ] && grep -q -- '--min-score' "$WORK/err" || fail "bad score: exit $rc"
"$ADMIN" faces --models "$WORK" "$MODELS/demo/sample1.jpg" >/dev/null 2>"$WORK/err"; rc=$?
[ $rc = 1 ] && grep -q 'cannot load the face networks' "$WORK/err" || fail "bad models dir: exit $rc, $(cat "$WORK/err")"
"$ADMIN" faces --help | grep 'Usage: privid-admin faces' >/dev/null || fail "no help"

echo "ok: privid-admin faces"
