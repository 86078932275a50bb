"""
One host per HTTP port, per state directory and per MQTT client id.

A second host must not start silently next to the first: on a busy HTTP port
it says the address is in use, on a state_dir in use it names the lock file
and the PID holding it, and when two hosts share a client id (the broker
throws each out as the other connects) both say so.  Also here: a corrupt
state.db is named, the default client id names the machine, and `make demo`
runs beside `make run`.
"""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading

import pytest

import harness
from harness import LOCALHOST, REMOVE, free_port, port_accepts, wait_until

LEVEL = re.compile(r"^\S+ (debug|info|warn|error)\s+\[")


# Warnings every host in these tests logs at start-up, whatever happens next.
ROUTINE = ("no API tokens configured", "mDNS discovery unavailable")


def problem_lines(text):
    """The error lines of a host log (text format), and the warnings other
    than the routine ones."""
    out = []
    for line in text.splitlines():
        m = LEVEL.match(line)
        if m and (m.group(1) == "error" or
                  (m.group(1) == "warn" and not any(r in line for r in ROUTINE))):
            out.append(line)
    return out


def start_failing(host, timeout=10):
    host.start(wait=False)
    rc = host.wait_exit(timeout)
    return rc, host.log()


# ---- HTTP port --------------------------------------------------------------


def test_second_host_on_busy_http_port_refuses_in_one_line(make_host):
    first = make_host()
    port = first.http_port
    second = make_host({"http": {"port": port}}, start=False)
    rc, out = start_failing(second)
    assert rc > 0, (rc, out)
    problems = problem_lines(out)
    assert len(problems) == 1, "expected one line:\n" + out
    assert "127.0.0.1:%d" % port in problems[0], out
    assert "address already in use" in problems[0], out
    # The first one still answers every request (no port split).
    for _ in range(20):
        assert first.get("/healthz")[0] in (200, 503)


def test_busy_http_port_held_by_another_program(make_host):
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        s.listen()
        port = s.getsockname()[1]
        host = make_host({"http": {"port": port}}, start=False)
        rc, out = start_failing(host)
    assert rc > 0, (rc, out)
    problems = problem_lines(out)
    assert len(problems) == 1 and "address already in use" in problems[0], out


# ---- state directory --------------------------------------------------------


def test_second_host_on_same_state_dir_names_lock_and_pid(make_host):
    first = make_host()
    lock = os.path.join(first.state_dir, "host.lock")
    assert open(lock).read().strip() == str(first.proc.pid)
    second = make_host({"state_dir": first.state_dir}, start=False)
    rc, out = start_failing(second)
    assert rc > 0, (rc, out)
    problems = problem_lines(out)
    assert len(problems) == 1, "expected one line:\n" + out
    assert lock in problems[0] and str(first.proc.pid) in problems[0], out
    # Refused before touching the broker or the store.
    assert "connected to" not in out
    first.get("/healthz")


def test_state_dir_lock_is_released_on_exit_and_on_crash(make_host):
    first = make_host()
    first.kill()                      # a crash leaves host.lock behind
    second = make_host({"state_dir": first.state_dir})
    second.stop()
    third = make_host({"state_dir": first.state_dir})
    assert open(os.path.join(third.state_dir, "host.lock")).read().strip() == str(third.proc.pid)


# ---- state.db ---------------------------------------------------------------


def fill_leases(path, n):
    """Rows enough for the leases table to span many pages."""
    db = sqlite3.connect(path)
    db.executemany("INSERT INTO leases(key, holder, expires_at) VALUES(?, ?, ?)",
                   [("ndi:dev-%05d" % i, "holder-" + "x" * 60, 4e9) for i in range(n)])
    db.commit()
    db.close()


@pytest.mark.parametrize("first_bad_page", [0, 10], ids=["page1-after-header", "lease-pages"])
def test_corrupt_state_db_is_named(make_host, first_bad_page):
    """Page 1 past the header breaks opening the store; later pages only
    break reading the leases back, after the store opened fine."""
    host = make_host()
    assert host.stop() == 0
    path = os.path.join(host.state_dir, "state.db")
    if first_bad_page:
        fill_leases(path, 2000)
    for leftover in ("-wal", "-shm"):
        if os.path.exists(path + leftover):
            os.remove(path + leftover)
    start = max(100, first_bad_page * 4096)
    size = os.path.getsize(path)
    assert size > start
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(bytes((i * 37 + 11) & 0xFF for i in range(size - start)))
    rc, out = start_failing(host)
    assert rc > 0, (rc, out)
    problems = problem_lines(out)
    assert len(problems) == 1, "expected one line:\n" + out
    assert path in problems[0], out
    assert "malformed" in problems[0], out
    assert "storage or I/O error" not in out


