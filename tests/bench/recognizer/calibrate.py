#!/usr/bin/env python3
"""Calibrates and measures the matching policy (recognizer/match.h) on ../shared/faces-dev.

Reads the labelled photos in place (LABELS.tsv), runs `privid-admin faces` on them with each
detector, keeps the largest face per photo (the labelled person; faces-dev photos show one
person) with its score, quality record and descriptor, then prints:

  1. pair statistics: TAR (same-person pairs below a threshold) and FAR (different-person
     pairs below it) over a grid, and the equal-error point;
  2. quality: for each quality variable, how the faces it would reject behave (their
     median same-person distance and nearest different-person distance);
  3. with --degrade (needs ImageMagick `convert`): photos with large faces downscaled so
     the face is N pixels, re-run, TAR/FAR of the small copies against the full-size
     photos of everyone: where the face gets too small to trust (min_face_px);
  4. the confidence logistic fitted on the pair distances (equal weight per class);
  5. a stream of the photos in random order (--seeds orders) through the policy as
     match.c implements it (quality gate, returning < match_dist, new > enroll_dist,
     unenrolled between, exemplars with the gallery's K-exemplar replacement), for a grid
     of (match_dist, enroll_dist) and for the chosen configuration: statuses, visitors
     per person (splits), persons per visitor (merges), B-cubed precision/recall.

Descriptors and scaled copies live only in a temporary directory (or --cache, which must
be outside the repository); nothing from faces-dev is written to the repository.

usage: calibrate.py [--faces-dev DIR] [--admin PATH] [--detectors tiny,ssd] [--seeds 20]
                    [--cache DIR] [--degrade] [--config key=value,...]
"""
import argparse, collections, json, math, os, random, shutil, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

# The defaults of pv_match_config_init() (recognizer/match.c); --config overrides.
CHOSEN = dict(match_dist=0.50, enroll_dist=0.58, min_face_px=48, min_sharpness=40, max_yaw_deg=45,
              min_score=0.5, exemplar_min_dist=0.15, exemplar_max_dist=0.50, exemplar_min_face_px=64,
              exemplar_min_sharpness=80, exemplar_max_yaw_deg=30, conf_mid=0.644, conf_scale=0.020)
K_EXEMPLARS = 8  # PV_GALLERY_K_DEFAULT


def run_admin(admin, detector, paths, extra=()):
    out = []
    for i in range(0, len(paths), 64):  # bounded command lines
        cmd = [admin, "faces", "--detector", detector] + list(extra) + paths[i:i + 64]
        p = subprocess.run(cmd, capture_output=True, text=True)
        lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
        if len(lines) != len(paths[i:i + 64]):
            sys.exit("privid-admin: expected %d results, got %d: %s" % (len(paths[i:i + 64]), len(lines),
                                                                        p.stderr[-400:]))
        out += lines
    return out


def largest(faces):
    return max(faces, key=lambda f: f["box"]["width"] * f["box"]["height"]) if faces else None


def dist(a, b):
    return math.sqrt(sum((x - y) * (x - y) for x, y in zip(a, b)))


def load(a, detector, rows):
    cache = os.path.join(a.cache, "faces_%s.jsonl" % detector)
    if os.path.exists(cache):
        res = [json.loads(l) for l in open(cache)]
    else:
        res = run_admin(a.admin, detector, [os.path.join(a.faces_dev, p) for _, p in rows])
        with open(cache, "w") as f:
            for r in res:
                f.write(json.dumps(r) + "\n")
    items, noface = [], 0
    for (person, path), r in zip(rows, res):
        f = largest(r.get("faces", []))
        if f is None:
            noface += 1
            continue
        q = f["quality"]
        items.append(dict(person=person, path=path, d=f["descriptor"], score=f["score"], px=q["face_px"],
                          sharp=q["sharpness"], yaw=abs(q["yaw_deg"]), border=f.get("border", 0)))
    return items, noface


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))] if v else float("nan")


