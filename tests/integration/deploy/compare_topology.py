#!/usr/bin/env python3
"""Compares what test_topology.sh collected from the single-process gateway
(a) and the three-shard one (b): every answer, the visitor partition, the
reports (identical, and equal to the counts of the stream), the shards.
  compare_topology.py OUT_DIR REPORT_DIR SHARD_STATS_JSONL
Prints each difference; exits 1 when there is any.
"""
import json
import os
import sys

out_dir, rep_dir, stats_path = sys.argv[1:4]
fails = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        fails.append(what)
        print("FAIL: " + what, file=sys.stderr)


def close(x, y, tol):
    if x is None or y is None:
        return x is y
    return abs(x - y) <= tol


def load(d):
    return [json.load(open(os.path.join(d, f))) for f in sorted(os.listdir(d))]


A, B = load(os.path.join(out_dir, "a")), load(os.path.join(out_dir, "b"))
check(len(A) == len(B) and len(A) >= 30, "same number of answers (%d, %d)" % (len(A), len(B)))
a2b, b2a = {}, {}
statuses = []
for ra, rb in zip(A, B):
    name = ra["name"]
    check(ra["status"] == rb["status"] == "200", "%s: HTTP %s vs %s" % (name, ra["status"], rb["status"]))
    fa, fb = ra["body"]["faces"], rb["body"]["faces"]
    check(ra["body"].get("degraded") is False and rb["body"].get("degraded") is False, "%s: degraded" % name)
    check(len(fa) == len(fb), "%s: %d faces vs %d" % (name, len(fa), len(fb)))
    for i, (x, y) in enumerate(zip(fa, fb)):
        w = "%s face %d" % (name, i)
        check(x["status"] == y["status"], "%s: status %s vs %s" % (w, x["status"], y["status"]))
        statuses.append((name, x["status"], x.get("distance")))
        for k in ("x", "y", "width", "height"):
            check(close(x["box"][k], y["box"][k], 1e-3), "%s: box.%s %s vs %s" % (w, k, x["box"][k], y["box"][k]))
        check(close(x.get("score"), y.get("score"), 1e-5), "%s: score" % w)
        check(x.get("visits") == y.get("visits"), "%s: visits %s vs %s" % (w, x.get("visits"), y.get("visits")))
        check(close(x.get("distance"), y.get("distance"), 1e-4),
              "%s: distance %s vs %s" % (w, x.get("distance"), y.get("distance")))
        check(close(x.get("confidence"), y.get("confidence"), 1e-4),
              "%s: confidence %s vs %s" % (w, x.get("confidence"), y.get("confidence")))
        va, vb = x.get("visitor"), y.get("visitor")
        check((va is None) == (vb is None), "%s: visitor on one side only" % w)
        if va is not None and vb is not None:
            check(a2b.setdefault(va, vb) == vb and b2a.setdefault(vb, va) == va,
                  "%s: visitor grouping differs (%s -> %s, %s -> %s)" % (w, va, a2b.get(va), vb, b2a.get(vb)))

# the stream is not trivial: new, returning at real distances, unenrolled or low quality faces
kinds = {s for _, s, _ in statuses}
check({"new", "returning"} <= kinds, "statuses seen: %s" % sorted(kinds))
check(any(s == "returning" and d is not None and d > 0.05 for _, s, d in statuses),
      "some returning face at a real distance (variants)")
check(any(n.startswith("pass2") and s == "returning" for n, s, _ in statuses), "enroll=never still recognises")
check(not any(n.startswith("pass2") and s == "new" for n, s, _ in statuses), "enroll=never enrols nobody")
check(len(a2b) >= 8, "at least 8 visitors (%d)" % len(a2b))

# what the reports must say, from the answers: visits recorded by recognize, minus the erased visitor's
erased = next(f["visitor"] for f in A[2]["body"]["faces"] if f.get("visitor"))  # sample3's, as the test chose
visits = {"": [], "front": [], "back": []}
erased_at = next(i for i, r in enumerate(A) if r["name"] == "pass5 sample3 after erasure")
for i, r in enumerate(A):
    if not r["name"].startswith("pass"):
        continue
    loc = "front" if r["name"].startswith(("pass1", "pass3", "pass5")) else "back"
    for f in r["body"]["faces"]:
        if f["status"] in ("new", "returning") and not (f["visitor"] == erased and i < erased_at):
            visits[""].append(f["visitor"])
            visits[loc].append(f["visitor"])
check(erased not in [f.get("visitor") for f in A[erased_at]["body"]["faces"]], "the erased visitor is gone")

RA, RB = load(os.path.join(rep_dir, "a")), load(os.path.join(rep_dir, "b"))
check(len(RA) == len(RB) == 9, "nine reports each")
for ra, rb in zip(RA, RB):
    check(ra["body"] == rb["body"], "report %s differs:\n  a: %s\n  b: %s" % (ra["name"], json.dumps(ra["body"]),
                                                                              json.dumps(rb["body"])))
    if "data" not in (ra["body"] or {}):
        check(False, "report %s has no data" % ra["name"])
        continue
    if ra["name"].startswith("summary"):
        loc = ra["name"].partition("location=")[2]
        d = ra["body"]["data"]
        check(d["visits"] == len(visits[loc]), "summary %s: visits %s, the stream recorded %d"
              % (loc or "all", d["visits"], len(visits[loc])))
        check(d["visitors"] == len(set(visits[loc])), "summary %s: visitors %s, the stream had %d"
              % (loc or "all", d["visitors"], len(set(visits[loc]))))
    if ra["name"] == "conversion":
        al = ra["body"]["data"]["all"]
        eur = [x for x in al.get("revenue", []) if x.get("currency") == "EUR"]
        check(al.get("buyers") == 2 and len(eur) == 1 and eur[0].get("amount_minor") == 2000,
              "conversion shows the two purchases (2 buyers, 2000 EUR minor): %s" % json.dumps(al))

# the cluster: identities spread over the shards, as many as enrolled minus the erased one
stats = [json.loads(line) for line in open(stats_path) if line.strip()]
enrolled = sum(1 for r in B if r["name"].startswith("pass") for f in r["body"]["faces"] if f["status"] == "new")
check(len(stats) == 3, "three shard stats")
check(sum(s["identities"] for s in stats) == enrolled - 1, "identities on the shards %s, enrolled %d minus 1 erased"
      % ([s["identities"] for s in stats], enrolled))
check(sum(1 for s in stats if s["identities"] > 0) >= 2, "identities on at least two shards: %s"
      % [s["identities"] for s in stats])

print("compare_topology: %d answers, %d visitors, %d reports; %d checks, %d failed"
      % (len(A), len(a2b), len(RA), checks, len(fails)))
sys.exit(1 if fails else 0)
