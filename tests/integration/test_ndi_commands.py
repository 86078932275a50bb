"""
The NDI plugin's command side, black-box: a real mosquitto, the real
orchestrator-host, and paho clients playing the app and the devices.

Covers the five pass-throughs (relayed unchanged), every ack code, leases
(reserve/renew/release/force_release, DENIED relays, expiry, surviving
kill -9), the COMPLETED/FAILED/TIMEOUT life cycle, OFFLINE, and bad input
followed by a good command.  The contract is docs/protocol.md.
"""

import json
import re
import subprocess
import time
import uuid

import pytest

import harness
from conftest import wait_until

CMD = "/lab/orchestrator/ndi/cmd"
EVT = "/lab/orchestrator/ndi/evt"
REGISTRY = "/lab/orchestrator/registry"
ACK_KEYS = {"req_id", "ok", "code", "action", "actor", "ts", "error", "details"}
PASS_THROUGH = [
    ("start", {"source": "CAM-1"}),
    ("stop", {}),
    ("set_input", {"source": "CAM-2"}),
    ("record_start", {"source": "CAM-1"}),
    ("record_stop", {}),
]


def dev_cmd(device_id):
    return "/lab/device/%s/ndi/cmd" % device_id


def dev_evt(device_id):
    return "/lab/device/%s/ndi/evt" % device_id


def rid():
    return uuid.uuid4().hex[:12]


class Ndi:
    """The app's side: publishes envelopes on the command topic and finds
    the host's events for them."""

    def __init__(self, host, mqtt):
        self.host = host
        self.mqtt = mqtt
        mqtt.subscribe(EVT)
        self.wait_ready()

    def wait_ready(self, timeout=10):
        # The host may still be subscribing after /healthz says connected:
        # probe until a command gets an ack.
        deadline = time.monotonic() + timeout
        while True:
            req_id = "probe-" + rid()
            self.send("release", {"device_id": "probe"}, req_id=req_id)
            try:
                self.event(req_id, timeout=0.5)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def send(self, action, params=None, actor="app", req_id=None, **extra):
        env = {"req_id": rid() if req_id is None else req_id, "actor": actor, "action": action,
               "params": dict(params or {})}
        if actor is None:
            del env["actor"]
        if req_id is False:
            del env["req_id"]
        env.update(extra)
        self.mqtt.publish(CMD, env)
        return env

    def event(self, req_id, code=None, timeout=5, since=0):
        def match(m):
            p = m["payload"]
            return p["req_id"] == req_id and (code is None or p["code"] == code)
        return self.mqtt.wait_for(EVT, match, timeout=timeout, since=since)["payload"]

    def do(self, action, params=None, actor="app", **kw):
        env = self.send(action, params, actor=actor, **kw)
        return self.event(env["req_id"]) if "req_id" in env else None

    def barrier(self):
        """Until the host has answered a command sent now: whatever it
        published before (an expiry, a timeout) came first, and whatever
        reached the broker before (a device's ack) was handled first."""
        self.do("release", {"device_id": "probe"})

    def events(self, req_id):
        return [m["payload"] for m in self.mqtt.messages(EVT) if m["payload"].get("req_id") == req_id]


class Device:
    """A test device: sees its NDI commands, acks them when told to."""

    def __init__(self, make_mqtt, device_id):
        self.id = device_id
        self.client = make_mqtt()
        self.client.subscribe(dev_cmd(device_id))

    def next_cmd(self, timeout=5, since=0):
        return self.client.wait_for(dev_cmd(self.id), timeout=timeout, since=since)

    def commands(self):
        return [m["payload"] for m in self.client.messages(dev_cmd(self.id))]

    def ack(self, req_id, ok=True, code="OK", error=None, details=None, action="start",
            topic_id=None):
        self.client.publish(dev_evt(topic_id or self.id), {
            "req_id": req_id, "ok": ok, "code": code, "action": action, "actor": "app",
            "ts": "2026-11-28T10:00:01Z", "error": error, "details": details or {}})

    def set_status(self, online):
        self.client.publish("/lab/device/%s/status" % self.id,
                            {"online": online, "ts": "2026-11-28T10:00:00Z", "device_id": self.id},
                            retain=True)