def median(v):
    return pct(v, 50)


# ---- the policy, as recognizer/match.c decides a one-face image ----

def low_quality(c, it):
    return (it["px"] < c["min_face_px"] or it["sharp"] < c["min_sharpness"] or it["yaw"] > c["max_yaw_deg"]
            or it["score"] < c["min_score"])


def exemplar_ok(c, it, d):
    return (c["exemplar_min_dist"] <= d < c["exemplar_max_dist"] and not it["border"]
            and it["px"] >= c["exemplar_min_face_px"] and it["sharp"] >= c["exemplar_min_sharpness"]
            and it["yaw"] <= c["exemplar_max_yaw_deg"])


def add_exemplar(ex, i, D):
    """pv_gallery_add: a free slot while < K, else drop the most redundant of the K+1
    (nearest other exemplar closest; ties: closer to all others)."""
    ex.append(i)
    if len(ex) <= K_EXEMPLARS:
        return
    def key(j):
        others = [D[j][o] for o in ex if o != j]
        return (min(others), sum(others))
    ex.remove(min(ex, key=key))


def stream(items, D, c, seed):
    rnd = random.Random(seed)
    order = list(range(len(items)))
    rnd.shuffle(order)
    ids = []  # exemplar index lists
    status = [None] * len(items)
    assign = [None] * len(items)
    for i in order:
        it = items[i]
        if low_quality(c, it):
            status[i] = "low_quality"
            continue
        best, bid = float("inf"), -1
        for g, ex in enumerate(ids):
            m = min(D[i][e] for e in ex)
            if m < best:
                best, bid = m, g
        if bid >= 0 and best < c["match_dist"]:
            status[i], assign[i] = "returning", bid
            if exemplar_ok(c, it, best):
                add_exemplar(ids[bid], i, D)
        elif bid < 0 or best > c["enroll_dist"]:
            status[i], assign[i] = "new", len(ids)
            ids.append([i])
        else:
            status[i] = "unenrolled"
    return status, assign, order


def stream_metrics(items, D, c, seeds):
    acc = collections.defaultdict(float)
    for s in range(seeds):
        status, assign, order = stream(items, D, c, s)
        n = len(items)
        for st in ("returning", "new", "unenrolled", "low_quality"):
            acc[st] += sum(1 for x in status if x == st) / n / seeds
        idx = [i for i in range(n) if assign[i] is not None]
        by_p, by_v = collections.defaultdict(set), collections.defaultdict(set)
        for i in idx:
            by_p[items[i]["person"]].add(assign[i])
            by_v[assign[i]].add(items[i]["person"])
        acc["visitors"] += len(by_v) / seeds
        acc["persons"] += len(by_p) / seeds
        acc["splits"] += sum(len(v) for v in by_p.values()) / len(by_p) / seeds
        acc["merges"] += sum(len(v) for v in by_v.values()) / len(by_v) / seeds
        acc["merged_visitors"] += sum(1 for v in by_v.values() if len(v) > 1) / seeds
        # B-cubed over the identified faces
        p = r = 0.0
        for i in idx:
            same_v = [j for j in idx if assign[j] == assign[i]]
            same_p = [j for j in idx if items[j]["person"] == items[i]["person"]]
            inter = sum(1 for j in same_v if items[j]["person"] == items[i]["person"])
            p += inter / len(same_v)
            r += inter / len(same_p)
        acc["P"] += p / len(idx) / seeds
        acc["R"] += r / len(idx) / seeds
        # wrong returning: joined a visitor first enrolled by someone else
        wrong = 0
        owner = {}
        for i in order:
            if status[i] == "new":
                owner[assign[i]] = items[i]["person"]
            elif status[i] == "returning" and owner[assign[i]] != items[i]["person"]:
                wrong += 1
        acc["wrong_returning"] += wrong / max(1, sum(1 for x in status if x == "returning")) / seeds
    return acc


