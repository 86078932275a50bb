"""
Packaging: the Dockerfile installs what the Makefile installs, `cmake
--install` lays out a complete tree, and the systemd unit is sandboxed.

No Docker engine runs here, so the image is not built; instead its package
lists are checked against packaging/packages-run.txt (the list `make`
installs) and against what the -dev packages depend on in dpkg.
"""

import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import wait_until
from harness import BUILD_DIR, SOURCE_DIR, sanitized

DOCKERFILE = os.path.join(SOURCE_DIR, "Dockerfile")
RUN_LIST = os.path.join(SOURCE_DIR, "packaging", "packages-run.txt")
UNIT = os.path.join(SOURCE_DIR, "packaging", "orchestrator-host.service")

# The shared library package behind each -dev package on Debian 12.
RUNTIME_OF = {
    "libevent-dev": "libevent-2.1-7",
    "libmosquitto-dev": "libmosquitto1",
    "libmicrohttpd-dev": "libmicrohttpd12",
    "libjansson-dev": "libjansson4",
    "libsqlite3-dev": "libsqlite3-0",
    "libpq-dev": "libpq5",
    "zlib1g-dev": "zlib1g",
    "libavahi-client-dev": "libavahi-client3",
    "libgnutls28-dev": "libgnutls30",
    "libssl-dev": "libssl3",
}


def read(path):
    with open(path) as f:
        return f.read()


def package_list(path):
    return [l.strip() for l in read(path).splitlines() if l.strip() and not l.lstrip().startswith("#")]


def stages():
    """{stage name or index: text} of the Dockerfile."""
    parts = re.split(r"^FROM\s+", read(DOCKERFILE), flags=re.M)[1:]
    out = {}
    for i, part in enumerate(parts):
        first = part.splitlines()[0]
        m = re.search(r"\bAS\s+(\S+)", first, re.I)
        out[m.group(1) if m else i] = part
    return out


def apt_installs(text):
    """Package names given to `apt-get install` in RUN lines (continuations joined)."""
    joined = re.sub(r"\\\n", " ", text)
    names = []
    for m in re.finditer(r"apt-get install([^&\n]*)", joined):
        names += [w for w in m.group(1).split() if not w.startswith("-")]
    return names


def test_dockerfile_is_multistage_bookworm_non_root():
    text = read(DOCKERFILE)
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) >= 2 and all(f == "debian:bookworm-slim" for f in froms), froms
    final = list(stages().values())[-1]
    assert re.search(r"^USER\s+(?!root\b|0\b)\S+", final, re.M), "the image must not run as root"
    assert re.search(r"^VOLUME\s+/var/lib/orchestrator-host", final, re.M)
    assert "OH_HTTP_BIND=0.0.0.0" in final
    assert "/run/secrets/" in read(os.path.join(SOURCE_DIR, "packaging", "docker.json"))


def test_dockerfile_build_stage_uses_the_makefile_package_list():
    build = stages()["build"]
    # The build stage installs from the very file install-deps.sh reads ...
    assert re.search(r"^COPY\s+packaging/packages-run\.txt\s", build, re.M)
    assert re.search(r"packages-run\.txt\s*\|\s*xargs apt-get install", build)
    # ... and names no package of its own beside it.
    assert apt_installs(build) == [], apt_installs(build)
    assert "packaging/packages-run.txt" in read(os.path.join(SOURCE_DIR, "scripts", "install-deps.sh"))
    # Same CMake steps as `make`.
    assert "cmake -S . -B build" in build and "cmake --build build" in build