def ndi_config(settings=None, **extra):
    s = {"ack_timeout_s": 1}
    s.update(settings or {})
    cfg = {"plugins": [{"module": "ndi", "path": harness.NDI_PLUGIN, "settings": s}]}
    cfg.update(extra)
    return cfg


@pytest.fixture
def host(make_host):
    h = make_host(ndi_config())
    h.wait_connected()
    return h


@pytest.fixture
def app(host, mqtt):
    return Ndi(host, mqtt)


@pytest.fixture
def device(make_mqtt):
    return Device(make_mqtt, "rpi-01")


def assert_ack(ack, code, ok, action=None, actor="app"):
    assert ACK_KEYS <= set(ack), ack
    assert ack["code"] == code, ack
    assert ack["ok"] is ok, ack
    if action:
        assert ack["action"] == action, ack
    assert ack["actor"] == actor, ack
    assert isinstance(ack["ts"], str) and ack["ts"].endswith("Z"), ack


def assert_not_relayed_before(device, app, actor="app"):
    """Nothing reached the device before a fresh, allowed command does: the
    host handles commands in order, so this proves the earlier one was dropped."""
    mark = device.client.mark()
    env = app.send("stop", {"device_id": device.id}, actor=actor)
    assert app.event(env["req_id"])["code"] == "DISPATCHED"
    first = device.next_cmd(since=mark)
    assert first["payload"]["req_id"] == env["req_id"], first


# ---------------------------------------------------------------- pass-through


@pytest.mark.parametrize("action,params", PASS_THROUGH, ids=[a for a, _ in PASS_THROUGH])
def test_pass_through_relays_the_same_payload(app, device, action, params):
    env = app.send(action, dict(params, device_id=device.id, extra_param=[1, {"x": None}]),
                   ts="2026-11-28T10:00:00Z", reply_to=None, ttl_s=30, custom={"k": "v"})
    ack = app.event(env["req_id"])
    assert_ack(ack, "DISPATCHED", True, action)
    assert ack["error"] is None
    assert ack["details"] == {"device_id": device.id, "topic": dev_cmd(device.id)}
    relayed = device.next_cmd()
    assert relayed["payload"] == env
    assert relayed["retain"] is False
    assert relayed["qos"] == 1


def test_envelope_is_relayed_byte_for_byte(app, device):
    # Odd spacing, key order and number forms survive: the device gets the
    # app's bytes, not a re-encoding.
    req_id = rid()
    raw = ('{ "params" : {"source":"CAM-1", "device_id":"%s", "gain": 1.50E0},\n'
           '  "action":"start", "actor":"app", "req_id":"%s", "z": [ ] }' % (device.id, req_id))
    app.mqtt.publish(CMD, raw.encode())
    assert app.event(req_id)["code"] == "DISPATCHED"
    assert device.next_cmd()["raw"] == raw.encode()


def test_missing_req_id_is_generated_and_inserted(app, device):
    mark = app.mqtt.mark()
    env = app.send("stop", {"device_id": device.id}, req_id=False)
    relayed = device.next_cmd()["payload"]
    req_id = relayed.pop("req_id")
    assert req_id and relayed == env
    ack = app.event(req_id, since=mark)
    assert_ack(ack, "DISPATCHED", True, "stop")


def test_empty_req_id_is_replaced(app, device):
    # The device would treat "" as missing and ack under an id of its own.
    mark = app.mqtt.mark()
    env = app.send("stop", {"device_id": device.id}, req_id="")
    relayed = device.next_cmd()["payload"]
    req_id = relayed.pop("req_id")
    env.pop("req_id")
    assert req_id and relayed == env
    assert_ack(app.event(req_id, since=mark), "DISPATCHED", True, "stop")
    device.ack(req_id)
    assert app.event(req_id, "COMPLETED")


