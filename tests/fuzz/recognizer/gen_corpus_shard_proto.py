#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_shard_proto: one valid message of each kind
(see recognizer/shard_proto.h) and a few near misses. Deterministic; run from
anywhere: python3 gen_corpus_shard_proto.py [OUT_DIR]."""
import math
import os
import struct
import sys

DIM = 128
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_shard_proto")
os.makedirs(out, exist_ok=True)


def hdr(typ, count, version=1, flags=0, magic=b"PVSH"):
    return magic + struct.pack("<HHII", version, typ, count, flags)


def vec(seed):
    return struct.pack("<%df" % DIM, *[math.sin(seed * 7.1 + j) * 0.3 for j in range(DIM)])


def search_req(nq, k, owner=0):
    return hdr(1, nq) + struct.pack("<QII", owner, k, DIM) + b"".join(vec(i) for i in range(nq))


seeds = {
    "search_1": search_req(1, 5),
    "search_3_owner": search_req(3, 10, owner=42),
    "enroll": hdr(2, 1) + struct.pack("<QQqfI", 7, 0, 1700000000000, 0.9, DIM) + vec(1),
    "add": hdr(3, 1) + struct.pack("<QqfI", 7, 1700000000001, 0.8, DIM) + vec(2),
    "remove": hdr(4, 1) + struct.pack("<Q", 7),
    "search_resp": hdr(0x81, 2) + struct.pack("<II", 2, 0)
    + struct.pack("<QIf", 7, 0, 0.1) + struct.pack("<QIf", 9, 3, 0.5)
    + struct.pack("<QIf", 8, 1, 0.2) + struct.pack("<QIf", 0, 0, math.inf),
    "enroll_resp": hdr(0x82, 1) + struct.pack("<Q", 7),
    "add_resp": hdr(0x83, 1) + struct.pack("<QII", 7, 0xFFFFFFFF, 0),
    "remove_resp": hdr(0x84, 1) + struct.pack("<Q", 7),
    "stats_resp": hdr(0x85, 1) + struct.pack("<6Q4I", 10, 20, 1, 30, 25, 65536, DIM, 8, 0, 0),
    "health_resp": hdr(0x86, 1) + struct.pack("<IIQ", 1, 0, 10),
    # near misses
    "search_nan": search_req(1, 5)[:40] + struct.pack("<f", math.nan) + search_req(1, 5)[44:],
    "search_dim64": hdr(1, 1) + struct.pack("<QII", 0, 5, 64) + vec(0)[: 64 * 4],
    "search_big_count": hdr(1, 1025) + struct.pack("<QII", 0, 5, DIM),
    "enroll_v2": hdr(2, 1, version=2) + struct.pack("<QQqfI", 7, 0, 0, 0.9, DIM) + vec(1),
    "short": b"PVSH\x01\x00",
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