def test_dockerfile_runtime_libraries_match_dev_packages():
    dev = [p for p in package_list(RUN_LIST) if p.endswith("-dev")]
    runtime = apt_installs(list(stages().values())[-1])
    assert not [p for p in runtime if p.endswith("-dev")], "no -dev packages at run time"
    for pkg in dev:
        assert pkg in RUNTIME_OF, "%s: add its runtime library to RUNTIME_OF and the Dockerfile" % pkg
        assert RUNTIME_OF[pkg] in runtime, "%s needs %s in the runtime stage" % (pkg, RUNTIME_OF[pkg])
        # Where dpkg knows the -dev package, it must depend on that library.
        cp = subprocess.run(["dpkg-query", "-W", "-f=${Depends}", pkg], capture_output=True,
                            text=True) if shutil.which("dpkg-query") else None
        if cp and cp.returncode == 0:
            assert RUNTIME_OF[pkg] in cp.stdout, "%s does not depend on %s: %s" % (
                pkg, RUNTIME_OF[pkg], cp.stdout)
    for lib in ("tzdata", "ca-certificates"):
        assert lib in runtime
    extra = set(runtime) - set(RUNTIME_OF.values()) - {"tzdata", "ca-certificates"}
    assert not extra, "runtime packages without a -dev counterpart: %s" % sorted(extra)


def test_makefile_has_docker_targets():
    text = read(os.path.join(SOURCE_DIR, "Makefile"))
    assert re.search(r"^docker-build:", text, re.M)
    assert re.search(r"^docker-run:", text, re.M)
    run = text[text.index("docker-run:"):]
    for part in ("-p 8080:8080", "OH_MQTT_HOST", "/var/lib/orchestrator-host", "tokens"):
        assert part in run, part


def test_unit_file_hardening():
    text = read(UNIT)
    for line in ("User=orchestrator-host", "StateDirectory=orchestrator-host",
                 "ProtectSystem=strict", "Restart=on-failure", "NoNewPrivileges=yes"):
        assert re.search(r"^%s$" % re.escape(line), text, re.M), line
    assert "OH_MQTT_PASSWORD=" not in text


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if not os.path.exists(os.path.join(BUILD_DIR, "cmake_install.cmake")):
        pytest.skip("no configured build in %s" % BUILD_DIR)
    prefix = str(tmp_path_factory.mktemp("prefix"))
    cp = subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", prefix],
                        capture_output=True, text=True)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    return prefix


def _find(prefix, *parts):
    for root, dirs, files in os.walk(prefix):
        for name in files + dirs:
            path = os.path.join(root, name)
            if path.endswith(os.path.join(*parts)):
                return path
    return None


def test_install_tree(installed):
    p = installed
    assert os.access(os.path.join(p, "bin", "orchestrator-host"), os.X_OK)
    for h in ("plugin.h", "host.h", "defs.h"):
        assert os.path.exists(os.path.join(p, "include", "oh", h)), h
    assert _find(p, "pkgconfig", "orchestrator-host.pc")
    assert os.path.isdir(os.path.join(p, "lib", "orchestrator-host", "plugins"))
    unit = os.path.join(p, "lib", "systemd", "system", "orchestrator-host.service")
    assert os.path.exists(unit)
    text = read(unit)
    assert not re.search(r"@[A-Za-z0-9_]+@", text), "unconfigured @VARS@ left in the unit"
    m = re.search(r"^ExecStart=(\S+) --config (\S+)$", text, re.M)
    assert m and m.group(1).endswith("/bin/orchestrator-host") and m.group(2).endswith(
        "/orchestrator-host/orchestrator-host.json"), text
    conf = _find(p, "orchestrator-host", "orchestrator-host.json")
    assert conf, "default config not installed"
    cp = subprocess.run([os.path.join(p, "bin", "orchestrator-host"), "--config", conf,
                         "--check-config"], capture_output=True, text=True, timeout=10)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "/var/lib/orchestrator-host" in read(conf)


