#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_visitor_id: tenant id (8 bytes, big-endian),
gid (8), tenant secret (32), then an ID text to decode. Deterministic; run
from anywhere: python3 gen_corpus_visitor_id.py [OUT_DIR]."""
import os
import struct
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_visitor_id")
os.makedirs(out, exist_ok=True)


def head(tenant, gid, secret_byte):
    return struct.pack(">QQ", tenant, gid) + bytes((secret_byte + i) & 0xFF for i in range(32))


seeds = {
    "short": b"\x00\x01",
    "zero_no_text": head(0, 0, 0),
    "max_no_text": head(2**64 - 1, 2**64 - 1, 0xF0),
    "well_formed_text": head(7, 42, 1) + b"vis_AAAAAAAAAAAAAAAAAAAAAA",
    "noncanonical_tail": head(7, 42, 1) + b"vis_AAAAAAAAAAAAAAAAAAAAAB",
    "bad_prefix": head(7, 42, 1) + b"vix_AAAAAAAAAAAAAAAAAAAAAA",
    "bad_char": head(7, 42, 1) + b"vis_AAAAAAAAAA+AAAAAAAAAAA",
    "too_long": head(3, 9, 2) + b"vis_AAAAAAAAAAAAAAAAAAAAAAA",
    "too_short": head(3, 9, 2) + b"vis_",
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
