"""
NDI source discovery (src/plugins/ndi/ndi_discovery.c), through the
discovery_probe test plugin (GET /api/probe/sources, /api/probe/state) so it
does not depend on the NDI plugin's REST layer, plus one check of
GET /api/ndi/sources when the NDI plugin serves it.

Static and helper sources run anywhere.  The mDNS tests are real: a system
D-Bus daemon, avahi-daemon inside a network namespace of its own that has
only loopback (multicast on, allow-interfaces=lo), and avahi-publish-service
announcing `_ndi._tcp` services, so no mDNS packet leaves the machine.  They
need root (network namespaces, the system bus, avahi's pid file) and skip
with the reason otherwise.  Only one avahi-daemon can own org.freedesktop.Avahi
on the bus, so they hold an fcntl lock while they run (ctest -j).
"""

import fcntl
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time

import pytest

import harness
from harness import wait_until

PROBE = os.path.join(harness.BUILD_DIR, "test-plugins", "discovery_probe.so")
NDI_TYPE = "_ndi._tcp"
CAMERA = "STUDIO-PC (Camera 1)"


def probe_config(settings=None, module="probe"):
    return {"plugins": [{"module": module, "path": PROBE, "settings": settings or {}}]}


@pytest.fixture
def probe_host(make_host):
    if not os.path.exists(PROBE):
        pytest.skip("%s is not built" % PROBE)

    def factory(settings=None, start=True):
        return make_host(probe_config(settings), start=start)

    return factory


def sources(host, detail=False):
    status, body = host.get("/api/probe/sources" + ("?detail=1" if detail else ""))
    assert status == 200, body
    return body["sources"]


def state(host, name=None):
    path = "/api/probe/state"
    if name is not None:
        path += "?name=" + urllib_quote(name)
    status, body = host.get(path)
    assert status == 200, body
    return body


def urllib_quote(text):
    import urllib.parse
    return urllib.parse.quote(text)


def by_name(detail_list):
    return {s["name"]: s for s in detail_list}


def write_script(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def count(text, needle):
    return text.count(needle)


# --------------------------------------------------------------------------
# static and helper sources


def test_static_and_helper_sources_are_merged(probe_host, tmp_path):
    helper = write_script(tmp_path / "helper.sh", """cat <<'EOF'
[{"name": "STUDIO-PC (Camera 1)", "host": "studio-pc.local", "address": "10.0.0.7", "port": 5961},
 "LAB (Cam 2)"]
EOF
""")
    h = probe_host({"sources": ["LAB (Cam 2)", "OFFICE (Slides)"], "discovery_helper": helper,
                    "mdns": False})
    wait_until(lambda: len(sources(h)) == 3, 10, msg="helper sources to be listed")
    assert sources(h) == ["LAB (Cam 2)", "OFFICE (Slides)", "STUDIO-PC (Camera 1)"]
    detail = by_name(sources(h, detail=True))
    assert detail["STUDIO-PC (Camera 1)"] == {
        "name": "STUDIO-PC (Camera 1)", "host": "studio-pc.local", "address": "10.0.0.7",
        "port": 5961, "origin": ["helper"]}
    assert detail["LAB (Cam 2)"]["origin"] == ["helper", "static"]
    assert detail["OFFICE (Slides)"] == {"name": "OFFICE (Slides)", "host": None, "address": None,
                                         "port": None, "origin": ["static"]}
    st = state(h, "OFFICE (Slides)")
    assert st == {"mdns": "disabled", "any": True, "has": True}
    assert state(h, "NOPE (x)")["has"] is False


def test_no_sources_at_all(probe_host):
    h = probe_host({"mdns": False})
    assert sources(h) == []
    assert sources(h, detail=True) == []
    assert state(h, "anything") == {"mdns": "disabled", "any": False, "has": False}


def test_helper_command_line_is_split_without_a_shell(probe_host, tmp_path):
    d = tmp_path / "dir with space"
    d.mkdir()
    # Prints each argument as a source name: proves quoting and that no
    # shell expanded $HOME or the glob.
    helper = write_script(d / "helper.sh", """
printf '['
sep=''
for a in "$@"; do printf '%s"%s"' "$sep" "$a"; sep=','; done
printf ']'
""")
    line = "/bin/sh '%s' \"two words\" plain\\ escaped '$HOME' *" % helper
    h = probe_host({"discovery_helper": line, "mdns": False})
    wait_until(lambda: sources(h), 10, msg="helper output")
    assert sources(h) == ["$HOME", "*", "plain escaped", "two words"]


def test_helper_as_argv_array_and_object_output(probe_host, tmp_path):
    helper = write_script(tmp_path / "helper.sh", """
echo '{"sources": [{"name": "'"$1"'", "port": 5960}]}'
""")
    h = probe_host({"discovery_helper": ["/bin/sh", helper, "A (B)"], "mdns": False})
    wait_until(lambda: sources(h), 10, msg="helper output")
    assert sources(h, detail=True) == [{"name": "A (B)", "host": None, "address": None,
                                        "port": 5960, "origin": ["helper"]}]


def test_helper_that_hangs_is_killed_and_the_list_stays_served(probe_host, tmp_path):
    pidfile = tmp_path / "helper.pid"
    helper = write_script(tmp_path / "hang.sh", """
echo $$ > '%s'
# A grandchild in the same process group keeps stdout open too.
sleep 60 &
exec sleep 60
""" % pidfile)
    h = probe_host({"sources": ["STATIC (One)"], "discovery_helper": helper,
                    "discovery_helper_timeout_s": 2, "mdns": False})
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 5, msg="helper to start")
    pid = int(pidfile.read_text())
    # The loop is not blocked while the helper hangs.
    t0 = time.monotonic()
    assert sources(h) == ["STATIC (One)"]
    assert time.monotonic() - t0 < 1.0
    assert os.path.exists("/proc/%d" % pid)
    wait_until(lambda: "timed out after 2.0 s" in h.log(), 8, msg="the timeout to be logged")
    # Killed and reaped (no zombie left behind).
    wait_until(lambda: not os.path.exists("/proc/%d" % pid), 5, msg="helper %d to be gone" % pid)
    kids = _run(["ps", "--ppid", str(h.proc.pid), "-o", "pid=,stat=,args="], check=False).stdout
    assert kids.strip() == "", kids
    assert sources(h) == ["STATIC (One)"]