def test_missing_actor_is_anonymous(app, device):
    env = app.send("stop", {"device_id": device.id}, actor=None)
    assert_ack(app.event(env["req_id"]), "DISPATCHED", True, "stop", actor="anonymous")
    assert "actor" not in device.next_cmd()["payload"]


def test_retained_command_is_ignored(make_host, mqtt, device):
    # A retained command reaches a host that subscribes later (e.g. after a
    # restart) flagged retained; running it would replay it on every start.
    mqtt.publish(CMD, {"req_id": "retained-1", "actor": "app", "action": "stop",
                       "params": {"device_id": device.id}}, retain=True)
    h = make_host(ndi_config())
    h.wait_connected()
    app = Ndi(h, mqtt)
    assert_not_relayed_before(device, app)
    assert app.events("retained-1") == []
    mqtt.publish(CMD, b"", retain=True)


# ---------------------------------------------------------------- life cycle


def test_device_ack_completes(app, device):
    env = app.send("start", {"device_id": device.id, "source": "CAM-1"})
    assert app.event(env["req_id"])["code"] == "DISPATCHED"
    device.next_cmd()
    device.ack(env["req_id"], details={"pid": 4242, "input": "CAM-1"})
    done = app.event(env["req_id"], "COMPLETED")
    assert_ack(done, "COMPLETED", True, "start")
    assert done["details"] == {"pid": 4242, "input": "CAM-1", "device_id": device.id}
    # The timer was cancelled: no TIMEOUT after the ack.  A witness sent
    # later and never acked times out later; once its TIMEOUT is in, the
    # first command's would have been too.
    witness = app.send("stop", {"device_id": device.id})
    app.event(witness["req_id"], "TIMEOUT", timeout=10)
    assert [e["code"] for e in app.events(env["req_id"])] == ["DISPATCHED", "COMPLETED"]


def test_device_failure_is_reported(app, device):
    env = app.send("set_input", {"device_id": device.id, "source": "CAM-9"})
    device.next_cmd()
    device.ack(env["req_id"], ok=False, code="MODULE_ERROR", error="no such source",
               action="set_input")
    failed = app.event(env["req_id"], "FAILED")
    assert_ack(failed, "FAILED", False, "set_input")
    assert failed["details"] == {"device_code": "MODULE_ERROR", "device_error": "no such source",
                                 "device_id": device.id}
    assert "no such source" in failed["error"]


def test_no_device_ack_times_out(app, device):
    env = app.send("stop", {"device_id": device.id})
    t0 = time.monotonic()
    device.next_cmd()
    timeout = app.event(env["req_id"], "TIMEOUT", timeout=5)
    assert 0.8 <= time.monotonic() - t0 <= 3.5
    assert_ack(timeout, "TIMEOUT", False, "stop")
    assert timeout["details"]["device_id"] == device.id
    # A late ack is for a command no longer pending: ignored.
    device.ack(env["req_id"])        # the broker has it once this returns
    app.barrier()
    assert [e["code"] for e in app.events(env["req_id"])] == ["DISPATCHED", "TIMEOUT"]


def test_ack_from_another_device_does_not_complete(app, device, make_mqtt):
    env = app.send("stop", {"device_id": device.id})
    device.next_cmd()
    device.ack(env["req_id"], topic_id="rpi-other")
    device.client.publish(dev_evt(device.id), b"not json {")
    device.client.publish(dev_evt(device.id), [1, 2, 3])
    device.client.publish(dev_evt(device.id), {"req_id": 42, "ok": True})
    device.ack(env["req_id"])
    assert app.event(env["req_id"], "COMPLETED")["details"]["device_id"] == device.id
    assert [e["code"] for e in app.events(env["req_id"])] == ["DISPATCHED", "COMPLETED"]