def test_unit_verifies(installed, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    unit = os.path.join(installed, "lib", "systemd", "system", "orchestrator-host.service")
    # Point ExecStart at the installed binary so verify can find it.
    text = re.sub(r"^ExecStart=\S+", "ExecStart=%s" % os.path.join(installed, "bin",
                                                                   "orchestrator-host"),
                  read(unit), flags=re.M)
    copy = tmp_path / "orchestrator-host.service"
    copy.write_text(text)
    cp = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)],
                        capture_output=True, text=True, timeout=60)
    out = cp.stdout + cp.stderr
    if cp.returncode != 0 and re.search(r"System has not been booted with systemd|"
                                        r"Failed to (initialize|connect)|No such file or directory.*bus",
                                        out):
        pytest.skip("systemd-analyze cannot run here: %s" % out.strip()[:200])
    problems = [l for l in out.splitlines()
                if "orchestrator-host.service" in l and "mosquitto.service" not in l
                and "avahi-daemon.service" not in l and "Documentation" not in l]
    assert not problems, out


# `systemd-analyze security` rates the unit from 0 (locked down) to 10; the
# unit stays at or below this.  1.1 when written: what is left is the
# network itself (the broker may be anywhere), AF_UNIX for avahi and
# netlink for getifaddrs, and the rtc device ProtectClock= allows.
MAX_EXPOSURE = 2.0


def test_installed_unit_security_score(installed):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed (Debian package systemd, in "
                    "packaging/packages-test.txt): the unit's score is not checked")
    unit = _find(installed, "systemd", "system", "orchestrator-host.service")
    assert unit, "cmake --install laid out no systemd unit"
    text = read(unit)
    # --offline: the unit file as it is, without a running systemd.
    cp = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", unit],
                        capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", cp.stdout)
    assert m, cp.stdout + cp.stderr
    score = float(m.group(1))
    assert score <= MAX_EXPOSURE, "exposure %.1f > %.1f:\n%s" % (
        score, MAX_EXPOSURE, "\n".join(l for l in cp.stdout.splitlines() if "\u2717" in l))
    for line in ("SystemCallFilter=@system-service", "SystemCallArchitectures=native",
                 "MemoryDenyWriteExecute=yes", "ProtectProc=invisible", "ProcSubset=pid",
                 "PrivateUsers=yes"):
        assert re.search(r"^%s$" % re.escape(line), text, re.M), line


def _unit_list(text, key):
    """(allowed, denied) words of every `key=` line: `~` lines deny."""
    allow, deny = [], []
    for value in re.findall(r"^%s=(.*)$" % re.escape(key), text, re.M):
        (deny if value.startswith("~") else allow).extend(value.lstrip("~").split())
    return allow, deny


def _syscall_sets(analyze):
    """{"@group": set of system call names}, nested groups expanded, as this
    systemd knows them."""
    out = subprocess.run([analyze, "syscall-filter", "--no-pager"], capture_output=True,
                         text=True, check=True).stdout
    raw, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = raw.setdefault(line.split()[0], [])
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.append(line.split()[0])

    def expand(name, seen=()):
        if not name.startswith("@"):
            return {name}
        assert name in raw, "systemd knows no group %s" % name
        return set().union(*(expand(n, seen + (name,)) for n in raw[name] if n not in seen))
    return expand


