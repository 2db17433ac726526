#!/usr/bin/env python3
"""deploy/docker without a container engine (none runs on the development
machine): parses the Dockerfile and docker-compose.yml and checks them
against the repository, the build and the programs themselves. Every path
COPY'd exists (in the context and not ignored, or in the build), every
binary and command exists, every PRIVID_* variable is one the image's
programs read (their own --help), the runtime stage installs the Debian
package of every shared library the binaries link, users are non-root,
ports, health checks, volumes, networks and secrets agree, and the
entry point's *_FILE secrets and the health-check script work against a real
privid-shard process.
  test_docker.py REPO BIN_DIR    (env PRIVID_MODELS: the verified model folder)
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploylib import (ADMIN_HELP, Checks, apt_installed, copy_parts, dockerignore_patterns, ignored,  # noqa: E402
                       image_files, needed_packages, parse_dockerfile, program_envs, wait_log)

repo, bindir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
ver = re.search(r"^version\s+(\S+)", open(os.path.join(repo, "models/face-api.manifest")).read(), re.M).group(1)
models = os.environ.get("PRIVID_MODELS") or os.path.join(repo, "build/models/face-api-" + ver)
ddir = os.path.join(repo, "deploy/docker")
dockerfile = os.path.join(ddir, "Dockerfile")
c = Checks()

stages, errors = parse_dockerfile(dockerfile)
c.eq("Dockerfile parse errors", [], errors)
byname = {s.name: s for s in stages if s.name}
c.eq("stages", ["build", "runtime", "gateway", "shard"], [s.name for s in stages])
for s in stages:
    c.check(s.parent is not None or re.fullmatch(r"debian:bookworm(-slim)?", s.base),
            "stage %s: FROM %s is not a Debian bookworm image or an earlier stage" % (s.name, s.base))

# programs of the build, and what each final image holds
progs = {p: os.path.join(bindir, p) for p in ("privid-gateway", "privid-shard", "privid-admin")}
for p, path in progs.items():
    c.check(os.access(path, os.X_OK), "built binary %s missing" % path)
envs = {"privid-gateway": program_envs(progs["privid-gateway"]),
        "privid-shard": program_envs(progs["privid-shard"]),
        "privid-admin": program_envs(progs["privid-admin"], ADMIN_HELP)}
c.check("PRIVID_SHARDS" in envs["privid-gateway"] and "PRIVID_SHARD_LISTEN" in envs["privid-shard"]
        and "PRIVID_MIGRATIONS" in envs["privid-admin"], "the programs' --help lists their variables: %r" % envs)

# ---- build stage: scripts and targets
build = byname["build"]
ign = dockerignore_patterns(dockerfile + ".dockerignore")
c.check("build" in ign and ".git" in ign, "Dockerfile.dockerignore keeps build/ and .git out of the context")
targets = set()
for i in build.all("RUN"):
    for m in re.finditer(r"(?:^|\s|&&\s*)((?:deploy|models)/[\w./-]+\.sh)", i.rest):
        c.check(os.access(os.path.join(repo, m.group(1)), os.X_OK), "RUN line %d: %s is not an executable "
                "script of the repository" % (i.line, m.group(1)))
    for m in re.finditer(r"--target((?:\s+[\w-]+)+)", i.rest):
        targets.update(m.group(1).split())
c.eq("build targets", {"privid-gateway", "privid-shard", "privid-admin"}, targets)
c.check(any("deploy/setup.sh" in i.rest for i in build.all("RUN")), "the build stage runs deploy/setup.sh")

# ---- every COPY source exists
for s in stages:
    for i in s.ins:
        if i.cmd not in ("COPY", "ADD"):
            continue
        c.check(i.cmd == "COPY", "line %d: use COPY, not ADD" % i.line)
        flags, srcs, dest = copy_parts(i)
        c.check(len(srcs) > 0 and dest, "line %d: COPY needs sources and a destination" % i.line)
        frm = flags.get("from")
        for src in srcs:
            if frm is None:
                if src != ".":
                    c.check(os.path.exists(os.path.join(repo, src)), "line %d: COPY %s: not in the repository"
                            % (i.line, src))
                    c.check(not ignored(src, ign), "line %d: COPY %s is excluded by the .dockerignore"
                            % (i.line, src))
                continue
            c.eq("line %d: COPY --from stage" % i.line, "build", frm)
            rel = os.path.relpath(src, "/src")
            if rel.startswith("build/bin/"):
                name = rel[len("build/bin/"):]
                c.check(name in targets and os.access(os.path.join(bindir, name), os.X_OK),
                        "line %d: %s is not a binary the build stage builds" % (i.line, src))
            elif rel.startswith("build/models/"):
                sub = rel[len("build/models/"):]
                c.check(sub.startswith("face-api-%s/" % ver), "line %d: models path %s does not match the "
                        "manifest's version %s" % (i.line, src, ver))
                local = os.path.join(models, sub.split("/", 1)[1])
                c.check(os.path.isdir(local) and os.listdir(local), "line %d: %s: nothing at %s here"
                        % (i.line, src, local))
            elif rel == "build/console":
                # built in the build stage by the same script as deploy/setup.sh here
                c.check(any("gateway/console/build.sh /src/build" in r.rest for r in build.all("RUN")),
                        "line %d: the build stage runs gateway/console/build.sh /src/build" % i.line)
                c.check(os.path.isfile(os.path.join(bindir, "..", "console", "index.html")),
                        "line %d: no console built here (build/console/index.html)" % i.line)
            else:
                c.check(os.path.exists(os.path.join(repo, rel)), "line %d: %s is not in the repository"
                        % (i.line, src))

# ---- the final images
final = {"gateway": ["privid-gateway", "privid-admin"], "shard": ["privid-shard"]}
listen_var = {"gateway": "PRIVID_LISTEN", "shard": "PRIVID_SHARD_LISTEN"}
data_var = {"gateway": "PRIVID_DATA_DIR", "shard": "PRIVID_SHARD_DATA_DIR"}
image_env = {}
for name, binaries in final.items():
    st = byname[name]
    files = image_files(st)
    env = st.env()
    readable = set().union(*(envs[b] for b in binaries))
    image_env[name] = (readable, env, files)
    for b in binaries:
        c.check("/opt/privid/bin/" + b in files, "image %s: %s is not copied to /opt/privid/bin" % (name, b))
    for k in env:
        if k.startswith("PRIVID_"):
            c.check(k in readable, "image %s: ENV %s is read by none of %s" % (name, k, binaries))
    c.check("/opt/privid/bin" in env.get("PATH", "").split(":"), "image %s: PATH has /opt/privid/bin" % name)
    if name == "gateway":
        # privid-gateway's default --console-dir is <bin>/../console
        c.check("/opt/privid/console" in files and "PRIVID_CONSOLE_DIR" not in env,
                "image gateway: the web console is at /opt/privid/console (<bin>/../console)")
    # non-root, numeric (so Kubernetes' runAsNonRoot can verify it), and that user exists
    user = st.last("USER")
    c.check(user is not None and re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", user.rest),
            "image %s: USER must be a numeric non-root uid[:gid], got %r" % (name, user and user.rest))
    uid = user.rest.split(":")[0] if user else "?"
    c.check(any(re.search(r"useradd\b.*--uid %s\b" % uid, i.rest) for i in st.all("RUN")),
            "image %s: uid %s is created with useradd" % (name, uid))
    # entry point and command
    ep = st.last("ENTRYPOINT")
    c.check(ep is not None and ep.exec_form() and ep.exec_form()[0] in files,
            "image %s: ENTRYPOINT is a file copied into the image" % name)
    cmd = st.last("CMD")
    c.check(cmd is not None and cmd.exec_form() == [binaries[0]], "image %s: CMD runs %s" % (name, binaries[0]))
    # port: listen variable, EXPOSE, health check agree
    port = env.get(listen_var[name], ":").rsplit(":", 1)[1]
    c.check(port.isdigit(), "image %s: %s sets a port" % (name, listen_var[name]))
    c.check(env.get(listen_var[name], "").startswith("0.0.0.0:"), "image %s: listens on all interfaces" % name)
    expose = st.last("EXPOSE")
    c.eq("image %s: EXPOSE" % name, port, expose.rest if expose else None)
    hc = st.last("HEALTHCHECK")
    hcw = hc.words() if hc else []
    hcmd = hcw[hcw.index("CMD") + 1:] if "CMD" in hcw else []
    if hcmd and hcmd[0].startswith("["):  # exec form after the options
        import json
        hcmd = json.loads(hc.rest[hc.rest.index("CMD") + 3:].strip())
    c.check(len(hcmd) == 3 and hcmd[0] in files, "image %s: HEALTHCHECK runs a script copied into the image, "
            "got %r" % (name, hcmd))
    c.eq("image %s: HEALTHCHECK port" % name, port, hcmd[1] if len(hcmd) > 1 else None)
    c.eq("image %s: HEALTHCHECK path" % name, "/healthz", hcmd[2] if len(hcmd) > 2 else None)
    # the data directory is a volume owned by the user (read-only root file system)
    vol = st.last("VOLUME")
    c.eq("image %s: VOLUME is the data directory" % name, env.get(data_var[name]), vol.rest if vol else None)
    c.check(any(re.search(r"install -d -o %s -g \d+ -m 0700 %s\b" % (uid, re.escape(vol.rest if vol else "?")),
                          i.rest) for i in st.all("RUN")), "image %s: the volume directory belongs to uid %s"
            % (name, uid))
    # every shared library the binaries link comes from a package the image installs
    pkgs = apt_installed(st)
    for b in binaries:
        for lib, pkg in needed_packages(progs[b]).items():
            if re.match(r"lib(a|ub|l|t)san\.so", lib):
                continue  # a PV_SANITIZE build's runtime, not part of an image's build
            c.check(pkg is not None, "%s: no Debian package provides %s here" % (b, lib))
            if pkg is not None and pkg not in ("libc6", "libgcc-s1"):  # essential in every Debian image
                c.check(pkg in pkgs, "image %s: %s needs %s from %s, which the runtime stage does not install"
                        % (name, b, lib, pkg))
    models_dst = "/opt/privid/models/face-api-%s/model" % ver
    if name == "gateway":
        c.eq("gateway: PRIVID_MODELS holds model/", models_dst, env.get("PRIVID_MODELS", "") + "/model")
        c.check(models_dst in files, "gateway: the networks are copied to %s" % models_dst)
        c.check("/opt/privid/migrations" in files and env.get("PRIVID_MIGRATIONS") == "/opt/privid/migrations",
                "gateway: migrations copied where PRIVID_MIGRATIONS points")
    else:
        c.check(models_dst not in files, "shard: no networks in the shard image")

# ---- docker-compose.yml
compose = yaml.safe_load(open(os.path.join(ddir, "docker-compose.yml")))
svcs = compose["services"]
for n in ("gateway", "postgres", "grafana", "migrate"):
    c.check(n in svcs, "compose: service %s" % n)


def target_of(svc):
    b = svc.get("build")
    return b.get("target") if isinstance(b, dict) else None


shards = sorted(n for n, s in svcs.items() if target_of(s) == "shard")
c.eq("compose: three shard services", ["shard-0", "shard-1", "shard-2"], shards)
for n, s in svcs.items():
    b = s.get("build")
    if b is None:
        c.check(":" in s.get("image", "") and not s["image"].endswith(":latest"),
                "compose %s: image %r is pinned to a tag" % (n, s.get("image")))
        continue
    ctx = os.path.normpath(os.path.join(ddir, b["context"]))
    c.eq("compose %s: build context is the repository" % n, repo, ctx)
    c.check(os.path.samefile(os.path.join(ctx, b["dockerfile"]), dockerfile), "compose %s: dockerfile" % n)
    c.check(b.get("target") in final, "compose %s: target %r is a final stage" % (n, b.get("target")))
    readable, ienv, files = image_env[b["target"]]
    env = dict(ienv, **{k: str(v) for k, v in (s.get("environment") or {}).items()})
    for k, v in (s.get("environment") or {}).items():
        if not k.startswith("PRIVID_"):
            continue
        base = k[:-5] if k.endswith("_FILE") else k
        c.check(base in readable, "compose %s: %s is read by none of the image's programs" % (n, k))
        if k.endswith("_FILE"):
            m = re.fullmatch(r"/run/secrets/([\w-]+)", str(v))
            c.check(m is not None and m.group(1) in (s.get("secrets") or []),
                    "compose %s: %s=%s is a secret the service mounts" % (n, k, v))
    cmd = s.get("command")
    prog = cmd[0] if isinstance(cmd, list) else None
    if prog is not None:
        c.check("/opt/privid/bin/" + prog in files, "compose %s: command %s is in the image" % (n, prog))
    c.check(s.get("read_only") is True and "/tmp" in (s.get("tmpfs") or []), "compose %s: read-only root with a "
            "tmpfs /tmp" % n)
    c.check(s.get("user") in (None,) , "compose %s: keeps the image's non-root user" % n)
    # the data volume is mounted where the program keeps its data
    datadir = env.get(data_var[b["target"]])
    mounts = [v.split(":") for v in s.get("volumes") or []]
    c.check(any(m[1] == datadir and m[0] in (compose.get("volumes") or {}) for m in mounts),
            "compose %s: a named volume at the data directory %s" % (n, datadir))
    if n in shards or n == "gateway":
        port = env[listen_var[b["target"]]].rsplit(":", 1)[1]
        c.check(env[listen_var[b["target"]]].startswith("0.0.0.0:"), "compose %s: listens on all interfaces" % n)
        if n == "gateway":
            c.check("%s:%s" % (port, port) in s.get("ports", []), "compose gateway: publishes its port %s" % port)

# the gateway's shard list names every shard service at its port, in order; only the gateway reaches them
gw = svcs["gateway"]
urls = gw["environment"]["PRIVID_SHARDS"].split(",")
expect = ["http://%s:%s" % (n, svcs[n]["environment"]["PRIVID_SHARD_LISTEN"].rsplit(":", 1)[1]) for n in shards]
c.eq("compose: PRIVID_SHARDS", expect, urls)
shard_nets = set.intersection(*(set(svcs[n]["networks"]) for n in shards))
c.check(len(shard_nets) == 1 and compose["networks"][next(iter(shard_nets))].get("internal") is True,
        "compose: shards share one internal network")
for n, s in svcs.items():
    if n not in shards and n != "gateway":
        c.check(not shard_nets & set(s.get("networks") or []), "compose: %s must not reach the shards" % n)
c.check(shard_nets <= set(gw["networks"]), "compose: the gateway reaches the shards")
c.check(set(svcs["postgres"]["networks"]) <= set(gw["networks"]), "compose: the gateway reaches PostgreSQL")
c.check(compose["networks"][svcs["postgres"]["networks"][0]].get("internal") is True,
        "compose: PostgreSQL only on an internal network")
for n in shards + ["migrate", "grafana"]:
    c.check("ports" not in svcs[n] or n == "grafana", "compose: %s publishes no port" % n)

# depends_on: the services exist; service_healthy needs a health check
for n, s in svcs.items():
    for dep, cond in (s.get("depends_on") or {}).items():
        c.check(dep in svcs, "compose %s: depends on unknown %s" % (n, dep))
        if cond.get("condition") == "service_healthy":
            has = "healthcheck" in svcs[dep] or (target_of(svcs[dep]) in final and
                                                   byname[target_of(svcs[dep])].last("HEALTHCHECK"))
            c.check(bool(has), "compose %s: waits for %s to be healthy, which has no health check" % (n, dep))
for n in shards:
    c.eq("compose gateway waits for %s" % n, "service_healthy", gw["depends_on"][n]["condition"])
c.eq("compose gateway waits for the migrations", "service_completed_successfully",
     gw["depends_on"]["migrate"]["condition"])
c.eq("compose migrate: same data volume as the gateway (it mirrors the tenants)",
     [v for v in gw["volumes"]], svcs["migrate"]["volumes"])

# bind mounts exist; secrets come from files secrets.sh creates; .env variables too
for n, s in svcs.items():
    for v in s.get("volumes") or []:
        src = v.split(":")[0]
        if src.startswith(".") or src.startswith("/"):
            c.check(os.path.exists(os.path.join(ddir, src)), "compose %s: bind source %s missing" % (n, src))
    for sec in s.get("secrets") or []:
        c.check(sec in compose["secrets"], "compose %s: secret %s is declared" % (n, sec))
with tempfile.TemporaryDirectory() as tmp:
    r = subprocess.run([os.path.join(ddir, "secrets.sh"), tmp], capture_output=True, text=True)
    c.eq("secrets.sh exit", 0, r.returncode)
    for name, spec in compose["secrets"].items():
        p = os.path.join(tmp, spec["file"])
        c.check(os.path.isfile(p) and os.path.getsize(p) > 0, "secrets.sh creates %s" % spec["file"])
    c.eq("secrets.sh keeps the folder private", 0o700, os.stat(os.path.join(tmp, "secrets")).st_mode & 0o777)
    dotenv = dict(line.split("=", 1) for line in open(os.path.join(tmp, ".env")).read().split())
    raw = open(os.path.join(ddir, "docker-compose.yml")).read()
    for var in re.findall(r"\$\{(\w+)", raw):
        c.check(var in dotenv, "compose uses ${%s}, which secrets.sh does not write to .env" % var)
    # the DSN secret names the PostgreSQL service, database and user
    dsn = dict(w.split("=", 1) for w in open(os.path.join(tmp, "secrets/privid_pg_dsn")).read().split())
    pe = svcs["postgres"]["environment"]
    c.eq("DSN host is the PostgreSQL service", "postgres", dsn.get("host"))
    c.eq("DSN database", pe["POSTGRES_DB"], dsn.get("dbname"))
    c.eq("DSN user", pe["POSTGRES_USER"], dsn.get("user"))
    c.eq("DSN password is the server's", open(os.path.join(tmp, "secrets/pg_password")).read(),
         dsn.get("password"))

# Grafana: the repository's provisioning, every variable it expands is set, dashboards where the provider looks
gf = svcs["grafana"]
gmounts = {v.split(":")[1]: v.split(":")[0] for v in gf["volumes"]}
c.eq("grafana provisioning mount", "../grafana/provisioning", gmounts.get("/etc/grafana/provisioning"))
prov = os.path.join(repo, "deploy/grafana/provisioning")
for root, _, names in os.walk(prov):
    for f in names:
        text = open(os.path.join(root, f)).read()
        for var in re.findall(r"\$\{(\w+)\}", text):
            c.check(var in gf["environment"], "grafana: %s uses ${%s}, not set for the service" % (f, var))
dash = yaml.safe_load(open(os.path.join(prov, "dashboards/privid.yaml")))
path = dash["providers"][0]["options"]["path"]
c.eq("grafana dashboards mounted where the provider reads", "../grafana/dashboards", gmounts.get(path))

# ---- the scripts for real: *_FILE through the entry point, the health check against a real shard
entry = os.path.join(ddir, "entrypoint.sh")
health = os.path.join(ddir, "healthcheck.sh")
with tempfile.TemporaryDirectory() as tmp:
    secret = os.path.join(tmp, "listen")
    open(secret, "w").write("127.0.0.1:0")
    env = dict(os.environ, PRIVID_SHARD_LISTEN_FILE=secret, PRIVID_SHARD_DATA_DIR=os.path.join(tmp, "data"))
    env.pop("PRIVID_SHARD_LISTEN", None)
    log = os.path.join(tmp, "shard.log")
    proc = subprocess.Popen([entry, progs["privid-shard"], "--durable=false"], env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        m = wait_log(proc, log, r'msg="listening" addr=127\.0\.0\.1:(\d+)')
        c.check(m is not None, "privid-shard via the entry point with PRIVID_SHARD_LISTEN_FILE did not start: "
                + open(log).read())
        if m:
            wait_log(proc, log, r'msg="shard started"')
            r = subprocess.run([health, m.group(1), "/healthz"], capture_output=True, text=True)
            c.eq("healthcheck on a serving shard", 0, r.returncode)
            r = subprocess.run([health, m.group(1), "/no-such-path"], capture_output=True, text=True)
            c.eq("healthcheck on a 404", 1, r.returncode)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if m:
        r = subprocess.run([health, m.group(1)], capture_output=True, text=True)
        c.eq("healthcheck once the shard stopped", 1, r.returncode)
    r = subprocess.run([entry, "true"], env=dict(os.environ, PRIVID_PG_FILE=os.path.join(tmp, "missing")),
                       capture_output=True, text=True)
    c.check(r.returncode == 2 and "cannot read" in r.stderr, "entry point: an unreadable _FILE is an error")
    r = subprocess.run([entry, "true"], env=dict(os.environ, PRIVID_PG_FILE=secret, PRIVID_PG="x"),
                       capture_output=True, text=True)
    c.check(r.returncode == 2 and "both" in r.stderr, "entry point: a variable and its _FILE together are an error")
    r = subprocess.run([entry, "sh", "-c", 'printf %s "$PRIVID_PG"; env | grep -c PRIVID_PG_FILE'],
                       env=dict(os.environ, PRIVID_PG_FILE=secret), capture_output=True, text=True)
    c.eq("entry point: PRIVID_PG from the file, the _FILE variable gone", "127.0.0.1:00\n", r.stdout)

c.finish()
