"""
The device agent (build/orchestrator-device), black-box: a real mosquitto, the
real agent spawning real children, paho clients playing the host, and, where
it is built, the real orchestrator-host reading the agent into its registry.

Covers the wire format of docs/device-agent.md and
docs/device-agent.md: retained meta/status/module
status and their exact keys, the heartbeat, ping/set_labels and the refused
device actions, envelope validation codes, the NDI module with `sleep 1000`
as its viewer (real pid, own process group, stop ends the whole group, a
child dying by itself is reported, exec failures are MODULE_ERROR), the
injection case (a source with shell syntax is one argv word and runs
nothing), cfg deep-merge, clean shutdown vs. SIGKILL (last will), and
--simulate.
"""

import json
import os
import re
import signal
import stat
import time
import uuid

import pytest

from conftest import unique_name, wait_until
import harness

ROOT = "/lab"
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ACK_KEYS = {"req_id", "ok", "code", "action", "actor", "ts", "error", "details"}
META_KEYS = {"device_id", "modules", "capabilities", "labels", "feature", "version", "ts"}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def topic(dev, suffix):
    return "%s/device/%s/%s" % (ROOT, dev, suffix)


def rid():
    return uuid.uuid4().hex[:12]


# --------------------------------------------------------------------------
# Processes, seen through /proc