def test_host_stays_within_the_units_sandbox(make_host, mqtt, tmp_path):
    """No systemd runs here to start the unit, so the host is traced
    instead (strace -f, its helpers included) through a start, broker
    traffic, REST calls, a discovery helper run and a stop, and every
    system call, socket family and executable mapping is held against the
    unit's SystemCallFilter=, RestrictAddressFamilies= and
    MemoryDenyWriteExecute=: what the sandbox would refuse, the host must
    not need."""
    analyze, strace = shutil.which("systemd-analyze"), shutil.which("strace")
    if not analyze or not strace:
        pytest.skip("needs systemd-analyze and strace (packaging/packages-test.txt)")
    if sanitized(os.path.join(BUILD_DIR, "orchestrator-host")):
        pytest.skip("a sanitizer build makes system calls of its own (personality, "
                    "sigaltstack): the release tree checks the host")
    unit = read(UNIT)
    expand = _syscall_sets(analyze)
    allow, deny = _unit_list(unit, "SystemCallFilter")
    allowed = set().union(*map(expand, allow)) - set().union(*map(expand, deny))
    families = set(_unit_list(unit, "RestrictAddressFamilies")[0])
    assert re.search(r"^MemoryDenyWriteExecute=yes$", unit, re.M)

    trace = tmp_path / "strace.out"
    host = make_host({"plugins": [{"module": "ndi", "path": "builtin:ndi", "settings": {
        "mdns": False, "discovery_helper": ["/bin/echo", '["CAM (1)"]']}}]}, start=False)
    host.binary = strace
    host.args = []
    real_argv = host.argv

    def traced(args=None):
        return ["-f", "-qq", "-o", str(trace), os.path.join(BUILD_DIR, "orchestrator-host")] + \
            real_argv(args)[1:]
    host.argv = lambda args=None: [strace] + traced(args)
    host.start(timeout=30)
    host.wait_connected(timeout=30)
    mqtt.publish("/lab/device/rpi-9/meta", {"modules": ["ndi"]}, retain=True)
    mqtt.publish("/lab/device/rpi-9/status", {"online": True}, retain=True)
    wait_until(lambda: host.get("/api/devices/rpi-9")[0] == 200, 10, msg="device registered")
    wait_until(lambda: "CAM (1)" in json.dumps(host.get("/api/ndi/sources")[1]), 10,
               msg="the helper's source")
    assert host.post("/api/ndi/reserve", {"device_id": "rpi-9", "actor": "a", "lease_s": 60})[0] == 200
    assert host.request("GET", "/metrics")[0] == 200
    # SIGTERM to the host itself (strace would only detach), then strace
    # ends with it.
    with open("/proc/%d/task/%d/children" % (host.proc.pid, host.proc.pid)) as f:
        os.kill(int(f.read().split()[0]), signal.SIGTERM)
    assert host.wait(timeout=20) == 0, host.log()[-2000:]

    calls, sockets, wx, proc = set(), set(), [], set()
    for line in read(str(trace)).splitlines():
        m = re.match(r"^\d+\s+([a-z0-9_]+)\((.*)", line)
        if not m:
            continue
        calls.add(m.group(1))
        p = re.search(r'"(/proc/[^"]*)"', m.group(2))
        if p and not re.match(r"/proc/(self|thread-self)/", p.group(1)):
            proc.add(p.group(1))
        if m.group(1) == "socket":
            sockets.add(m.group(2).split(",")[0])
        if (m.group(1) in ("mprotect", "pkey_mprotect") and "PROT_EXEC" in m.group(2)) or (
                m.group(1) == "mmap" and "PROT_WRITE" in m.group(2) and "PROT_EXEC" in m.group(2)):
            wx.append(line)
    # The trace saw the work: the helper's spawn and exec, the broker and
    # HTTP sockets, the store's syncs.
    assert {"execve", "accept4", "connect", "fdatasync"} <= calls, sorted(calls)
    assert calls & {"clone", "clone3", "vfork"}, sorted(calls)
    assert {"AF_INET"} <= sockets, sockets
    # SQLite gives a new journal its database's owner only when running as
    # root (and ignores a failure): under the unit's own user it never calls.
    if os.geteuid() == 0:
        calls.discard("fchown")
    assert not calls - allowed, "refused by SystemCallFilter=: %s" % sorted(calls - allowed)
    assert sockets <= families, "refused by RestrictAddressFamilies=: %s" % sorted(sockets - families)
    assert not wx, "refused by MemoryDenyWriteExecute=: %s" % wx[:5]
    # ProcSubset=pid and ProtectProc=invisible leave the process its own.
    assert not proc, "hidden by ProcSubset=pid: %s" % sorted(proc)