def test_same_req_id_in_flight_is_refused(app, device):
    env = app.send("stop", {"device_id": device.id})
    assert app.event(env["req_id"])["code"] == "DISPATCHED"
    mark = app.mqtt.mark()
    app.send("stop", {"device_id": device.id}, req_id=env["req_id"])
    dup = app.event(env["req_id"], since=mark)
    assert_ack(dup, "BAD_REQUEST", False, "stop")
    assert dup["details"] == {"field": "req_id"}
    device.ack(env["req_id"])
    assert app.event(env["req_id"], "COMPLETED")


def test_many_commands_in_flight(make_host, mqtt, device):
    h = make_host(ndi_config({"ack_timeout_s": 30}))
    h.wait_connected()
    app = Ndi(h, mqtt)
    ids = []
    for i in range(300):
        env = app.send("stop", {"device_id": device.id}, req_id="bulk-%d" % i)
        ids.append(env["req_id"])
    wait_until(lambda: len(device.commands()) == 300, 10, msg="300 relays")
    for req_id in reversed(ids):
        device.ack(req_id)
    for req_id in ids:
        assert app.event(req_id, "COMPLETED", timeout=10)


def test_relay_leaves_before_its_dispatched_ack(app, device, mqtt):
    # One subscriber to both topics sees the host's packets in the order it
    # wrote them: each command's relay before its DISPATCHED, and the
    # DISPATCHED acks in the order of the commands, also when a burst
    # arrives in one read and everything leaves in one write.
    mqtt.subscribe(dev_cmd(device.id))
    mark = mqtt.mark()
    ids = ["order-%d-%s" % (i, rid()) for i in range(200)]
    for req_id in ids:
        app.mqtt.publish(CMD, {"req_id": req_id, "actor": "app", "action": "stop",
                               "params": {"device_id": device.id}}, wait=False)
    wait_until(lambda: len([m for m in mqtt.messages(EVT, since=mark)
                            if m["payload"].get("code") == "DISPATCHED"]) == len(ids),
               10, msg="every DISPATCHED")
    seen = [(m["topic"], m["payload"]["req_id"]) for m in mqtt.messages(since=mark)
            if m["payload"].get("req_id") in set(ids)]
    relayed = [r for t, r in seen if t == dev_cmd(device.id)]
    dispatched = [r for t, r in seen if t == EVT]
    assert relayed == ids and dispatched == ids
    for req_id in ids:
        assert seen.index((dev_cmd(device.id), req_id)) < seen.index((EVT, req_id)), req_id


def unix_pairs(pid):
    """Unix sockets of pid whose peer pid holds too (a socketpair)."""
    out = subprocess.run(["ss", "-xpaH"], capture_output=True, text=True, check=True).stdout
    mine = {}
    for line in out.splitlines():
        f = line.split()
        if "pid=%d," % pid in line and len(f) >= 8:
            mine[f[5]] = f[7]  # local inode -> peer inode
    return [(a, b) for a, b in mine.items() if b in mine]


def test_mqtt_client_has_no_wakeup_socketpair(app, device, host):
    # libmosquitto opens a socketpair per client for a network thread the
    # host never runs and writes a byte to it for every packet queued, a
    # failing write() per packet; the link creates its client without it.
    for _ in range(3):
        app.send("stop", {"device_id": device.id})
    app.barrier()
    assert unix_pairs(host.proc.pid) == []


# ---------------------------------------------------------------- offline


def wait_registry_online(mqtt, device_id, online):
    mqtt.subscribe(REGISTRY)
    mqtt.wait_for(REGISTRY, lambda m: m["payload"]["devices"][device_id]["online"] is online,
                  timeout=5)


def test_offline_device_is_not_relayed(app, device):
    device.set_status(False)
    wait_registry_online(app.mqtt, device.id, False)
    env = app.send("start", {"device_id": device.id, "source": "CAM-1"})
    ack = app.event(env["req_id"])
    assert_ack(ack, "OFFLINE", False, "start")
    assert ack["details"] == {"device_id": device.id}
    # Online again: relayed.
    device.set_status(True)
    wait_registry_online(app.mqtt, device.id, True)
    assert_not_relayed_before(device, app)


