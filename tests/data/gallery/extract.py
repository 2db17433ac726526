#!/usr/bin/env python3
"""Extracts the 22 real face descriptors of ../shared/golden (see PROVENANCE.md)
into raw little-endian float32 files, 22 x 128, in image then face order.
Usage: python3 extract.py [GOLDEN_DIR]  (default: ../../../../shared/golden)"""
import json, os, struct, sys

here = os.path.dirname(os.path.abspath(__file__))
golden = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../../../shared/golden")
for src, dst in (("faces.json", "descriptors_jpegjs_22x128_f32.bin"),
                 ("faces_libjpeg-turbo.json", "descriptors_libjpeg_22x128_f32.bin")):
    doc = json.load(open(os.path.join(golden, src)))
    descs = [f["descriptor"] for im in doc["images"] for f in im["ssd_faces"]]
    assert len(descs) == 22 and all(len(d) == 128 for d in descs)
    with open(os.path.join(here, dst), "wb") as out:
        for d in descs:
            out.write(struct.pack("<128f", *d))
