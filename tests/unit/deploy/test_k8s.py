#!/usr/bin/env python3
"""deploy/k8s without a cluster: renders the base and every overlay with
kustomize.py (the subset of kustomize the manifests use) and checks the
invariants on what would be applied: probes on every serving container
(on routes the programs serve, on ports they declare), requests and limits,
non-root with a read-only root file system and every written path on a
volume, every ConfigMap, Secret and claim referenced exists, every PRIVID_*
variable is read by the image's programs (their --help), image names
consistent, the StatefulSet's serviceName is a headless Service selecting
its pods, the gateway's shard list is exactly the StatefulSet's stable DNS
names in ordinal order, the NetworkPolicies select the real pod labels and
let only the gateway reach the shards, the HPA rule, the migration Job, the
Prometheus annotation. Also runs the gateway's wait-for-shards init script.
  test_k8s.py REPO BIN_DIR
"""
import ipaddress
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploylib import ADMIN_HELP, Checks, parse_dockerfile, program_envs  # noqa: E402
from kustomize import KustomizeError, render  # noqa: E402

repo, bindir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
kdir = os.path.join(repo, "deploy/k8s")
c = Checks()

# what the images hold and which variables their programs read
stages = {s.name: s for s in parse_dockerfile(os.path.join(repo, "deploy/docker/Dockerfile"))[0] if s.name}
uid = int(stages["gateway"].last("USER").rest.split(":")[0])
c.eq("shard image user = gateway image user", stages["gateway"].last("USER").rest, stages["shard"].last("USER").rest)
gw_env = program_envs(os.path.join(bindir, "privid-gateway")) | program_envs(os.path.join(bindir, "privid-admin"),
                                                                           ADMIN_HELP)
IMAGES = {"privid-gateway": {"env": gw_env, "programs": {"privid-gateway", "privid-admin"}},
          "privid-shard": {"env": program_envs(os.path.join(bindir, "privid-shard")), "programs": {"privid-shard"}}}
# routes each program serves without authentication (grep of the sources)
routes = {"privid-gateway": set(re.findall(r'"(/(?:healthz|readyz|metrics))"',
                                           open(os.path.join(repo, "gateway/routes.c")).read())),
          "privid-shard": set(re.findall(r'"(/healthz)"', open(os.path.join(repo, "recognizer/shard_main.c")).read()))}