def test_shutdown_while_the_helper_runs_kills_it(probe_host, tmp_path):
    pidfile = tmp_path / "helper.pid"
    helper = write_script(tmp_path / "hang.sh", "echo $$ > '%s'\nexec sleep 60\n" % pidfile)
    h = probe_host({"discovery_helper": helper, "discovery_helper_timeout_s": 120, "mdns": False})
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 5, msg="helper to start")
    pid = int(pidfile.read_text())
    t0 = time.monotonic()
    assert h.stop() == 0, harness.tail(h.log())
    assert time.monotonic() - t0 < 5
    assert not os.path.exists("/proc/%d" % pid)


def test_helper_garbage_is_logged_once_and_the_previous_list_kept(probe_host, tmp_path):
    data = tmp_path / "out.json"
    data.write_text(json.dumps(["GOOD (One)", "GOOD (Two)"]))
    runs = tmp_path / "runs"      # a line per run: what the test waits on
    helper = write_script(tmp_path / "helper.sh", "echo run >> '%s'\ncat '%s'\n" % (runs, data))
    h = probe_host({"discovery_helper": helper, "discovery_interval_s": 0.2, "mdns": False})
    wait_until(lambda: sources(h) == ["GOOD (One)", "GOOD (Two)"], 10, msg="first helper list")

    data.write_text("this is not json {")
    wait_until(lambda: "output is not JSON" in h.log(), 5, msg="garbage to be logged")
    # Six more failing runs: the sixth starts once the fifth was judged.
    seen = len(runs.read_text().splitlines())
    wait_until(lambda: len(runs.read_text().splitlines()) >= seen + 6, 10,
               msg="six more helper runs")
    assert sources(h) == ["GOOD (One)", "GOOD (Two)"]
    assert count(h.log(), "output is not JSON") == 1, harness.tail(h.log())
    assert "keeping the previous 2 sources" in h.log()

    # Other kinds of failure are reported too, once each.
    write_script(tmp_path / "helper.sh", "echo '[1, 2]'\n")
    wait_until(lambda: "item 0: expected" in h.log(), 5, msg="bad items to be logged")
    write_script(tmp_path / "helper.sh", "echo '[]'; exit 3\n")
    wait_until(lambda: "exited with status 3" in h.log(), 5, msg="the exit status to be logged")
    assert sources(h) == ["GOOD (One)", "GOOD (Two)"]

    data.write_text(json.dumps(["NEW (One)"]))
    write_script(tmp_path / "helper.sh", "cat '%s'\n" % data)
    wait_until(lambda: sources(h) == ["NEW (One)"], 5, msg="the helper's new list")
    assert "works again" in h.log()


