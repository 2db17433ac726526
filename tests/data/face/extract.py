#!/usr/bin/env python3
"""Extracts the end-to-end expectations of test_face.c from the reference
outputs in ../shared/golden (faces_libjpeg-turbo.json and faces.json, made by
face-api 1.7.15 on the sample photos; see PROVENANCE.md). Run once:
    python3 extract.py /path/to/shared/golden > expected.json
"""
import json
import sys

golden = sys.argv[1] if len(sys.argv) > 1 else "../../../../shared/golden"
lj = json.load(open(golden + "/faces_libjpeg-turbo.json"))
js = json.load(open(golden + "/faces.json"))


def box(b):
    return [b["x"], b["y"], b["width"], b["height"]]


out = {"source": "face-api 1.7.15 via ../shared/golden (see PROVENANCE.md)", "images": []}
for a, b in zip(lj["images"], js["images"]):
    assert a["file"] == b["file"]
    img = {
        "file": a["file"],
        "width": int(a["width"]),
        "height": int(a["height"]),
        "rgb_sha256": a["rgb_sha256"],
        "ssd": [
            {
                "score": f["score"],
                "box": box(f["box"]),
                "landmark_crop": box(f["landmark_crop_box"]),
                "descriptor_crop": box(f["descriptor_crop_box"]),
                "landmarks": [[round(p[0], 4), round(p[1], 4)] for p in f["landmarks"]],
                "descriptor": f["descriptor"],
            }
            for f in a["ssd_faces"]
        ],
        "tiny": [{"score": f["score"], "box": box(f["box"])} for f in a["tiny_faces"]],
        "jpegjs_ssd": [{"box": box(f["box"]), "descriptor": f["descriptor"]} for f in b["ssd_faces"]],
    }
    out["images"].append(img)
json.dump(out, sys.stdout, separators=(",", ":"))
print()
