"""
The README's commands, run as a reader pastes them: the first screen's two
commands, the scheduling examples (against a real host and broker, with
only the broker port and the HTTP address pointed at the test's), `make
run` showing the host rather than the build, and `make demo` giving its
address only once there is something to see.
"""

import datetime
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from harness import BUILD_DIR, SOURCE_DIR, free_port, wait_until

README = os.path.join(SOURCE_DIR, "README.md")


def readme():
    with open(README) as f:
        return f.read()


def sh_blocks(text):
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def section(text, title):
    m = re.search(r"^## %s\n(.*?)(?=^## )" % re.escape(title), text, re.S | re.M)
    assert m, "no section %s in README.md" % title
    return m.group(1)


def shell(script, cwd):
    cp = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                        text=True, timeout=30, cwd=str(cwd))
    assert cp.returncode == 0, script + "\n" + cp.stdout + cp.stderr
    return cp.stdout


def pointed_at(script, host, broker):
    """script with the README's broker and HTTP addresses made the test's."""
    shim = ("mosquitto_pub() { command mosquitto_pub -h 127.0.0.1 -p %d \"$@\"; }\n"
            % broker.port)
    return shim + script.replace("localhost:8080", "127.0.0.1:%d" % host.http_port)


def test_first_screen_has_exactly_two_commands():
    first = readme().split("\n## ", 1)[0]
    blocks = sh_blocks(first)
    assert len(blocks) >= 1
    commands = [l.split("#")[0].strip() for l in blocks[0].splitlines() if l.split("#")[0].strip()]
    assert commands == ["make run", "make test"], commands


def test_scheduling_examples_work_when_pasted(make_host, broker, mqtt, tmp_path):
    host = make_host()
    host.wait_connected()
    mqtt.subscribe("/lab/orchestrator/ndi/evt")
    block = sh_blocks(section(readme(), "Scheduling"))[0]
    lines = block.splitlines()
    # The curl lines after the jobs are in (a reader's typing gives the host
    # that time); the cancel needs a JOB_ID the reader fills in.
    publish = "\n".join(l for l in lines if not l.startswith("curl"))
    listing = "\n".join(l for l in lines if l.startswith("curl") and "JOB_ID" not in l)
    shell(pointed_at(publish, host, broker), tmp_path)
    acks = wait_until(lambda: (lambda a: a if len(a) == 2 else None)(
        [m["payload"] for m in mqtt.messages("/lab/orchestrator/ndi/evt")
         if m["payload"].get("code") != "RECEIVED"]), 10, msg="two acks")
    assert [a["code"] for a in acks] == ["SCHEDULED", "SCHEDULED"], acks
    listed = json.loads(shell(pointed_at(listing, host, broker), tmp_path))
    jobs = listed["jobs"] if isinstance(listed, dict) else listed
    assert len(jobs) == 2, listed
    # The one-off job runs in the future, about two minutes from now.
    now = datetime.datetime.now(datetime.timezone.utc)
    runs = sorted(datetime.datetime.fromisoformat(j["next_run"].replace("Z", "+00:00"))
                  for j in jobs)
    assert now < runs[0] < now + datetime.timedelta(minutes=3), (now, runs)


def test_try_it_block(make_host, broker, tmp_path):
    host = make_host()
    host.wait_connected()
    block = sh_blocks(readme().split("\n## ", 1)[0])[1]
    publish = "\n".join(l for l in block.splitlines() if not l.startswith("curl"))
    listing = "\n".join(l for l in block.splitlines() if l.startswith("curl"))
    shell(pointed_at(publish, host, broker), tmp_path)
    wait_until(lambda: host.get("/api/devices/rpi-01")[0] == 200, 10, msg="rpi-01 registered")
    registry = json.loads(shell(pointed_at(listing, host, broker), tmp_path))
    assert registry["devices"]["rpi-01"]["modules"] == ["ndi"], registry