def test_helper_that_cannot_start(probe_host, tmp_path):
    h = probe_host({"sources": ["S (1)"], "discovery_helper": str(tmp_path / "missing-helper"),
                    "mdns": False})
    wait_until(lambda: "cannot be started" in h.log(), 5, msg="the failure to be logged")
    assert sources(h) == ["S (1)"]


# The discovery's keys are checked by the one validator, in the same table
# as the plugin's own (ndi_discovery_settings): one "{path}: {why}" each.
@pytest.mark.parametrize("settings, needle", [
    ({"sources": "CAM"}, "settings.sources: expected an array of strings"),
    ({"sources": ["ok", 3]}, "settings.sources[1]: expected a string"),
    ({"sources": ["ok", ""]},
     "settings.sources: item 1 is empty (expected non-empty strings)"),
    ({"discovery_helper": 5},
     "settings.discovery_helper: expected a command line, an array of strings, or null"),
    ({"discovery_helper": "run 'unterminated"}, "unterminated single quote"),
    ({"discovery_helper": "   "}, "command line is empty"),
    ({"discovery_helper": []}, "settings.discovery_helper: expected a command line, a non-empty"),
    ({"discovery_helper": ["", "x"]}, "settings.discovery_helper: item 0: expected a non-empty"),
    ({"discovery_helper": ["run", 1]}, "settings.discovery_helper: item 1: expected a string"),
    ({"discovery_interval_s": 0}, "settings.discovery_interval_s: 0 is out of range: "
                                  "expected above 0 and at most 86400"),
    ({"discovery_helper_timeout_s": "5"},
     "settings.discovery_helper_timeout_s: expected a number"),
    ({"mdns": "yes"}, "settings.mdns: expected true or false"),
    ({"bogus": 1}, "settings.bogus: unknown key"),
])
def test_bad_settings_are_refused_naming_the_key(probe_host, settings, needle):
    h = probe_host(settings)
    status, body = h.get("/healthz")
    plugin = [p for p in body["plugins"] if p["module"] == "probe"][0]
    assert plugin["loaded"] is False
    assert needle in plugin["error"], plugin
    status, _ = h.get("/api/probe/sources")
    assert status == 404


def test_ndi_plugin_route(make_host, tmp_path):
    helper = write_script(tmp_path / "helper.sh", "echo '[\"HELPER (Cam)\"]'\n")
    h = make_host({"plugins": [{"module": "ndi", "path": harness.NDI_PLUGIN,
                                "settings": {"sources": ["NDI-Source-1"],
                                             "discovery_helper": helper}}]})
    status, body = h.get("/api/ndi/sources")
    assert status == 200, body
    wait_until(lambda: "HELPER (Cam)" in h.get("/api/ndi/sources")[1]["sources"], 10,
               msg="helper source via /api/ndi/sources")
    # mDNS is on by default: an mDNS test running alongside may add more.
    names = h.get("/api/ndi/sources")[1]["sources"]
    assert "NDI-Source-1" in names and names == sorted(names), names
    status, body = h.get("/api/ndi/sources?detail=1")
    assert status == 200, body
    assert by_name(body["sources"])["NDI-Source-1"]["origin"] == ["static"]


# --------------------------------------------------------------------------
# mDNS through a real avahi-daemon, confined to a loopback-only netns

LOCK_PATH = "/tmp/orchestrator-host-avahi-test.lock"
NETNS_PREFIX = "oh-avahi-"
SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"
AVAHI_PIDFILE = "/run/avahi-daemon/pid"

AVAHI_CONF = """\
[server]
host-name=oh-ndi-test
use-ipv4=yes
use-ipv6=no
allow-interfaces=lo
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000

[wide-area]
enable-wide-area=no

[publish]
publish-hinfo=no
publish-workstation=no

[reflector]
enable-reflector=no
"""


def _run(argv, check=True, **kw):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          check=check, timeout=20, **kw)


def _bus_up():
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(SYSTEM_BUS_SOCKET)
        return True
    except OSError:
        return False


