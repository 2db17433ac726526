"""Helpers shared by the deployment tests (test_docker.py, test_k8s.py).

A Dockerfile parser (instructions, stages, COPY sources), the PRIVID_*
variables a program really reads (taken from its own --help, which prints
its option table), the Debian packages providing a binary's shared
libraries, a small HTTP wait for processes started by the tests, and a
check collector that reports every failure with what was expected.
"""
import json
import os
import re
import shlex
import subprocess
import sys


class Checks:
    """Collects results; every failure says what was expected and found."""

    def __init__(self):
        self.ok = 0
        self.failed = []

    def check(self, cond, what):
        if cond:
            self.ok += 1
        else:
            self.failed.append(what)
            print("FAIL: " + what, file=sys.stderr)
        return cond

    def eq(self, what, expected, actual):
        return self.check(expected == actual, "%s: expected %r, got %r" % (what, expected, actual))

    def finish(self):
        print("%d checks passed, %d failed" % (self.ok, len(self.failed)))
        sys.exit(1 if self.failed or self.ok == 0 else 0)


# ---- Dockerfile ----

class Instruction:
    def __init__(self, line, cmd, rest):
        self.line = line
        self.cmd = cmd  # upper case: FROM, RUN, COPY, ...
        self.rest = rest  # the arguments, continuation lines joined

    def exec_form(self):
        """The JSON array form's items, or None for the shell form."""
        s = self.rest.strip()
        if s.startswith("["):
            try:
                v = json.loads(s)
                return v if isinstance(v, list) else None
            except ValueError:
                return None
        return None

    def words(self):
        v = self.exec_form()
        return v if v is not None else shlex.split(self.rest)


class Stage:
    def __init__(self, base, name, line):
        self.base = base
        self.name = name
        self.line = line
        self.parent = None  # the Stage this one is FROM, if any
        self.ins = []

    def chain(self):
        """This stage and its ancestors, oldest first."""
        out, s = [], self
        while s is not None:
            out.insert(0, s)
            s = s.parent
        return out

    def all(self, cmd):
        return [i for s in self.chain() for i in s.ins if i.cmd == cmd]

    def last(self, cmd):
        found = self.all(cmd)
        return found[-1] if found else None

    def env(self):
        """ENV of the stage chain (KEY=VALUE pairs, later ones win)."""
        env = {}
        for i in self.all("ENV"):
            for w in shlex.split(i.rest):
                if "=" in w:
                    k, v = w.split("=", 1)
                    env[k] = v
        return env


def parse_dockerfile(path):
    """Returns (stages, errors). Handles comments, continuation lines, AS."""
    stages, errors = [], []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        start = i + 1
        text = lines[i]
        i += 1
        if text.strip().startswith("#") or not text.strip():
            continue
        while text.rstrip().endswith("\\") and i < len(lines):
            text = text.rstrip()[:-1] + " "
            # comment lines inside a continued instruction are dropped
            while i < len(lines) and lines[i].strip().startswith("#"):
                i += 1
            if i < len(lines):
                text += lines[i].strip()
                i += 1
        m = re.match(r"\s*([A-Za-z]+)\s+(.*)$", text)
        if not m:
            errors.append("%s:%d: cannot parse [%s]" % (path, start, text))
            continue
        ins = Instruction(start, m.group(1).upper(), m.group(2).strip())
        if ins.cmd == "FROM":
            w = ins.rest.split()
            name = w[2] if len(w) == 3 and w[1].lower() == "as" else None
            st = Stage(w[0], name, start)
            st.parent = next((s for s in stages if s.name == w[0]), None)
            stages.append(st)
            continue
        if not stages:
            errors.append("%s:%d: %s before FROM" % (path, start, ins.cmd))
            continue
        stages[-1].ins.append(ins)
    return stages, errors


def copy_parts(ins):
    """(flags dict, sources, dest) of a COPY/ADD instruction."""
    words = ins.words()
    flags = {}
    while words and words[0].startswith("--"):
        k, _, v = words.pop(0)[2:].partition("=")
        flags[k] = v
    return flags, words[:-1], words[-1] if words else None


def image_files(stage):
    """Destination paths that COPY puts into the stage chain, as a dict
    dest path -> (flags, source). A directory destination (ending in /)
    gets the sources' base names."""
    out = {}
    for i in stage.all("COPY"):
        flags, srcs, dest = copy_parts(i)
        for s in srcs:
            d = dest.rstrip("/") + "/" + os.path.basename(s.rstrip("/")) if dest.endswith("/") else dest
            out[d] = (flags, s)
    return out


def dockerignore_patterns(path):
    if not os.path.exists(path):
        return []
    pats = []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith("#"):
            pats.append(line.rstrip("/"))
    return pats


def ignored(rel, patterns):
    import fnmatch
    parts = rel.strip("/").split("/")
    for p in patterns:
        for n in range(1, len(parts) + 1):
            if fnmatch.fnmatch("/".join(parts[:n]), p):
                return True
    return False


# ---- programs ----

def program_envs(binary, subcommands=((),)):
    """PRIVID_* variables the program reads, from its --help (the option
    table for the servers, the per-command help for privid-admin)."""
    names = set()
    for sub in subcommands:
        r = subprocess.run([binary] + list(sub) + ["--help"], capture_output=True, text=True, timeout=60)
        names.update(re.findall(r"\bPRIVID_[A-Z0-9_]+\b", r.stdout + r.stderr))
    return names


ADMIN_HELP = ((), ("migrate",), ("faces",), ("analytics", "backfill"), ("tenant", "create"))


def needed_packages(binary):
    """Debian packages holding the shared libraries binary's ELF NEEDED
    entries name (resolved through ldconfig and symlinks, as installed here)."""
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"Shared library: \[([^\]]+)\]", out)
    cache = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    pkgs = {}
    for lib in needed:
        m = re.search(r"^\s*" + re.escape(lib) + r" \(libc6,x86-64[^)]*\) => (\S+)$", cache, re.M)
        if m is None:
            m = re.search(r"^\s*" + re.escape(lib) + r" \([^)]*\) => (\S+)$", cache, re.M)
        if m is None:
            pkgs[lib] = None
            continue
        pkg = None
        for p in (m.group(1), os.path.realpath(m.group(1))):
            r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
            if r.returncode == 0:
                pkg = r.stdout.split(":")[0].split(",")[0].strip()
                break
        pkgs[lib] = pkg
    return pkgs


def apt_installed(stage):
    """Package names given to `apt-get install` in RUN lines of the chain."""
    pkgs = set()
    for i in stage.all("RUN"):
        for m in re.finditer(r"apt-get install((?:\s+(?:-\S+|[a-z0-9][a-z0-9.+-]*))+)", i.rest):
            pkgs.update(w for w in m.group(1).split() if not w.startswith("-"))
    return pkgs


def wait_log(proc, path, pattern, seconds=30):
    """Waits for a regex in a log file a started process writes; returns the
    match or None (the process died or time ran out)."""
    import time
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            m = re.search(pattern, open(path, encoding="utf-8", errors="replace").read())
        except OSError:
            m = None
        if m:
            return m
        if proc.poll() is not None:
            return None
        time.sleep(0.05)
    return None