def test_troubleshooting_quotes_the_busy_port_message(make_host, tmp_path):
    """The README quotes the host's own words for a port in use."""
    m = re.search(r"\*\*`(cannot listen on 127\.0\.0\.1:8080: [^`]*)`\*\*",
                  section(readme(), "Troubleshooting"))
    assert m, "the troubleshooting section quotes no busy-port message"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        host = make_host({"http": {"port": port}}, start=False)
        host.start(wait=False)
        assert host.wait_exit(10) == 1
    assert m.group(1).replace(":8080", ":%d" % port) in host.log(), host.log()


def release_prefix():
    """make run configures $(BUILD) as RelWithDebInfo with PREFIX: only the
    release tree may be handed to it (never the ASan one), with the prefix
    it has, so that the configure step changes nothing under the tests
    running beside this one.  The prefix, or None for another tree."""
    try:
        with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
            cache = f.read()
    except OSError:
        return None
    prefix = re.search(r"^CMAKE_INSTALL_PREFIX:PATH=(.*)$", cache, re.M)
    if ("CMAKE_BUILD_TYPE:STRING=RelWithDebInfo" not in cache or not prefix
            or re.search(r"^OH_SANITIZE:BOOL=ON$", cache, re.M)):
        return None
    return prefix.group(1)


class Foreground:
    """A command in its own process group, its output read line by line."""

    def __init__(self, argv, env=None):
        self.lines = []
        self.done = False
        self.changed = threading.Condition()
        self.proc = subprocess.Popen(argv, cwd=SOURCE_DIR, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     text=True, env=env, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.done = True
            self.changed.notify_all()

    def wait_line(self, pattern, timeout):
        """(index, match) of the first line matching pattern; fails at once
        when the output ends (the command exited) and after timeout."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.changed:
            while True:
                for i in range(seen, len(self.lines)):
                    m = re.search(pattern, self.lines[i])
                    if m:
                        return i, m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                assert not self.done and left > 0, "no %r %s:\n%s" % (
                    pattern, "before the output ended" if self.done else "within %ss" % timeout,
                    "\n".join(self.lines[-40:]))
                self.changed.wait(left)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.reader.join(5)


@pytest.mark.skipif(release_prefix() is None, reason="make run configures $(BUILD) as "
                    "RelWithDebInfo; OH_BUILD_DIR is not that tree (the ASan one)")
def test_make_run_shows_the_host_not_the_build(broker, tmp_path):
    port = free_port()
    config = tmp_path / "host.json"
    config.write_text(json.dumps({"mqtt": {"host": "127.0.0.1", "port": broker.port,
                                           "client_id": "readme-run-%d" % port},
                                  "http": {"port": port}, "state_dir": str(tmp_path / "var")}))
    run = Foreground(["make", "run", "BUILD=" + BUILD_DIR, "CONFIG=" + str(config), "JOBS=1",
                      "PREFIX=" + release_prefix()])
    try:
        i, _ = run.wait_line(r"listening on http://127\.0\.0\.1:%d/" % port, 120)
        before = run.lines[:i]
        assert not [l for l in before if "Built target" in l or "Scanning" in l], before
        assert len(before) <= 5, before
    finally:
        run.stop()


def test_make_demo_gives_its_address_once_connected(tmp_path):
    env = dict(os.environ, BUILD=BUILD_DIR, DEMO_DIR=str(tmp_path / "demo"),
               DEMO_MQTT_PORT=str(free_port()), DEMO_HTTP_PORT=str(free_port()))
    # The script itself (make demo = deps, the build, then this), so that
    # either tree can be used.
    demo = Foreground(["scripts/demo.sh"], env=env)
    try:
        _, m = demo.wait_line(r"open (http://127\.0\.0\.1:\d+)/ui/ndi", 60)
        base = m.group(1)
        with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
            health = json.load(r)
        assert health["mqtt"] == "connected", health
        with urllib.request.urlopen(base + "/api/registry", timeout=5) as r:
            devices = json.load(r)["devices"]
        assert {"demo-01", "demo-02", "demo-03"} <= set(devices), devices
    finally:
        demo.stop()
    assert demo.proc.returncode == 0, "\n".join(demo.lines[-30:])