# ---- MQTT client id ---------------------------------------------------------


def test_default_client_id_names_the_machine(broker, make_host):
    host = make_host({"mqtt": {"client_id": REMOVE}})
    host.wait_connected()
    expected = " as orchestrator-host-%s " % socket.gethostname()
    wait_until(lambda: expected in broker.log(), msg="%r in the broker log" % expected)


def test_taken_over_client_id_is_reported(make_host):
    shared = harness.unique_name("shared-id")
    first = make_host({"mqtt": {"client_id": shared}})
    first.wait_connected()
    second = make_host({"mqtt": {"client_id": shared}})
    line = ('another client is probably using the client id "%s"' % shared)
    wait_until(lambda: line in first.log() and line in second.log(), timeout=30, interval=0.1,
               msg="the takeover line in both logs")
    for h in (first, second):
        assert h.log().count(line) == 1, h.log()


# ---- make demo beside make run --------------------------------------------


class Demo:
    """scripts/demo.sh in its own process group, its output collected."""

    def __init__(self, demo_dir, mqtt_port, http_port):
        env = harness.clean_env({
            "BUILD": harness.BUILD_DIR,
            "DEMO_DIR": demo_dir,
            "DEMO_MQTT_PORT": mqtt_port,
            "DEMO_HTTP_PORT": http_port,
            # local-broker.sh runs `mosquitto` from PATH.
            "PATH": os.environ.get("PATH", "") + ":" + os.path.dirname(harness.MOSQUITTO),
        })
        self.proc = subprocess.Popen([os.path.join(harness.SOURCE_DIR, "scripts", "demo.sh")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.lines = []
        self.http_port = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            text = raw.decode("utf-8", "replace")
            self.lines.append(text)
            m = re.search(r"open http://[\d.]+:(\d+)/", text)
            if m:
                self.http_port = int(m.group(1))

    def output(self):
        return "".join(self.lines)

    def check(self):
        """Fails on anything a sanitizer said in the demo's processes."""
        found = harness.sanitizer_findings(self.output())
        assert not found, "\n".join(found)

    def wait_running(self):
        wait_until(lambda: self.http_port or self.proc.poll() is not None, timeout=20,
                   msg="the demo's URL")
        assert self.http_port, "demo exited (%s):\n%s" % (self.proc.returncode, self.output())

    def wait_exit(self, timeout=15):
        self.proc.wait(timeout)
        self.reader.join(5)
        return self.proc.returncode

    def stop(self):
        """Ctrl-C, as a person would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.wait_exit()
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise


@pytest.fixture
def demo_needs():
    if not os.path.exists(harness.DEVICE_BINARY):
        pytest.skip("orchestrator-device is not built")


def test_demo_runs_beside_a_running_host(demo_needs, broker, make_host, tmp_path):
    """`make run` holds the default ports and var/: the demo takes its own."""
    run = make_host()
    run.wait_connected()
    demo = Demo(str(tmp_path / "demo"), broker.port, run.http_port)
    try:
        demo.wait_running()
        assert demo.http_port != run.http_port
        # A Host object that is never started: its HTTP helpers reach the demo.
        client = harness.Host(str(tmp_path / "demo-client"), {"http": {"port": demo.http_port}})
        wait_until(lambda: client.get("/healthz")[1].get("mqtt") == "connected", timeout=15,
                   msg="the demo host connected")
        wait_until(lambda: len(client.get("/api/registry")[1].get("devices", {})) == 3,
                   timeout=15, msg="three simulated devices in the demo")
        assert os.path.exists(tmp_path / "demo" / "state.db")
        # The running host saw none of it, and still works.
        assert not run.get("/api/registry")[1].get("devices")
        assert run.get("/healthz")[1].get("mqtt") == "connected"
    finally:
        demo.stop()
    m = re.search(r"local broker on 127.0.0.1:(\d+)", demo.output())
    assert m and int(m.group(1)) != broker.port, demo.output()
    assert not port_accepts(int(m.group(1))), "the demo's broker outlived it"
    demo.check()


def test_second_demo_on_same_dir_refuses(demo_needs, tmp_path):
    first = Demo(str(tmp_path / "demo"), free_port(), free_port())
    try:
        first.wait_running()
        second = Demo(str(tmp_path / "demo"), free_port(), free_port())
        assert second.wait_exit() != 0, second.output()
        out = second.output()
        assert "host.lock is locked by process" in out, out
        assert "local broker" not in out, out
        second.check()
    finally:
        first.stop()
    first.check()