def test_relay_when_offline(make_host, mqtt, device):
    h = make_host(ndi_config({"relay_when_offline": True}))
    h.wait_connected()
    app = Ndi(h, mqtt)
    device.set_status(False)
    wait_registry_online(mqtt, device.id, False)
    env = app.send("stop", {"device_id": device.id})
    assert app.event(env["req_id"])["code"] == "DISPATCHED"
    assert device.next_cmd()["payload"] == env


# ---------------------------------------------------------------- leases


def test_reserve_and_in_use(app, device):
    ok = app.do("reserve", {"device_id": device.id, "lease_s": 30}, actor="alice")
    assert_ack(ok, "OK", True, "reserve", actor="alice")
    assert ok["details"]["device_id"] == device.id
    assert ok["details"]["holder"] == "alice"
    assert ok["details"]["lease_s"] == 30
    assert ok["details"]["expires_at"].endswith("Z")

    busy = app.do("reserve", {"device_id": device.id}, actor="bob")
    assert_ack(busy, "IN_USE", False, "reserve", actor="bob")
    assert busy["details"]["holder"] == "alice"
    assert 25 <= busy["details"]["remaining_s"] <= 30
    assert busy["details"]["expires_at"] == ok["details"]["expires_at"]
    assert "alice" in busy["error"] and str(busy["details"]["remaining_s"]) in busy["error"]

    # The holder reserving again extends the lease.
    again = app.do("reserve", {"device_id": device.id}, actor="alice")
    assert_ack(again, "OK", True, "reserve", actor="alice")
    assert again["details"]["lease_s"] == 60


def test_leased_device_denies_other_actors(app, device):
    assert app.do("reserve", {"device_id": device.id}, actor="alice")["code"] == "OK"
    for action, params in PASS_THROUGH:
        denied = app.do(action, dict(params, device_id=device.id), actor="bob")
        assert_ack(denied, "DENIED", False, action, actor="bob")
        assert denied["details"]["holder"] == "alice"
        assert denied["details"]["remaining_s"] > 0
        assert denied["details"]["expires_at"].endswith("Z")
        assert "alice" in denied["error"]
    # Anonymous commands are someone else too.
    assert app.do("stop", {"device_id": device.id}, actor=None)["code"] == "DENIED"
    # The holder's own commands pass, and nothing of bob's got through.
    assert_not_relayed_before(device, app, actor="alice")
    # Other devices are not affected.
    assert app.do("stop", {"device_id": "rpi-02"}, actor="bob")["code"] == "DISPATCHED"


def test_renew_release_codes(app):
    d = {"device_id": "rpi-07"}
    assert_ack(app.do("renew", d, actor="alice"), "NOT_HELD", False, "renew", actor="alice")
    assert_ack(app.do("release", d, actor="alice"), "NOT_HELD", False, "release", actor="alice")
    assert app.do("reserve", dict(d, lease_s=10), actor="alice")["code"] == "OK"

    renewed = app.do("renew", dict(d, lease_s=120), actor="alice")
    assert_ack(renewed, "OK", True, "renew", actor="alice")
    assert renewed["details"]["lease_s"] == 120

    not_owner = app.do("renew", d, actor="bob")
    assert_ack(not_owner, "NOT_OWNER", False, "renew", actor="bob")
    assert not_owner["details"]["holder"] == "alice"
    assert 100 <= not_owner["details"]["remaining_s"] <= 120

    assert_ack(app.do("release", d, actor="bob"), "NOT_OWNER", False, "release", actor="bob")
    released = app.do("release", d, actor="alice")
    assert_ack(released, "OK", True, "release", actor="alice")
    assert_ack(app.do("release", d, actor="alice"), "NOT_HELD", False, "release", actor="alice")
    # Free again: bob may take it.
    assert app.do("reserve", d, actor="bob")["code"] == "OK"