c.eq("gateway routes found", {"/healthz", "/readyz", "/metrics"}, routes["privid-gateway"])


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def quantity(q):
    """CPU or memory quantity as a float (cores or bytes)."""
    q = str(q)
    units = {"m": 1e-3, "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4, "k": 1e3, "M": 1e6, "G": 1e9}
    for u, f in sorted(units.items(), key=lambda x: -len(x[0])):
        if q.endswith(u):
            return float(q[:-len(u)]) * f
    return float(q)


def check_render(label, res, image_map):
    """image_map: rendered image name (without tag) -> base image name."""
    by = {}
    for r in res:
        by.setdefault(r["kind"], {})[r["metadata"]["name"]] = r
    cms, secrets = by.get("ConfigMap", {}), by.get("Secret", {})
    pvcs, services = by.get("PersistentVolumeClaim", {}), by.get("Service", {})
    workloads = [r for r in res if r["kind"] in ("Deployment", "StatefulSet", "Job")]
    c.check(len(workloads) == 3, "%s: gateway Deployment, shard StatefulSet, migrate Job" % label)
    namespaces = {r["metadata"].get("namespace") for r in res}
    c.check(len(namespaces) == 1, "%s: one namespace for everything, got %s" % (label, namespaces))
    images_seen = {}
    pods = {}  # workload name -> pod labels
    for w in workloads:
        name = w["metadata"]["name"]
        tmpl = w["spec"]["template"]
        pods[name] = tmpl["metadata"].get("labels", {})
        spec = tmpl["spec"]
        if w["kind"] != "Job":
            c.check(labels_match(w["spec"]["selector"]["matchLabels"], pods[name]),
                    "%s %s: selector matches its pod labels" % (label, name))
        sc = spec.get("securityContext", {})
        c.check(sc.get("runAsNonRoot") is True, "%s %s: runAsNonRoot" % (label, name))
        c.eq("%s %s: runAsUser is the images' user" % (label, name), uid, sc.get("runAsUser"))
        c.eq("%s %s: seccomp" % (label, name), "RuntimeDefault", sc.get("seccompProfile", {}).get("type"))
        c.check(spec.get("automountServiceAccountToken") is False, "%s %s: no API token mounted" % (label, name))
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
        for v in vols.values():
            if "persistentVolumeClaim" in v:
                c.check(v["persistentVolumeClaim"]["claimName"] in pvcs, "%s %s: claim %s exists"
                        % (label, name, v["persistentVolumeClaim"]["claimName"]))
            if "secret" in v:
                c.check(v["secret"]["secretName"] in secrets, "%s %s: secret %s exists"
                        % (label, name, v["secret"]["secretName"]))
            if "configMap" in v:
                c.check(v["configMap"]["name"] in cms, "%s %s: configMap exists" % (label, name))
        for ctr in spec.get("containers", []) + spec.get("initContainers", []):
            cn = "%s %s/%s" % (label, name, ctr["name"])
            image = ctr["image"]
            base_name = image_map.get(re.split(r"[:@]", image)[0] if "/" not in image else
                                      image.rsplit(":", 1)[0] if "@" not in image else image.split("@")[0])
            c.check(base_name in IMAGES, "%s: image %s is one of ours" % (cn, image))
            if base_name in images_seen:
                c.eq("%s: same image reference everywhere for %s" % (cn, base_name), images_seen[base_name], image)
            images_seen.setdefault(base_name, image)
            if label != "base":
                c.check(re.search(r":[\w.-]+$|@sha256:", image) and not image.endswith(":latest"),
                        "%s: image %s is pinned" % (cn, image))
            csc = ctr.get("securityContext", {})
            c.check(csc.get("readOnlyRootFilesystem") is True, "%s: readOnlyRootFilesystem" % cn)
            c.check(csc.get("allowPrivilegeEscalation") is False, "%s: no privilege escalation" % cn)
            c.eq("%s: capabilities dropped" % cn, ["ALL"], csc.get("capabilities", {}).get("drop"))
            c.check(csc.get("runAsUser", uid) != 0 and csc.get("privileged") is not True, "%s: not root" % cn)
            rs = ctr.get("resources", {})
            for kind in ("cpu", "memory"):
                req, lim = rs.get("requests", {}).get(kind), rs.get("limits", {}).get(kind)
                c.check(req is not None and lim is not None, "%s: %s request and limit" % (cn, kind))
                if req is not None and lim is not None:
                    c.check(quantity(req) <= quantity(lim), "%s: %s request %s above limit %s" % (cn, kind, req, lim))
            # configuration: every reference exists, every PRIVID_* variable is read by the image's programs
            env = {}
            for ef in ctr.get("envFrom", []):
                ref = ef.get("configMapRef", {}).get("name") or ef.get("secretRef", {}).get("name")
                src = cms if "configMapRef" in ef else secrets
                c.check(ref in src, "%s: envFrom %s exists" % (cn, ref))
                env.update(src.get(ref, {}).get("data", {}) or {})
            for e in ctr.get("env", []):
                vf = e.get("valueFrom", {})
                if "secretKeyRef" in vf:
                    s = secrets.get(vf["secretKeyRef"]["name"], {})
                    c.check(vf["secretKeyRef"]["key"] in (s.get("stringData") or s.get("data") or {}),
                            "%s: secret key %s exists" % (cn, vf["secretKeyRef"]))
                if "configMapKeyRef" in vf:
                    cm = cms.get(vf["configMapKeyRef"]["name"], {})
                    c.check(vf["configMapKeyRef"]["key"] in cm.get("data", {}), "%s: configMap key exists" % cn)
                env[e["name"]] = e.get("value")
            readable = IMAGES.get(base_name, {}).get("env", set())
            for k, v in env.items():
                if not k.startswith("PRIVID_"):
                    continue
                base = k[:-5] if k.endswith("_FILE") else k
                c.check(base in readable, "%s: %s is read by none of %s's programs" % (cn, k, base_name))
                if k.endswith("_FILE"):
                    # the entry point reads it: no command override; the file is a key of a mounted secret
                    c.check("command" not in ctr, "%s: %s needs the image's entry point (no command)" % (cn, k))
                    mount = next((m for m in ctr.get("volumeMounts", []) if v.startswith(m["mountPath"] + "/")),
                                 None)
                    sec = vols.get(mount["name"], {}).get("secret") if mount else None
                    s = secrets.get(sec["secretName"], {}) if sec else {}
                    c.check(sec is not None and os.path.basename(v) in (s.get("stringData") or s.get("data") or {}),
                            "%s: %s=%s is a key of a mounted secret" % (cn, k, v))
            # every path the program writes is on a volume (read-only root)
            mounts = {m["mountPath"]: m for m in ctr.get("volumeMounts", [])}
            for m in mounts.values():
                c.check(m["name"] in vols or m["name"] in claims, "%s: volume %s exists" % (cn, m["name"]))
            if ctr["name"] != "wait-for-shards":
                c.check("/tmp" in mounts, "%s: /tmp is a volume" % cn)
            for var in ("PRIVID_DATA_DIR", "PRIVID_SHARD_DATA_DIR"):
                if var in env and ctr["name"] != "wait-for-shards":
                    c.check(any(env[var] == p or env[var].startswith(p + "/") for p in mounts),
                            "%s: %s=%s is on a volume" % (cn, var, env[var]))
            # serving containers: probes on declared ports and routes the program serves
            ports = {p.get("name"): p["containerPort"] for p in ctr.get("ports", [])}
            if ports:
                listen = env.get("PRIVID_LISTEN") or env.get("PRIVID_SHARD_LISTEN") or ""
                c.check(listen.startswith("0.0.0.0:") and int(listen.rsplit(":", 1)[1]) in ports.values(),
                        "%s: listens on all interfaces on its declared port (%s, %s)" % (cn, listen, ports))
                prog = "privid-gateway" if base_name == "privid-gateway" else "privid-shard"
                want = {"livenessProbe": "/healthz",
                        "readinessProbe": "/readyz" if prog == "privid-gateway" else "/healthz"}
                for probe, path in want.items():
                    p = ctr.get(probe, {}).get("httpGet")
                    c.check(p is not None, "%s: %s" % (cn, probe))
                    if p:
                        c.eq("%s: %s path" % (cn, probe), path, p["path"])
                        c.check(p["port"] in ports or p["port"] in ports.values(), "%s: %s port %s declared"
                                % (cn, probe, p["port"]))
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    p = ctr.get(probe, {}).get("httpGet")
                    if p:
                        c.check(p["path"] in routes[prog], "%s: %s %s is a route %s serves" % (cn, probe, p["path"],
                                                                                             prog))
        if w["kind"] == "Deployment":
            ann = tmpl["metadata"].get("annotations", {})
            gw_ports = {p["containerPort"] for ctr in spec["containers"] for p in ctr.get("ports", [])}
            c.eq("%s %s: prometheus.io/scrape" % (label, name), "true", ann.get("prometheus.io/scrape"))
            c.check(ann.get("prometheus.io/port", "").isdigit() and int(ann["prometheus.io/port"]) in gw_ports,
                    "%s %s: prometheus.io/port is the gateway's port" % (label, name))
            c.check(ann.get("prometheus.io/path") in routes["privid-gateway"] and ann["prometheus.io/path"] ==
                    "/metrics", "%s %s: prometheus.io/path /metrics" % (label, name))

    # --- gateway, HPA
    gw = by["Deployment"]["privid-gateway"]
    hpa = by.get("HorizontalPodAutoscaler", {}).get("privid-gateway")
    c.check(hpa is not None, "%s: an HPA for the gateway" % label)
    if hpa:
        c.eq("%s: HPA target" % label, ("Deployment", "privid-gateway"),
             (hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"]))
        c.check(any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"]),
                "%s: HPA on CPU" % label)
        rwo = any("persistentVolumeClaim" in v and "ReadWriteOnce" in
                  pvcs[v["persistentVolumeClaim"]["claimName"]]["spec"]["accessModes"]
                  for v in gw["spec"]["template"]["spec"].get("volumes", []))
        c.check(not rwo or hpa["spec"]["maxReplicas"] <= 1, "%s: the gateway keeps its LMDB store on a "
                "ReadWriteOnce volume: HPA maxReplicas must stay 1 (deploy/k8s/README.md)" % label)
        c.check(not rwo or gw["spec"].get("strategy", {}).get("type") == "Recreate",
                "%s: a ReadWriteOnce gateway volume needs strategy Recreate" % label)
    gsvc = services.get("privid-gateway")
    c.check(gsvc is not None and labels_match(gsvc["spec"]["selector"], pods["privid-gateway"]),
            "%s: the gateway Service selects the gateway pods" % label)

    # --- shards: StatefulSet, headless Service, one claim each, the gateway's list
    sts = by["StatefulSet"]["privid-shard"]
    svc = services.get(sts["spec"]["serviceName"])
    c.check(svc is not None, "%s: StatefulSet serviceName %s is a Service" % (label, sts["spec"]["serviceName"]))
    shard_ctr = sts["spec"]["template"]["spec"]["containers"][0]
    shard_port = shard_ctr["ports"][0]["containerPort"]
    if svc:
        c.eq("%s: shard Service is headless" % label, "None", svc["spec"].get("clusterIP"))
        c.check(labels_match(svc["spec"]["selector"], pods["privid-shard"]), "%s: headless Service selects the "
                "shard pods" % label)
        c.check(any(p["port"] == shard_port for p in svc["spec"]["ports"]), "%s: Service port = shard port" % label)
        c.check(svc["spec"].get("publishNotReadyAddresses") is True, "%s: shard names resolve before readiness "
                "(the gateway resolves them at start)" % label)
    vct = sts["spec"].get("volumeClaimTemplates", [])
    c.check(len(vct) == 1 and "ReadWriteOnce" in vct[0]["spec"]["accessModes"]
            and vct[0]["spec"]["resources"]["requests"]["storage"], "%s: one claim per shard" % label)
    shard_env = dict(cms[shard_ctr["envFrom"][0]["configMapRef"]["name"]]["data"])
    c.check(any(m["name"] == vct[0]["metadata"]["name"] and m["mountPath"] == shard_env["PRIVID_SHARD_DATA_DIR"]
                for m in shard_ctr["volumeMounts"]), "%s: the claim is the shard's data directory" % label)
    gw_ctr = next(x for x in gw["spec"]["template"]["spec"]["containers"] if x["name"] == "gateway")
    gw_cfg = cms[gw_ctr["envFrom"][0]["configMapRef"]["name"]]["data"]
    urls = gw_cfg["PRIVID_SHARDS"].split(",")
    want = ["http://%s-%d.%s:%d" % (sts["metadata"]["name"], i, sts["spec"]["serviceName"], shard_port)
            for i in range(sts["spec"]["replicas"])]
    c.eq("%s: PRIVID_SHARDS = the StatefulSet's pods in ordinal order" % label, want, urls)
    # what the gateway's --shard parser (recognizer/shards.c) and config lists (16 items) accept
    c.check(len(urls) <= 16, "%s: at most 16 shards in one list" % label)
    for u in urls:
        m = re.fullmatch(r"http://([a-z0-9.-]+):(\d+)", u)
        c.check(m is not None and len(u) - 7 < 300 and all(0 < len(x) <= 63 for x in m.group(1).split(".")),
                "%s: %s is a base URL http://HOST:PORT the gateway accepts" % (label, u))

    # --- network policies: only the gateway reaches the shards; shards reach nothing
    pols = list(by.get("NetworkPolicy", {}).values())
    shard_pols = [p for p in pols if labels_match(p["spec"]["podSelector"].get("matchLabels"), pods["privid-shard"])]
    ing = [p for p in shard_pols if "Ingress" in p["spec"].get("policyTypes", [])]
    c.check(len(ing) >= 1, "%s: a NetworkPolicy selects the shard pods for ingress" % label)
    for p in ing:
        for rule in p["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                c.check(set(peer) == {"podSelector"}, "%s: shard ingress only from pods of this namespace" % label)
                sel = peer.get("podSelector", {}).get("matchLabels", {})
                c.check(labels_match(sel, pods["privid-gateway"]), "%s: shard ingress peer selects the gateway"
                        % label)
                for other in pods:
                    if other != "privid-gateway":
                        c.check(not labels_match(sel, pods[other]), "%s: shard ingress must not admit %s"
                                % (label, other))
            c.check(rule.get("from") and all(pt.get("port") == shard_port for pt in rule.get("ports", []))
                    and rule.get("ports"), "%s: shard ingress only on the shard port" % label)
    c.check(any("Egress" in p["spec"]["policyTypes"] and not p["spec"].get("egress") for p in shard_pols),
            "%s: shards may open no connection" % label)
    for who, needs_shards in (("privid-gateway", True), ("privid-migrate", False)):
        eg = [p for p in pols if labels_match(p["spec"]["podSelector"].get("matchLabels"), pods[who])
              and "Egress" in p["spec"]["policyTypes"]]
        c.check(len(eg) == 1, "%s: one egress policy for %s" % (label, who))
        rules = eg[0]["spec"]["egress"] if eg else []
        pg = [r for r in rules if any("ipBlock" in t for t in r.get("to", []))]
        c.check(len(pg) == 1 and [pt["port"] for pt in pg[0]["ports"]] == [5432],
                "%s: %s reaches PostgreSQL on 5432 only" % (label, who))
        for r in pg:
            for t in r["to"]:
                net = ipaddress.ip_network(t["ipBlock"]["cidr"])
                c.check(net.prefixlen >= 8, "%s: PostgreSQL range %s is not everything" % (label, net))
        to_shards = [r for r in rules if any(labels_match(t.get("podSelector", {}).get("matchLabels"),
                                                          pods["privid-shard"]) for t in r.get("to", []))]
        c.eq("%s: %s reaches the shards" % (label, who), needs_shards, bool(to_shards))
        dns = [r for r in rules if any(t.get("podSelector", {}).get("matchLabels") == {"k8s-app": "kube-dns"}
                                       for t in r.get("to", []))]
        c.check(len(dns) == 1, "%s: %s reaches kube-dns (selector untouched by labels)" % (label, who))

    # --- the migration Job
    job = by["Job"]["privid-migrate"]
    jc = job["spec"]["template"]["spec"]["containers"][0]
    c.eq("%s: migrate runs privid-admin migrate" % label, ["privid-admin", "migrate"], jc.get("args"))
    c.eq("%s: migrate uses the gateway image" % label, images_seen.get("privid-gateway"), jc["image"])
    c.check(job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never"), "%s: Job restart" % label)
    dsn = secrets["privid-postgres"]["stringData"]["dsn"]
    c.check(all(re.search(r"\b%s=" % k, dsn) for k in ("host", "dbname", "user")), "%s: the DSN names host, "
            "dbname and user" % label)
    return by


# ---- render base and overlays
rendered = {}
for label, d in [("base", os.path.join(kdir, "base"))] + [
        ("overlay " + o, os.path.join(kdir, "overlays", o)) for o in sorted(os.listdir(os.path.join(kdir, "overlays")))]:
    try:
        res = render(d)
    except (KustomizeError, OSError, KeyError) as e:
        c.check(False, "%s: render failed: %s" % (label, e))
        continue
    from kustomize import load_docs
    k = load_docs(os.path.join(d, "kustomization.yaml"))[0]
    image_map = {"privid-gateway": "privid-gateway", "privid-shard": "privid-shard"}
    for img in k.get("images", []):
        image_map[img.get("newName", img["name"])] = img["name"]
    rendered[label] = check_render(label, res, image_map)

c.check("base" in rendered and len(rendered) >= 2, "base and at least one overlay rendered")
if "base" in rendered and "overlay production" in rendered:
    base, prod = rendered["base"], rendered["overlay production"]
    c.eq("production keeps every resource", {(k, n) for k in base for n in base[k]},
         {(k, n) for k in prod for n in prod[k]})
    gw = prod["Deployment"]["privid-gateway"]["spec"]["template"]["spec"]["containers"][0]
    c.eq("production: gateway patch applied", "4", gw["resources"]["limits"]["cpu"])
    c.eq("production: gateway probes kept by the patch", "/readyz", gw["readinessProbe"]["httpGet"]["path"])
    c.eq("production: gateway config patched, shards kept", ("4", base["ConfigMap"]["privid-gateway-config"]
                                                            ["data"]["PRIVID_SHARDS"]),
         (prod["ConfigMap"]["privid-gateway-config"]["data"]["PRIVID_WORKERS"],
          prod["ConfigMap"]["privid-gateway-config"]["data"]["PRIVID_SHARDS"]))
    c.eq("production: namespace", {"privid"}, {r["metadata"]["namespace"] for k in prod for r in prod[k].values()})
    c.eq("production: shard volumes", "100Gi", prod["StatefulSet"]["privid-shard"]["spec"]["volumeClaimTemplates"][0]
         ["spec"]["resources"]["requests"]["storage"])

# the renderer fails loudly on what it does not implement
import tempfile  # noqa: E402
with tempfile.TemporaryDirectory() as tmp:
    open(os.path.join(tmp, "kustomization.yaml"), "w").write("kind: Kustomization\ncommonLabels: {a: b}\n")
    try:
        render(tmp)
        c.check(False, "the renderer refuses fields it does not implement")
    except KustomizeError:
        c.check(True, "")

# the gateway's init container: its script ends once every shard name resolves
gwd = rendered.get("base", {}).get("Deployment", {}).get("privid-gateway")
if gwd:
    init = gwd["spec"]["template"]["spec"]["initContainers"][0]
    env = dict(os.environ, PRIVID_SHARDS="http://localhost:9100,http://localhost:9101")
    r = subprocess.run(init["command"], env=env, capture_output=True, text=True, timeout=30)
    c.eq("wait-for-shards ends when the names resolve", 0, r.returncode)
    env["PRIVID_SHARDS"] = "http://localhost:9100,http://no-such-shard.invalid:9100"
    try:
        subprocess.run(init["command"], env=env, capture_output=True, text=True, timeout=3)
        c.check(False, "wait-for-shards must keep waiting for a name that does not resolve")
    except subprocess.TimeoutExpired:
        c.check(True, "")

c.finish()