def proc_stat(pid):
    """(state, ppid, pgid) of pid, or None if it is gone (zombies count as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[0], int(fields[1]), int(fields[2])


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode() for a in f.read().split(b"\0")[:-1]]
    except FileNotFoundError:
        return None


def group_members(pgid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st and st[2] == pgid:
                out.append(int(name))
    return out


def children_of(pid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st and st[1] == pid:
                out.append(int(name))
    return out


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture
def leftovers():
    """Process groups to SIGKILL at teardown: children of an agent the test
    killed with SIGKILL are orphans nobody else stops."""
    groups = []
    yield groups
    for g in groups:
        kill_group(g)


# --------------------------------------------------------------------------
# The agent and a client playing the host


def device_config(dev, **extra):
    cfg = {
        "device_id": dev,
        "labels": ["studio-a"],
        "heartbeat_interval_s": 10,
        "modules": {"ndi": {"start_cmd_template": "sleep 1000", "stop_grace_s": 2}},
    }
    cfg.update(extra)
    return cfg


class Peer:
    """The host's side of one device: subscribes to everything the device
    publishes, sends envelopes, finds acks."""

    def __init__(self, mqtt, dev):
        self.mqtt = mqtt
        self.dev = dev
        mqtt.subscribe(topic(dev, "#"))

    def wait_online(self, timeout=10):
        return self.mqtt.wait_for(topic(self.dev, "status"),
                                  lambda m: m["payload"]["online"] is True, timeout=timeout)

    def send(self, suffix, payload):
        self.mqtt.publish(topic(self.dev, suffix), payload)

    def command(self, action, params=None, module="ndi", actor="test", req_id=None, **extra):
        env = {"req_id": req_id or rid(), "actor": actor, "ts": "2026-11-28T10:00:00Z",
               "action": action, "params": params if params is not None else {},
               "reply_to": None, "ttl_s": None}
        env.update(extra)
        suffix = (module + "/cmd") if module else "cmd"
        since = self.mqtt.mark()
        self.send(suffix, env)
        return self.ack(env["req_id"], module, since=since)

    def ack(self, req_id=None, module="ndi", since=0, timeout=10, pred=None):
        evt = topic(self.dev, (module + "/evt") if module else "evt")

        def match(m):
            p = m["payload"]
            if req_id is not None and p["req_id"] != req_id:
                return False
            return pred is None or pred(p)
        ack = self.mqtt.wait_for(evt, match, timeout=timeout, since=since)["payload"]
        assert set(ack) == ACK_KEYS, ack
        assert TS_RE.match(ack["ts"]), ack
        assert ack["ok"] is (ack["code"] == "OK"), ack
        assert (ack["error"] is None) is ack["ok"], ack
        return ack

    def module_status(self, pred, since=0, timeout=10):
        return self.mqtt.wait_for(topic(self.dev, "ndi/status"), lambda m: pred(m["payload"]),
                                  timeout=timeout, since=since)["payload"]


@pytest.fixture
def dev_id():
    return unique_name("rpi")


@pytest.fixture
def peer(mqtt, dev_id):
    return Peer(mqtt, dev_id)


def start_agent(make_device, peer, dev_id, **cfg):
    d = make_device(device_config(dev_id, **cfg))
    peer.wait_online()
    return d


def wait_gone(pids, timeout=10):
    wait_until(lambda: not any(proc_stat(p) for p in pids), timeout=timeout,
               msg="processes %s to end" % (pids,))


# --------------------------------------------------------------------------
# Agent alone with a broker


def test_meta_status_and_heartbeat_retained(make_device, make_mqtt, peer, dev_id):
    d = start_agent(make_device, peer, dev_id, heartbeat_interval_s=0.3)

    meta = peer.mqtt.wait_for(topic(dev_id, "meta"))["payload"]
    assert set(meta) == META_KEYS, meta
    assert meta["device_id"] == dev_id
    assert meta["modules"] == ["ndi"]
    # What the device can do, not how: no template reaches the broker.
    assert meta["capabilities"] == {"ndi": {"actions": ["start", "set_input", "stop"]}}
    assert meta["labels"] == ["studio-a"]
    assert meta["feature"] is None
    assert isinstance(meta["version"], str) and meta["version"]
    assert TS_RE.match(meta["ts"])

    st = peer.wait_online()["payload"]
    assert set(st) == {"online", "ts", "device_id"} and st["device_id"] == dev_id, st
    assert TS_RE.match(st["ts"])

    ms = peer.module_status(lambda p: True)
    assert ms["state"] == "idle" and ms["online"] is True and TS_RE.match(ms["ts"]), ms
    assert ms["fields"] == {"input": None, "pid": None, "recording": False, "record_pid": None}, ms

    # Heartbeat: the status comes again and again.
    since = peer.mqtt.mark()
    peer.mqtt.wait_for(topic(dev_id, "status"), since=since, timeout=3)
    since = peer.mqtt.mark()
    peer.mqtt.wait_for(topic(dev_id, "status"), since=since, timeout=3)

    # A late subscriber gets all three retained.
    late = make_mqtt()
    late.subscribe(topic(dev_id, "+"))
    late.subscribe(topic(dev_id, "ndi/status"))
    for suffix in ("meta", "status", "ndi/status"):
        m = late.wait_for(topic(dev_id, suffix), timeout=5)
        assert m["retain"], m
    assert d.running()


def test_device_commands(make_device, peer, dev_id):
    start_agent(make_device, peer, dev_id)

    ack = peer.command("ping", module=None, req_id="c0ffee")
    assert ack["ok"] and ack["code"] == "OK" and ack["req_id"] == "c0ffee", ack
    assert ack["action"] == "ping" and ack["actor"] == "test"
    assert ack["details"] == {"pong": True}

    since = peer.mqtt.mark()
    ack = peer.command("set_labels", {"labels": ["studio-b", "rack-2"]}, module=None)
    assert ack["ok"], ack
    meta = peer.mqtt.wait_for(topic(dev_id, "meta"), since=since)["payload"]
    assert meta["labels"] == ["studio-b", "rack-2"], meta

    ack = peer.command("set_labels", {"labels": "x"}, module=None)
    assert ack["code"] == "BAD_REQUEST" and "labels" in ack["error"], ack

    for action in ("add_module", "remove_module", "apply_feature"):
        ack = peer.command(action, {"name": "x"}, module=None)
        assert ack["code"] == "DEVICE_ERROR" and "not supported" in ack["error"], ack

    ack = peer.command("reboot", module=None)
    assert ack["code"] == "DEVICE_ERROR" and "reboot" in ack["error"], ack


@pytest.mark.parametrize("module", [None, "ndi"])
def test_envelope_validation(make_device, peer, dev_id, module):
    start_agent(make_device, peer, dev_id)
    suffix = (module + "/cmd") if module else "cmd"

    def send_raw(payload):
        since = peer.mqtt.mark()
        peer.send(suffix, payload)
        return peer.ack(None, module, since=since)

    ack = send_raw(b"{not json")
    assert ack["code"] == "BAD_JSON" and UUID_RE.match(ack["req_id"]), ack
    assert ack["action"] is None

    ack = send_raw({"req_id": "r1", "actor": "test", "params": {}})
    assert ack["code"] == "BAD_REQUEST" and ack["req_id"] == "r1" and "action" in ack["error"], ack
    ack = send_raw({"req_id": "r2", "actor": "test", "action": ""})
    assert ack["code"] == "BAD_REQUEST" and ack["req_id"] == "r2", ack
    ack = send_raw({"req_id": "r3", "actor": "test", "action": "ping", "params": [1]})
    assert ack["code"] == "BAD_REQUEST" and "params" in ack["error"], ack
    ack = send_raw({"req_id": "r4", "actor": "test", "action": "ping",
                    "params": {"blob": "x" * 16384}})
    assert ack["code"] == "BAD_REQUEST" and "16384" in ack["error"], ack
    for actor in ("ui", "api", "host:alice"):
        ack = send_raw({"req_id": "r5", "actor": actor, "action": "ping"})
        assert ack["code"] == "BAD_REQUEST" and ack["actor"] == actor and "actor" in ack["error"], ack

    # A missing req_id is filled with a UUID; allowed actors pass.
    ack = send_raw({"actor": "orchestrator", "action": "ping" if not module else "stop",
                    "requested_by": "api"})
    assert ack["ok"] and UUID_RE.match(ack["req_id"]), ack

    if module:
        ack = peer.command("dance")
        assert ack["code"] == "MODULE_ERROR" and "dance" in ack["error"], ack
        # The source is checked by the one validator: one "{path}: {why}".
        ack = peer.command("start", {})
        assert ack["code"] == "BAD_REQUEST", ack
        assert ack["error"] == "params.source: missing (expected a non-empty string)", ack
        for bad in ("", 5, ["CAM-1"]):
            ack = peer.command("start", {"source": bad})
            assert ack["code"] == "BAD_REQUEST", ack
            assert ack["error"] == "params.source: expected a non-empty string", ack
        ack = peer.command("record_start", {"source": 7})
        assert ack["error"] == "params.source: expected a non-empty string", ack


def test_start_stop_real_child(make_device, peer, dev_id):
    d = start_agent(make_device, peer, dev_id)

    since = peer.mqtt.mark()
    ack = peer.command("start", {"device_id": dev_id, "source": "CAM-1"}, actor="app")
    assert ack["ok"] and ack["action"] == "start" and ack["actor"] == "app", ack
    pid = ack["details"]["pid"]
    assert ack["details"]["input"] == "CAM-1"
    # The ack comes once the exec has begun; the kernel shows the new
    # command line when it has loaded the program a moment later.
    wait_until(lambda: cmdline(pid) == ["sleep", "1000"], msg="the child exec'd")
    st = proc_stat(pid)
    assert st and st[2] == pid, "the child leads its own process group: %r" % (st,)
    assert st[1] == d.proc.pid

    ms = peer.module_status(lambda p: p["state"] == "running", since=since)
    assert ms["fields"] == {"input": "CAM-1", "pid": pid, "recording": False, "record_pid": None}, ms

    # start again: restart with the new source, the old child gone.
    ack = peer.command("set_input", {"source": "CAM-2"})
    pid2 = ack["details"]["pid"]
    assert ack["ok"] and pid2 != pid, ack
    wait_gone([pid])

    since = peer.mqtt.mark()
    ack = peer.command("stop")
    assert ack["ok"] and ack["details"]["stopped_pids"] == [pid2], ack
    ms = peer.module_status(lambda p: p["state"] == "idle", since=since)
    assert ms["fields"]["pid"] is None and ms["fields"]["input"] is None, ms
    wait_gone([pid2])

    ack = peer.command("stop")
    assert ack["ok"] and ack["details"] == {"note": "already idle"}, ack


def test_stop_ends_the_whole_group(make_device, peer, dev_id):
    # A viewer with a helper: both are in the group, both must go.
    start_agent(make_device, peer, dev_id, modules={"ndi": {
        "start_cmd_template": "/bin/sh -c 'sleep 1000 & sleep 1000; wait'", "stop_grace_s": 2}})
    ack = peer.command("start", {"source": "CAM-1"})
    pid = ack["details"]["pid"]
    members = wait_until(lambda: len(group_members(pid)) >= 3 and group_members(pid),
                         msg="sh and two sleeps in the group")
    ack = peer.command("stop")
    assert ack["ok"], ack
    wait_gone(members)
    assert group_members(pid) == []


def test_sigterm_ignored_gets_sigkill(make_device, peer, dev_id):
    start_agent(make_device, peer, dev_id, modules={"ndi": {
        "start_cmd_template": "/bin/sh -c 'trap \"\" TERM; sleep 1000; sleep 1000'",
        "stop_grace_s": 0.5}})
    pid = peer.command("start", {"source": "CAM-1"})["details"]["pid"]
    wait_until(lambda: len(group_members(pid)) >= 2, msg="sh and sleep running")
    t0 = time.monotonic()
    assert peer.command("stop")["ok"]
    # Still there right after the stop's ack (SIGTERM is ignored); judged
    # only while the 0.5 s grace surely runs, however slow the machine.
    members = group_members(pid)
    if time.monotonic() - t0 < 0.4:
        assert members, "SIGTERM is ignored: still there before the grace period"
    wait_gone(group_members(pid) or [pid], timeout=5)
    assert time.monotonic() - t0 >= 0.4


def test_child_dying_by_itself_is_reported(make_device, peer, dev_id):
    start_agent(make_device, peer, dev_id)
    pid = peer.command("start", {"source": "CAM-1"})["details"]["pid"]
    since = peer.mqtt.mark()
    os.kill(pid, signal.SIGKILL)
    ms = peer.module_status(lambda p: p["state"] == "idle", since=since)
    assert ms["fields"] == {"input": None, "pid": None, "recording": False, "record_pid": None}, ms
    assert ms["last_exit"]["pid"] == pid and ms["last_exit"]["signal"] == 9, ms

    # And it can be started again.
    ack = peer.command("start", {"source": "CAM-1"})
    assert ack["ok"], ack
    assert "last_exit" not in peer.module_status(lambda p: p["state"] == "running")


def test_exec_failure_is_module_error(make_device, peer, dev_id):
    start_agent(make_device, peer, dev_id, modules={"ndi": {
        "start_cmd_template": "/nonexistent/ndi-viewer '{source}'"}})
    ack = peer.command("start", {"source": "CAM-1"})
    assert ack["code"] == "MODULE_ERROR" and "/nonexistent/ndi-viewer" in ack["error"], ack

    ack = peer.command("record_start", {"source": "CAM-1"})
    assert ack["code"] == "MODULE_ERROR" and "record_start_cmd_template" in ack["error"], ack


def test_injection_is_one_harmless_argument(make_device, peer, dev_id, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("x")
    canary = tmp_path / "canary"
    out = tmp_path / "argv.txt"
    script = tmp_path / "viewer.sh"
    script.write_text("#!/bin/sh\n"
                      "printf '%%s\\n' \"$#\" > %s\n"
                      "for a in \"$@\"; do printf '[%%s]\\n' \"$a\" >> %s; done\n"
                      "exec sleep 1000\n" % (out, out))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    d = start_agent(make_device, peer, dev_id, modules={"ndi": {
        "start_cmd_template": "%s '{source}' --device {device_id}" % script}})

    source = "x; rm -rf %s; touch %s $(touch %s) `touch %s` | touch %s &" % (
        victim, canary, canary, canary, canary)
    ack = peer.command("start", {"source": source})
    assert ack["ok"], ack
    pid = ack["details"]["pid"]
    wait_until(lambda: out.exists() and out.read_text().count("\n") == 4, msg="argv written")
    assert out.read_text() == "3\n[%s]\n[--device]\n[%s]\n" % (source, dev_id)
    assert (victim / "keep").exists()
    assert not canary.exists()
    # Nothing but the templated program was started: one child, alone in
    # its group, now the sleep it exec'd into.
    wait_until(lambda: cmdline(pid) == ["sleep", "1000"], msg="script exec'd sleep")
    assert children_of(d.proc.pid) == [pid]
    assert group_members(pid) == [pid]


def test_cfg_is_deep_merged(make_device, peer, dev_id):
    start_agent(make_device, peer, dev_id)

    since = peer.mqtt.mark()
    peer.send("ndi/cfg", {"req_id": "cfg-1", "actor": "orchestrator",
                          "start_cmd_template": "sleep 999", "extra": {"a": 1, "b": {"c": 2}}})
    ack = peer.ack("cfg-1", since=since)
    assert ack["ok"] and ack["action"] == "cfg" and ack["actor"] == "orchestrator", ack
    meta = peer.mqtt.wait_for(topic(dev_id, "meta"), since=since)["payload"]
    # The settings are the device's own (the ack below shows them to the
    # sender); meta carries only the actions they allow.
    assert meta["capabilities"]["ndi"] == {"actions": ["start", "set_input", "stop"]}, meta
    since = peer.mqtt.mark()
    peer.send("ndi/cfg", {"req_id": "cfg-rec", "record_start_cmd_template": "sleep 998"})
    assert peer.ack("cfg-rec", since=since)["ok"]
    meta = peer.mqtt.wait_for(topic(dev_id, "meta"), since=since)["payload"]
    assert meta["capabilities"]["ndi"] == {
        "actions": ["start", "set_input", "stop", "record_start", "record_stop"]}, meta
    assert "sleep" not in json.dumps(meta), meta

    since = peer.mqtt.mark()
    peer.send("ndi/cfg", {"extra": {"b": {"d": 3}}})
    ack = peer.ack(None, since=since)
    assert ack["ok"] and UUID_RE.match(ack["req_id"]), ack
    assert ack["details"]["settings"]["extra"] == {"a": 1, "b": {"c": 2, "d": 3}}, ack

    # A bad update changes nothing.
    since = peer.mqtt.mark()
    peer.send("ndi/cfg", {"req_id": "cfg-bad", "stop_grace_s": "soon"})
    ack = peer.ack("cfg-bad", since=since)
    assert ack["code"] == "BAD_REQUEST" and "stop_grace_s" in ack["error"], ack
    since = peer.mqtt.mark()
    peer.send("ndi/cfg", b"{oops")
    assert peer.ack(None, since=since)["code"] == "BAD_JSON"
    since = peer.mqtt.mark()
    peer.send("ndi/cfg", {"req_id": "cfg-actor", "actor": "ui", "stop_grace_s": 1})
    assert peer.ack("cfg-actor", since=since)["code"] == "BAD_REQUEST"

    # The merged template is the one used.
    pid = peer.command("start", {"source": "CAM-1"})["details"]["pid"]
    # The ack comes once the exec has begun; the kernel shows the new
    # command line when it has loaded the program a moment later.
    wait_until(lambda: cmdline(pid) == ["sleep", "999"], msg="the child exec'd")


def test_clean_shutdown_announces_offline(make_device, peer, dev_id):
    d = start_agent(make_device, peer, dev_id)
    pid = peer.command("start", {"source": "CAM-1"})["details"]["pid"]
    time.sleep(1.1)    # a clock, not a wait: so the shutdown's ts differs from the will's
    since = peer.mqtt.mark()
    stop_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    assert d.stop() == 0
    st = peer.mqtt.wait_for(topic(dev_id, "status"), lambda m: m["payload"]["online"] is False,
                            since=since)["payload"]
    assert st["ts"] >= stop_time, "published by the agent, not the will: %r" % st
    ms = peer.module_status(lambda p: p["online"] is False, since=since)
    assert ms["state"] == "idle", ms
    assert proc_stat(pid) is None, "the child was stopped"
    # The broker did not send the will afterwards: the retained status is
    # ours.  The agent's connection was gone before this barrier was sent.
    barrier = "/test/barrier/" + dev_id
    peer.mqtt.subscribe(barrier)
    peer.mqtt.publish(barrier, {"after": "the agent's exit"})
    peer.mqtt.wait_for(barrier, since=since)
    later = [m["payload"] for m in peer.mqtt.messages(topic(dev_id, "status"), since=since)]
    assert later == [st], later


def test_sigkill_leaves_the_last_will(make_device, peer, dev_id, leftovers):
    d = start_agent(make_device, peer, dev_id)
    pid = peer.command("start", {"source": "CAM-1"})["details"]["pid"]
    leftovers.append(pid)
    since = peer.mqtt.mark()
    d.kill()
    will = peer.mqtt.wait_for(topic(dev_id, "status"), lambda m: m["payload"]["online"] is False,
                              since=since, timeout=10)["payload"]
    assert will == {"online": False, "ts": will["ts"], "device_id": dev_id}, will
    assert TS_RE.match(will["ts"])


def test_bad_config_stops_startup(make_device, dev_id):
    d = make_device({"device_id": dev_id, "modules": {"ndi": {"start_cmd_templat": "x"}}})
    assert d.wait(10) == 1
    assert "device.json: modules.ndi.start_cmd_templat: unknown key" in d.log()

    d = make_device({"device_id": dev_id, "heartbeat_interval_s": "10"})
    assert d.wait(10) == 1
    assert "heartbeat_interval_s: expected a number" in d.log()


def test_cli(tmp_path):
    if not os.path.exists(harness.DEVICE_BINARY):
        pytest.skip("%s is not built" % harness.DEVICE_BINARY)
    import subprocess
    cp = subprocess.run([harness.DEVICE_BINARY, "--version"], capture_output=True, text=True, timeout=10)
    assert cp.returncode == 0 and cp.stdout.startswith("orchestrator-device "), cp
    cp = subprocess.run([harness.DEVICE_BINARY, "--help"], capture_output=True, text=True, timeout=10)
    assert cp.returncode == 0 and "--simulate" in cp.stdout, cp
    cp = subprocess.run([harness.DEVICE_BINARY], capture_output=True, text=True, timeout=10)
    assert cp.returncode == 2 and "--config" in cp.stderr, cp
    bad = tmp_path / "bad.json"
    bad.write_text('{"device_id": "x",\n "labels": [}\n')
    cp = subprocess.run([harness.DEVICE_BINARY, "--config", str(bad)], capture_output=True,
                        text=True, timeout=10)
    assert cp.returncode == 1 and "bad.json: line 2, column" in cp.stderr, cp


def test_simulate(make_device, mqtt, leftovers):
    prefix = unique_name("sim") + "-"
    ids = [prefix + "%02d" % i for i in (1, 2, 3)]
    mqtt.subscribe("%s/device/+/#" % ROOT)
    d = make_device({"labels": ["demo"], "heartbeat_interval_s": 1},
                    extra_args=["--simulate", "3", "--id-prefix", prefix])
    for dev in ids:
        meta = mqtt.wait_for(topic(dev, "meta"), timeout=10)["payload"]
        assert meta["modules"] == ["ndi"] and meta["labels"] == ["demo"], meta
        # A simulated device runs every action without a template.
        assert meta["capabilities"] == {"ndi": {"actions": [
            "start", "set_input", "stop", "record_start", "record_stop"]}}, meta
        mqtt.wait_for(topic(dev, "status"), lambda m: m["payload"]["online"] is True)
    assert not mqtt.messages(topic(prefix + "04", "#"))

    p = Peer.__new__(Peer)
    p.mqtt, p.dev = mqtt, ids[1]
    ack = p.command("start", {"source": "CAM-7"})
    assert ack["ok"] and ack["details"]["pid"] is None and ack["details"]["input"] == "CAM-7", ack
    ms = p.module_status(lambda q: q["state"] == "running")
    assert ms["fields"]["input"] == "CAM-7" and ms["fields"]["pid"] is None, ms
    assert children_of(d.proc.pid) == [], "simulation spawns nothing"
    assert p.command("ping", module=None)["ok"]

    # One connection each: killing the process leaves three wills.
    since = mqtt.mark()
    d.kill()
    for dev in ids:
        mqtt.wait_for(topic(dev, "status"), lambda m: m["payload"]["online"] is False,
                      since=since, timeout=10)


# --------------------------------------------------------------------------
# With the real host


@pytest.fixture
def host(make_host):
    if not os.path.exists(harness.HOST_BINARY):
        pytest.skip("%s is not built" % harness.HOST_BINARY)
    h = make_host()
    h.wait_connected()
    status, body = h.get("/api/registry")
    assert status == 200 and "devices" in body, (status, body)
    return h


def registry_device(host, dev):
    status, body = host.get("/api/registry")
    return (body.get("devices") or {}).get(dev) if status == 200 else None


def test_registry_shows_agent_and_last_will(host, make_device, peer, dev_id, leftovers):
    d = start_agent(make_device, peer, dev_id)
    entry = wait_until(lambda: (lambda e: e if e and e.get("online") is True
                                and e.get("modules") == ["ndi"] else None)(registry_device(host, dev_id)),
                       timeout=10, msg="the agent online in the registry")
    assert entry["labels"] == ["studio-a"], entry
    assert entry["capabilities"]["ndi"] == {"actions": ["start", "set_input", "stop"]}, entry
    for path in ("/api/registry", "/api/devices/" + dev_id, "/api/ndi/devices"):
        assert "cmd_template" not in json.dumps(host.get(path)[1]), path
    st, one = host.get("/api/devices/" + dev_id)
    assert st == 200 and one.get("online") is True, (st, one)

    pid = peer.command("start", {"source": "CAM-1"})["details"]["pid"]
    leftovers.append(pid)
    peer.module_status(lambda p: p["fields"]["pid"] == pid)

    d.kill()
    wait_until(lambda: (registry_device(host, dev_id) or {}).get("online") is False,
               timeout=10, msg="the registry to show the killed agent offline (last will)")


def test_host_relays_start_to_a_real_child(host, make_device, make_mqtt, peer, dev_id):
    start_agent(make_device, peer, dev_id)
    wait_until(lambda: (registry_device(host, dev_id) or {}).get("online") is True,
               timeout=10, msg="the agent in the registry")
    app = make_mqtt()
    app.subscribe("%s/orchestrator/ndi/evt" % ROOT)
    req = rid()
    since = peer.mqtt.mark()
    app.publish("%s/orchestrator/ndi/cmd" % ROOT,
                {"req_id": req, "actor": "app", "action": "start",
                 "params": {"device_id": dev_id, "source": "CAM-1"}})
    app.wait_for("%s/orchestrator/ndi/evt" % ROOT,
                 lambda m: m["payload"].get("req_id") == req, timeout=5)
    ack = peer.ack(None, since=since, pred=lambda p: p["action"] == "start")
    assert ack["ok"], ack
    pid = ack["details"]["pid"]
    # The ack comes once the exec has begun; the kernel shows the new
    # command line when it has loaded the program a moment later.
    wait_until(lambda: cmdline(pid) == ["sleep", "1000"], msg="the child exec'd")
    ms = peer.module_status(lambda p: p["fields"]["pid"] == pid, since=since)
    assert ms["state"] == "running" and ms["fields"]["input"] == "CAM-1", ms
    assert peer.command("stop")["ok"]
    wait_gone([pid])