def pair_stats(items, D):
    same, diff = [], []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            (same if items[i]["person"] == items[j]["person"] else diff).append(D[i][j])
    same.sort()
    diff.sort()
    return same, diff


def rate_below(v, t):
    lo, hi = 0, len(v)  # v sorted: count of x < t
    while lo < hi:
        m = (lo + hi) // 2
        if v[m] < t:
            lo = m + 1
        else:
            hi = m
    return lo / len(v) if v else float("nan")


def fit_logistic(same, diff):
    """p(same | d) = 1 / (1 + exp((d - mid) / scale)), maximum likelihood with the two
    classes weighted equally (a prior of 1/2), by Newton's method on (a, b) = (-1/scale,
    mid/scale)."""
    xs = [(d, 1.0, 0.5 / len(same)) for d in same] + [(d, 0.0, 0.5 / len(diff)) for d in diff]
    a, b = -10.0, 6.0  # p = sigmoid(a*d + b)
    for _ in range(50):
        ga = gb = haa = hab = hbb = 0.0
        for d, y, w in xs:
            z = a * d + b
            p = 1 / (1 + math.exp(-z)) if z > -500 else 0.0
            g = (p - y) * w
            h = p * (1 - p) * w
            ga += g * d
            gb += g
            haa += h * d * d
            hab += h * d
            hbb += h
        det = haa * hbb - hab * hab
        if det <= 0:
            break
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        a, b = a - da, b - db
        if abs(da) < 1e-9 and abs(db) < 1e-9:
            break
    return -b / a, -1 / a  # mid, scale


def D_full(items, i, j):
    return dist(items[i]["d"], items[j]["d"])


def find_convert():
    """The first `convert` on PATH that is ImageMagick (a stand-in of that name may come first)."""
    for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        exe = os.path.join(d, "convert")
        if os.access(exe, os.X_OK):
            p = subprocess.run([exe, "-version"], capture_output=True, text=True)
            if p.returncode == 0 and "ImageMagick" in p.stdout:
                return exe
    return None