def test_anonymous_holder(app):
    ok = app.do("reserve", {"device_id": "rpi-08"}, actor=None)
    assert_ack(ok, "OK", True, "reserve", actor="anonymous")
    assert ok["details"]["holder"] == "anonymous"
    assert app.do("stop", {"device_id": "rpi-08"}, actor=None)["code"] == "DISPATCHED"


def test_force_release_by_anyone_by_default(app, device):
    d = {"device_id": device.id}
    assert_ack(app.do("force_release", d, actor="carol"), "NOT_HELD", False, "force_release",
               actor="carol")
    assert app.do("reserve", d, actor="alice")["code"] == "OK"
    forced = app.do("force_release", d, actor="carol")
    assert_ack(forced, "OK", True, "force_release", actor="carol")
    assert forced["details"] == {"device_id": device.id, "previous_holder": "alice",
                                 "released_by": "carol"}
    wait_until(lambda: "force_release" in app.host.log() and "carol" in app.host.log(), 5,
               msg="force_release logged with who did it")
    assert app.do("stop", d, actor="bob")["code"] == "DISPATCHED"


def test_force_release_limited_to_admins(make_host, mqtt):
    h = make_host(ndi_config({"admins": ["root"]}))
    h.wait_connected()
    app = Ndi(h, mqtt)
    d = {"device_id": "rpi-09"}
    assert app.do("reserve", d, actor="alice")["code"] == "OK"
    refused = app.do("force_release", d, actor="carol")
    assert_ack(refused, "DENIED", False, "force_release", actor="carol")
    assert app.do("reserve", d, actor="bob")["code"] == "IN_USE"
    forced = app.do("force_release", d, actor="root")
    assert_ack(forced, "OK", True, "force_release", actor="root")
    assert app.do("reserve", d, actor="bob")["code"] == "OK"


def test_lease_expires(app, device):
    mark = app.mqtt.mark()
    assert app.do("reserve", {"device_id": device.id, "lease_s": 1}, actor="alice")["code"] == "OK"
    expired = app.mqtt.wait_for(EVT, lambda m: m["payload"]["code"] == "EXPIRED", timeout=5,
                                since=mark)["payload"]
    assert_ack(expired, "EXPIRED", False, "reserve", actor="alice")
    assert expired["details"] == {"device_id": device.id, "holder": "alice"}
    assert expired["req_id"]
    assert app.do("stop", {"device_id": device.id}, actor="bob")["code"] == "DISPATCHED"
    # Released leases do not expire later.
    assert app.do("reserve", {"device_id": "rpi-10", "lease_s": 1}, actor="alice")["code"] == "OK"
    assert app.do("release", {"device_id": "rpi-10"}, actor="alice")["code"] == "OK"
    # A witness lease taken after the release expires no sooner than the
    # released one would have; a barrier after its EXPIRED covers both.
    assert app.do("reserve", {"device_id": "rpi-13", "lease_s": 1}, actor="alice")["code"] == "OK"
    app.mqtt.wait_for(EVT, lambda m: m["payload"]["code"] == "EXPIRED"
                      and m["payload"]["details"]["device_id"] == "rpi-13", timeout=10, since=mark)
    app.barrier()
    assert not [m for m in app.mqtt.messages(EVT, since=mark)
                if m["payload"]["code"] == "EXPIRED" and m["payload"]["details"]["device_id"] == "rpi-10"]


def test_snapshot_shows_locks(app):
    app.mqtt.subscribe(REGISTRY)
    assert app.do("reserve", {"device_id": "rpi-11"}, actor="alice")["code"] == "OK"
    snap = app.mqtt.wait_for(REGISTRY, lambda m: "ndi:rpi-11" in m["payload"]["locks"])
    assert snap["payload"]["locks"]["ndi:rpi-11"]["holder"] == "alice"