def _avahi_pid():
    try:
        pid = int(open(AVAHI_PIDFILE).read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _netns_of(pid):
    try:
        return os.readlink("/proc/%d/ns/net" % pid)
    except OSError:
        return None


class AvahiEnv:
    """A system D-Bus (started if absent), a loopback-only netns, and an
    avahi-daemon in it that can be started and stopped by the test."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.netns = "%s%d" % (NETNS_PREFIX, os.getpid())
        self.conf = os.path.join(workdir, "avahi-daemon.conf")
        self.log_path = os.path.join(workdir, "avahi-daemon.log")
        self.daemon = None
        self.publishers = []
        self.dbus_pid = None
        os.makedirs(workdir, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(AVAHI_CONF)

    def setup(self):
        if not _bus_up():
            os.makedirs("/run/dbus", exist_ok=True)
            try:
                os.unlink("/run/dbus/pid")   # stale, or dbus-daemon refuses
            except FileNotFoundError:
                pass
            cp = _run(["dbus-daemon", "--system", "--fork", "--print-pid"])
            self.dbus_pid = int(cp.stdout.split()[0])
            wait_until(_bus_up, 10, msg="the system bus socket")
        pid = _avahi_pid()
        if pid:
            if _netns_of(pid) == _netns_of(os.getpid()):
                pytest.skip("an avahi-daemon (pid %d) already runs in the host's network "
                            "namespace; not touching it" % pid)
            # A stale one of ours (previous run killed before teardown).
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: _avahi_pid() is None, 5, msg="stale avahi-daemon to go")
        # Namespaces left by killed runs (we hold the lock: none is in use).
        for line in _run(["ip", "netns", "list"]).stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(NETNS_PREFIX):
                _run(["ip", "netns", "delete", name], check=False)
        _run(["ip", "netns", "add", self.netns])
        _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        _run(["ip", "-n", self.netns, "link", "set", "lo", "multicast", "on"])
        links = _run(["ip", "-n", self.netns, "-o", "link", "show"]).stdout.splitlines()
        assert len(links) == 1 and ": lo:" in links[0], links   # only loopback, ever

    def start_daemon(self):
        assert self.daemon is None
        try:
            os.unlink(AVAHI_PIDFILE)
        except FileNotFoundError:
            pass
        start = len(harness.read_text(self.log_path))
        with open(self.log_path, "ab") as log:
            self.daemon = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, "avahi-daemon", "--no-drop-root",
                 "--no-chroot", "--no-rlimits", "-f", self.conf],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_until(lambda: self.daemon.poll() is not None or "Server startup complete"
                   in harness.read_text(self.log_path)[start:], 15, msg="avahi-daemon to start")
        assert self.daemon.poll() is None, harness.read_text(self.log_path)
        assert _run(["avahi-daemon", "--check"], check=False).returncode == 0
        # It really runs in our namespace.
        assert _netns_of(_avahi_pid()) == _netns_of_named(self.netns)

    def stop_daemon(self):
        if self.daemon is None:
            return
        self._stop(self.daemon)
        self.daemon = None
        wait_until(lambda: _run(["avahi-daemon", "--check"], check=False).returncode != 0, 5,
                   msg="avahi-daemon --check to say it is gone")

    def publish(self, name, port=5961, stype=NDI_TYPE):
        path = os.path.join(self.workdir, "publish-%d.log" % len(self.publishers))
        with open(path, "wb") as log:
            p = subprocess.Popen(["ip", "netns", "exec", self.netns, "avahi-publish-service",
                                  name, stype, str(port)],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        p.log_path = path
        self.publishers.append(p)
        wait_until(lambda: p.poll() is not None or "Established under name"
                   in harness.read_text(path), 10, msg="avahi-publish-service to register")
        assert p.poll() is None, harness.read_text(path)
        return p

    def unpublish(self, p):
        self._stop(p)
        self.publishers.remove(p)

    @staticmethod
    def _stop(p):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def teardown(self):
        for p in list(self.publishers):
            self.unpublish(p)
        self.stop_daemon()
        _run(["ip", "netns", "delete", self.netns], check=False)
        if self.dbus_pid:
            try:
                os.kill(self.dbus_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            # Gone before the lock is released: a bus that still accepts
            # while it shuts down would look up to the next test's setup,
            # whose host would then find no bus at all.
            wait_until(lambda: not _bus_up(), 10, msg="the system bus we started to go")
            self.dbus_pid = None


def _netns_of_named(name):
    try:
        return "net:[%d]" % os.stat("/run/netns/%s" % name).st_ino
    except OSError:
        return None


@pytest.fixture
def avahi(tmp_path):
    """Skips (with the reason) where the real mDNS setup is impossible."""
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces, the system D-Bus and avahi's pid file")
    missing = [b for b in ("avahi-daemon", "avahi-publish-service", "dbus-daemon", "ip")
               if not shutil.which(b)]
    if missing:
        pytest.skip("not installed: %s" % ", ".join(missing))
    probe_ns = "%sprobe-%d" % (NETNS_PREFIX, os.getpid())
    cp = _run(["ip", "netns", "add", probe_ns], check=False)
    if cp.returncode:
        pytest.skip("cannot create a network namespace (needs CAP_SYS_ADMIN): %s"
                    % cp.stderr.strip())
    _run(["ip", "netns", "delete", probe_ns], check=False)

    lock = open(LOCK_PATH, "w")
    fcntl.lockf(lock, fcntl.LOCK_EX)   # one avahi-daemon on the bus at a time
    env = AvahiEnv(str(tmp_path / "avahi"))
    try:
        env.setup()
        yield env
    finally:
        env.teardown()
        lock.close()


def mdns_entry(host, name):
    for s in sources(host, detail=True):
        if s["name"] == name and "mdns" in s["origin"]:
            return s
    return None


def test_mdns_announce_and_withdraw(avahi, probe_host):
    avahi.start_daemon()
    h = probe_host({"sources": ["STATIC (One)"]})
    wait_until(lambda: state(h)["mdns"] == "running", 10, msg="mDNS browsing")
    assert sources(h) == ["STATIC (One)"]

    pub = avahi.publish(CAMERA, 5961)
    entry = wait_until(lambda: (mdns_entry(h, CAMERA) or {}).get("port") == 5961
                       and mdns_entry(h, CAMERA), 10, msg="the announced camera")
    assert entry["origin"] == ["mdns"]
    assert entry["address"] == "127.0.0.1"
    assert entry["host"] == "oh-ndi-test.local"
    assert sources(h) == sorted([CAMERA, "STATIC (One)"])
    assert state(h, CAMERA)["has"] is True

    # Two more, one sharing a static name: merged, not duplicated.
    other = avahi.publish("STUDIO-PC (Camera 2)", 5962)
    both = avahi.publish("STATIC (One)", 5963)
    wait_until(lambda: len(sources(h)) == 3 and mdns_entry(h, "STATIC (One)")
               and mdns_entry(h, "STATIC (One)")["port"] == 5963, 10, msg="all three")
    assert by_name(sources(h, detail=True))["STATIC (One)"]["origin"] == ["mdns", "static"]

    avahi.unpublish(pub)
    wait_until(lambda: CAMERA not in sources(h), 10, msg="the camera to go away")
    assert state(h, CAMERA)["has"] is False
    avahi.unpublish(other)
    avahi.unpublish(both)
    wait_until(lambda: sources(h, detail=True) == [
        {"name": "STATIC (One)", "host": None, "address": None, "port": None,
         "origin": ["static"]}], 10, msg="only the static source to remain")


def test_mdns_waits_for_the_daemon_and_survives_it_going(avahi, probe_host, tmp_path):
    helper = write_script(tmp_path / "helper.sh", "echo '[\"HELPER (Cam)\"]'\n")
    h = probe_host({"sources": ["STATIC (One)"], "discovery_helper": helper})
    wait_until(lambda: "HELPER (Cam)" in sources(h), 10, msg="helper sources")
    assert state(h)["mdns"] == "unavailable"
    assert sources(h) == ["HELPER (Cam)", "STATIC (One)"]
    # A window, not a wait: with no daemon nothing happens that could be
    # waited on; a repeated warning would come from a retry inside it.
    time.sleep(1.5)
    assert count(h.log(), "mDNS discovery unavailable") == 1, harness.tail(h.log())
    assert "avahi-daemon is not running" in h.log()

    # The daemon appears: picked up without a restart.
    avahi.start_daemon()
    wait_until(lambda: state(h)["mdns"] == "running", 15, msg="mDNS to be picked up")
    assert count(h.log(), "connected to avahi-daemon") == 1
    pub = avahi.publish(CAMERA, 5961)
    wait_until(lambda: (mdns_entry(h, CAMERA) or {}).get("port") == 5961, 10,
               msg="the announced camera")
    assert sources(h) == sorted(["HELPER (Cam)", CAMERA, "STATIC (One)"])

    # The daemon goes: its sources go with it, the others stay, logged once.
    avahi.stop_daemon()
    wait_until(lambda: state(h)["mdns"] == "unavailable", 10, msg="mDNS to be unavailable")
    assert sources(h) == ["HELPER (Cam)", "STATIC (One)"]
    time.sleep(1.5)   # a window, not a wait (as above)
    assert count(h.log(), "mDNS discovery unavailable") == 2, harness.tail(h.log())

    # And comes back, with the publisher re-registering its service.
    avahi.unpublish(pub)
    avahi.start_daemon()
    wait_until(lambda: state(h)["mdns"] == "running", 15, msg="mDNS to be picked up again")
    avahi.publish(CAMERA, 5961)
    wait_until(lambda: (mdns_entry(h, CAMERA) or {}).get("port") == 5961, 10,
               msg="the camera again")
    h.stop()
    assert h.proc.returncode == 0, harness.tail(h.log())
