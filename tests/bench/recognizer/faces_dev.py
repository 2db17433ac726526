#!/usr/bin/env python3
"""Detection rate and re-identification descriptors on ../shared/faces-dev.

Runs `privid-admin faces` on every labelled photo (LABELS.tsv), prints the
share of photos where at least one face was found, and writes the JSONL that
../shared/tools/reid_eval.py scores (person, path, faces[{box, score,
descriptor}]). The photos are read in place and never copied.

usage: faces_dev.py [--faces-dev DIR] [--admin build/bin/privid-admin]
                    [--detector tiny|ssd] [--out DESCRIPTORS.jsonl] [-- extra privid-admin args]
"""
import argparse, json, os, subprocess, sys

ap = argparse.ArgumentParser()
here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.abspath(os.path.join(here, "..", "..", ".."))
ap.add_argument("--faces-dev", default=os.path.join(repo, "..", "shared", "faces-dev"))
ap.add_argument("--admin", default=os.path.join(repo, "build", "bin", "privid-admin"))
ap.add_argument("--detector", default="tiny")
ap.add_argument("--out", default=None)
ap.add_argument("extra", nargs="*")
a = ap.parse_args()

rows = []
with open(os.path.join(a.faces_dev, "LABELS.tsv")) as f:
    next(f)
    for line in f:
        person, path = line.rstrip("\n").split("\t")[:2]
        rows.append((person, path))

paths = [os.path.join(a.faces_dev, p) for _, p in rows]
cmd = [a.admin, "faces", "--detector", a.detector] + a.extra + paths
proc = subprocess.run(cmd, capture_output=True, text=True)
lines = [json.loads(l) for l in proc.stdout.splitlines() if l.strip()]
if len(lines) != len(rows):
    sys.exit("expected %d results, got %d: %s" % (len(rows), len(lines), proc.stderr[-500:]))

found = retried = errors = 0
total_ms = []
out = open(a.out, "w") if a.out else None
for (person, path), r in zip(rows, lines):
    if "error" in r:
        errors += 1
        faces = []
    else:
        faces = r["faces"]
        retried += r["retried"]
        total_ms.append(r["timing_ms"]["total"])
    found += len(faces) > 0
    if out:
        out.write(json.dumps({"person": person, "path": path, "faces": [
            {"box": [f["box"]["x"], f["box"]["y"], f["box"]["width"], f["box"]["height"]],
             "score": f["score"], "descriptor": f["descriptor"]} for f in faces]}) + "\n")
total_ms.sort()
print(json.dumps({"detector": a.detector, "photos": len(rows), "with_face": found,
                  "detection_rate": round(found / len(rows), 4), "retried": retried, "errors": errors,
                  "median_total_ms": total_ms[len(total_ms) // 2] if total_ms else None}))