def degrade(a, detector, items, workdir):
    """Downscale photos with a large face so the face is `target` pixels; TAR/FAR of the
    small copies against the full-size faces of everybody else."""
    convert = find_convert()
    if convert is None:
        print("  (ImageMagick convert not found: skipped)")
        return
    big = [i for i, it in enumerate(items) if it["px"] >= 200]
    targets = [24, 32, 40, 48, 64, 96]
    jobs, meta = [], []
    for t in targets:
        for i in big:
            it = items[i]
            out = os.path.join(workdir, "%s_%d_%d.png" % (detector, t, i))
            scale = 100.0 * t / it["px"]
            subprocess.run([convert, os.path.join(a.faces_dev, it["path"]), "-auto-orient", "-resize",
                            "%.4f%%" % scale, out], check=True, capture_output=True)
            jobs.append(out)
            meta.append((t, i))
    res = run_admin(a.admin, detector, jobs)
    print("  %d photos with faces >= 200 px, scaled to each size:" % len(big))
    print("  face_px  found  self_d(med)  TAR@%.2f  FAR@%.2f  (against the full-size photos)" %
          (a.cfg["match_dist"], a.cfg["match_dist"]))
    s_ok = s_n = d_ok = d_n = 0
    for i in big:
        for j, other in enumerate(items):
            if j != i:
                ok = D_full(items, i, j) < a.cfg["match_dist"]
                if other["person"] == items[i]["person"]:
                    s_n, s_ok = s_n + 1, s_ok + ok
                else:
                    d_n, d_ok = d_n + 1, d_ok + ok
    print("     full  %3d/%-3d  %10.3f  %7.4f  %8.5f" % (len(big), len(big), 0.0, s_ok / max(1, s_n), d_ok / max(1, d_n)))
    for t in targets:
        found, selfd, s_ok, s_n, d_ok, d_n = 0, [], 0, 0, 0, 0
        for (tt, i), r, path in zip(meta, res, jobs):
            if tt != t:
                continue
            os.unlink(path)
            f = largest(r.get("faces", []))
            if f is None:
                continue
            found += 1
            selfd.append(dist(f["descriptor"], items[i]["d"]))
            for j, other in enumerate(items):
                if j == i:
                    continue
                dd = dist(f["descriptor"], other["d"])
                if other["person"] == items[i]["person"]:
                    s_n += 1
                    s_ok += dd < a.cfg["match_dist"]
                else:
                    d_n += 1
                    d_ok += dd < a.cfg["match_dist"]
        print("  %7d  %3d/%-3d  %10.3f  %7.4f  %8.5f" % (t, found, len(big), median(selfd) if selfd else float("nan"),
                                                       s_ok / max(1, s_n), d_ok / max(1, d_n)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces-dev", default=os.path.join(REPO, "..", "shared", "faces-dev"))
    ap.add_argument("--admin", default=os.path.join(REPO, "build", "bin", "privid-admin"))
    ap.add_argument("--detectors", default="tiny,ssd")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--cache", default=None, help="keep descriptors here between runs (outside the repo)")
    ap.add_argument("--degrade", action="store_true")
    ap.add_argument("--no-grid", action="store_true")
    ap.add_argument("--config", default="", help="override chosen values, e.g. match_dist=0.5,enroll_dist=0.6")
    a = ap.parse_args()
    a.cfg = dict(CHOSEN)
    for kv in filter(None, a.config.split(",")):
        k, v = kv.split("=")
        if k not in a.cfg:
            sys.exit("unknown config key " + k)
        a.cfg[k] = float(v)
    tmp = None
    if a.cache is None:
        tmp = a.cache = tempfile.mkdtemp(prefix="pv_calibrate_")
    elif os.path.abspath(a.cache).startswith(REPO + os.sep):
        sys.exit("--cache must be outside the repository (it holds faces-dev descriptors)")
    os.makedirs(a.cache, exist_ok=True)
    try:
        rows = []
        with open(os.path.join(a.faces_dev, "LABELS.tsv")) as f:
            next(f)
            for line in f:
                person, path = line.rstrip("\n").split("\t")[:2]
                rows.append((person, path))
        c = a.cfg
        for det in a.detectors.split(","):
            items, noface = load(a, det, rows)
            n = len(items)
            D = [[0.0] * n for _ in range(n)]
            for i in range(n):
                for j in range(i + 1, n):
                    D[i][j] = D[j][i] = dist(items[i]["d"], items[j]["d"])
            same, diff = pair_stats(items, D)
            print("== detector %s: %d photos, no face in %d, %d faces of %d persons" %
                  (det, len(rows), noface, n, len(set(it["person"] for it in items))))
            print("1. pairs: %d same (median %.3f), %d different (median %.3f, min %.3f)" %
                  (len(same), median(same), len(diff), median(diff), diff[0]))
            best = min((abs((1 - rate_below(same, t)) - rate_below(diff, t)), t)
                       for t in [x / 1000 for x in range(300, 900, 5)])
            print("   EER %.4f at %.3f" % ((1 - rate_below(same, best[1]) + rate_below(diff, best[1])) / 2, best[1]))
            print("   thr    TAR     FAR")
            for t in (0.45, 0.5, 0.52, 0.55, 0.58, 0.6, 0.65, 0.7):
                print("   %.2f  %.4f  %.5f" % (t, rate_below(same, t), rate_below(diff, t)))

            # A face is "confusable" when its nearest different-person face is closer than its
            # median same-person face: a threshold is worth having when the faces it rejects
            # are confusable much more often than faces are overall.
            med_same = [median([D[i][j] for j in range(n) if j != i and items[j]["person"] == items[i]["person"]]
                               or [float("inf")]) for i in range(n)]
            near_diff = [min(D[i][j] for j in range(n) if items[j]["person"] != items[i]["person"]) for i in range(n)]
            conf = [near_diff[i] < med_same[i] for i in range(n)]
            print("2. quality: what each threshold rejects; 'confusable' = nearest other-person face closer than "
                  "the median same-person face (all faces: %d of %d, %.1f%%)" % (sum(conf), n, 100.0 * sum(conf) / n))
            print("   test            rejects  confusable  | TAR/FAR at %.2f of the faces kept" % c["match_dist"])
            for var, op, thrs in (("sharp", "<", (20, 40, 60, 80, 120)), ("yaw", ">", (25, 30, 35, 40, 45, 50, 60)),
                                  ("score", "<", (0.5, 0.55, 0.6, 0.65, 0.7)), ("px", "<", (40, 64, 100))):
                for thr in thrs:
                    rej = [i for i in range(n) if (items[i][var] < thr if op == "<" else items[i][var] > thr)]
                    keep = [i for i in range(n) if i not in set(rej)]
                    ks, kd = pair_stats([items[i] for i in keep], [[D[i][j] for j in keep] for i in keep])
                    print("   %-5s %s %-6g %4d %5.1f%%  %4d %5.1f%%  | %.4f %.5f" %
                          (var, op, thr, len(rej), 100.0 * len(rej) / n, sum(conf[i] for i in rej),
                           100.0 * sum(conf[i] for i in rej) / len(rej) if rej else 0.0,
                           rate_below(ks, c["match_dist"]), rate_below(kd, c["match_dist"])))
            kept = [i for i in range(n) if not low_quality(c, items[i])]
            ks, kd = pair_stats([items[i] for i in kept], [[D[i][j] for j in kept] for i in kept])
            print("   after the quality gate: %d faces; TAR %.4f FAR %.5f at match_dist %.2f "
                  "(all faces: TAR %.4f FAR %.5f)" % (len(kept), rate_below(ks, c["match_dist"]),
                                                      rate_below(kd, c["match_dist"]), c["match_dist"],
                                                      rate_below(same, c["match_dist"]), rate_below(diff, c["match_dist"])))
            if a.degrade:
                print("3. face size (downscaled copies):")
                degrade(a, det, items, a.cache)
            mid, scale = fit_logistic(same, diff)
            print("4. confidence logistic (equal class weights): mid %.3f scale %.4f" % (mid, scale))

            print("5. stream (%d random orders of the %d faces; statuses as shares of faces; splits = visitors "
                  "per person, merges = persons per visitor, over identified faces):" % (a.seeds, n))
            hdr = "   match enrol | ret    new    unenr  lowq  | persons visitors splits merges merged wrong_ret | P      R"
            print(hdr)
            grid = [] if a.no_grid else sorted(set((m, e) for m in (0.45, 0.5, 0.52, 0.55, 0.6)
                                                   for e in (m, 0.55, 0.58, 0.6, 0.62, 0.65, 0.7) if e >= m))
            for m, e in grid + [(c["match_dist"], c["enroll_dist"])]:
                cc = dict(c, match_dist=m, enroll_dist=e, exemplar_max_dist=min(c["exemplar_max_dist"], m))
                s = stream_metrics(items, D, cc, a.seeds)
                print("   %.2f  %.2f  | %.3f  %.3f  %.3f  %.3f | %6.1f  %6.1f   %.3f  %.3f  %5.1f  %.4f    | %.4f %.4f%s" %
                      (m, e, s["returning"], s["new"], s["unenrolled"], s["low_quality"], s["persons"], s["visitors"], s["splits"],
                       s["merges"], s["merged_visitors"], s["wrong_returning"], s["P"], s["R"],
                       "   <- chosen" if (m, e) == (c["match_dist"], c["enroll_dist"]) else ""))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