def test_lease_survives_kill_and_restart(host, mqtt, device):
    app = Ndi(host, mqtt)
    ok = app.do("reserve", {"device_id": device.id, "lease_s": 120}, actor="alice")
    assert ok["code"] == "OK"
    host.kill()
    host.start()
    host.wait_connected()
    app.wait_ready()
    busy = app.do("reserve", {"device_id": device.id}, actor="bob")
    assert busy["code"] == "IN_USE" and busy["details"]["holder"] == "alice"
    # The same deadline, not a fresh lease_s from the restart.
    assert busy["details"]["expires_at"] == ok["details"]["expires_at"], (busy, ok)
    assert app.do("start", {"device_id": device.id, "source": "CAM-1"}, actor="bob")["code"] == "DENIED"
    assert_not_relayed_before(device, app, actor="alice")
    host.restart()
    host.wait_connected()
    app.wait_ready()
    assert app.do("release", {"device_id": device.id}, actor="alice")["code"] == "OK"


def test_lease_expiring_while_host_down(host, mqtt):
    app = Ndi(host, mqtt)
    assert app.do("reserve", {"device_id": "rpi-12", "lease_s": 1}, actor="alice")["code"] == "OK"
    host.kill()
    time.sleep(1.2)     # a clock that must pass: the lease ends while the host is down
    host.start()
    host.wait_connected()
    app.wait_ready()
    assert app.do("reserve", {"device_id": "rpi-12"}, actor="bob")["code"] == "OK"


# ---------------------------------------------------------------- bad input

BAD = [
    # (id, payload, code, field named in the error)
    ("not-json", b"{not json", "BAD_JSON", None),
    ("json-array", b"[1,2]", "BAD_JSON", None),
    ("empty", b"", "BAD_JSON", None),
    ("no-action", {"req_id": "x", "params": {"device_id": "rpi-01"}}, "BAD_REQUEST", "action"),
    ("action-not-string", {"action": 5, "params": {"device_id": "rpi-01"}}, "BAD_REQUEST", "action"),
    ("params-not-object", {"action": "stop", "params": "rpi-01"}, "BAD_REQUEST", "params"),
    ("actor-not-string", {"action": "stop", "actor": 3, "params": {"device_id": "rpi-01"}},
     "BAD_REQUEST", "actor"),
    ("no-device-id", {"action": "stop", "params": {}}, "BAD_REQUEST", "params.device_id"),
    ("device-id-number", {"action": "stop", "params": {"device_id": 1}}, "BAD_REQUEST",
     "params.device_id"),
    ("device-id-slash", {"action": "stop", "params": {"device_id": "a/b"}}, "BAD_REQUEST",
     "params.device_id"),
    ("device-id-plus", {"action": "stop", "params": {"device_id": "+"}}, "BAD_REQUEST",
     "params.device_id"),
    ("device-id-hash", {"action": "stop", "params": {"device_id": "#"}}, "BAD_REQUEST",
     "params.device_id"),
    ("device-id-empty", {"action": "stop", "params": {"device_id": ""}}, "BAD_REQUEST",
     "params.device_id"),
    ("device-id-long", {"action": "stop", "params": {"device_id": "a" * 65}}, "BAD_REQUEST",
     "params.device_id"),
    ("start-no-source", {"action": "start", "params": {"device_id": "rpi-01"}}, "BAD_REQUEST",
     "params.source"),
    ("set-input-source-number", {"action": "set_input", "params": {"device_id": "rpi-01", "source": 1}},
     "BAD_REQUEST", "params.source"),
    ("record-start-source-empty", {"action": "record_start",
                                   "params": {"device_id": "rpi-01", "source": ""}},
     "BAD_REQUEST", "params.source"),
    ("lease-zero", {"action": "reserve", "params": {"device_id": "rpi-01", "lease_s": 0}},
     "BAD_REQUEST", "params.lease_s"),
    ("lease-negative", {"action": "renew", "params": {"device_id": "rpi-01", "lease_s": -5}},
     "BAD_REQUEST", "params.lease_s"),
    ("lease-string", {"action": "reserve", "params": {"device_id": "rpi-01", "lease_s": "60"}},
     "BAD_REQUEST", "params.lease_s"),
    ("lease-over-max", {"action": "reserve", "params": {"device_id": "rpi-01", "lease_s": 86401}},
     "BAD_REQUEST", "params.lease_s"),
    ("unknown-action", {"action": "explode", "params": {"device_id": "rpi-01"}}, "BAD_ACTION", None),
    # The error quotes the first 64 bytes of the action: the cut must not
    # split the two-byte character, or the ack's text is not UTF-8.
    ("unknown-action-cut", {"action": "a" * 63 + "\u00e9" + "b" * 10, "params": {"device_id": "rpi-01"}},
     "BAD_ACTION", "unknown action \"" + "a" * 63 + "\""),
    ("too-large", {"action": "start", "params": {"device_id": "rpi-01", "source": "x" * 5000}},
     "TOO_LARGE", None),
]


@pytest.fixture
def small_host(make_host):
    h = make_host(ndi_config(max_payload_bytes=4096))
    h.wait_connected()
    return h


@pytest.mark.parametrize("payload,code,field", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_then_good_command(small_host, mqtt, device, payload, code, field):
    app = Ndi(small_host, mqtt)
    mark = mqtt.mark()
    if isinstance(payload, dict):
        payload = dict(payload, actor=payload.get("actor", "app"))
        payload.setdefault("req_id", "bad-" + rid())
        raw = json.dumps(payload).encode()
    else:
        raw = payload
    mqtt.publish(CMD, raw)
    ack = mqtt.wait_for(EVT, lambda m: m["payload"]["code"] == code, since=mark)["payload"]
    assert ACK_KEYS <= set(ack), ack
    assert ack["ok"] is False
    assert ack["req_id"], ack
    if code != "TOO_LARGE" and isinstance(payload, dict) and payload["req_id"]:
        assert ack["req_id"] == payload["req_id"]
    assert ack["error"], ack
    if field:
        assert field in ack["error"], ack
    # No state changed: no lease was taken, nothing was relayed, and the next
    # good command (from another actor) works.
    assert app.do("reserve", {"device_id": "rpi-01"}, actor="other")["code"] == "OK"
    assert app.do("release", {"device_id": "rpi-01"}, actor="other")["code"] == "OK"
    assert_not_relayed_before(device, app)


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize("settings,named", [
    ({"bogus_key": 1}, "bogus_key"),
    ({"ack_timeout_s": "10"}, "ack_timeout_s"),
    ({"ack_timeout_s": 0}, "ack_timeout_s"),
    ({"relay_when_offline": 1}, "relay_when_offline"),
    ({"sources": ["a", 2]}, "sources"),
    ({"admins": "root"}, "admins"),
    ({"discovery_helper": 5}, "discovery_helper"),
    ({"default_lease_s": 100, "max_lease_s": 50}, "default_lease_s"),
])
def test_bad_settings_fail_init_naming_the_key(make_host, settings, named):
    h = make_host(ndi_config(settings), wait=False)
    wait_until(lambda: "settings.%s" % named in h.log(), 10,
               msg="init failure naming settings.%s" % named)
    # Let the daemon finish starting before teardown signals it.
    if h.running():
        h.wait_ready()


def test_good_settings_are_accepted(make_host, mqtt):
    h = make_host(ndi_config({"sources": ["NDI-1", "NDI-2"], "ack_timeout_s": 2.5,
                              "default_lease_s": 30, "max_lease_s": 600,
                              "relay_when_offline": False, "discovery_helper": None,
                              "admins": None}))
    h.wait_connected()
    app = Ndi(h, mqtt)
    ok = app.do("reserve", {"device_id": "rpi-01"})
    assert ok["code"] == "OK" and ok["details"]["lease_s"] == 30
    assert app.do("reserve", {"device_id": "rpi-02", "lease_s": 601})["code"] == "BAD_REQUEST"
