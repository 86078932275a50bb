"""
The NDI plugin's REST API, black-box: a real mosquitto, the real
orchestrator-host, HTTP from urllib and paho clients playing the devices.

Every endpoint and every error status: GET status/sources/devices, POST
send (202 DISPATCHED, ?wait=1 -> 200 COMPLETED / 502 FAILED / 504 TIMEOUT,
a client leaving while it waits, the plugin unloading while it waits, 400
BAD_ACTION / bad body, an unseen source or unknown device relayed with a warning, 409 DENIED /
OFFLINE, 413), the lease routes (200, 409 IN_USE / NOT_OWNER / NOT_HELD,
403 for a non-admin force_release) and /openapi.json.  The contract is
docs/protocol.md ("REST API").
"""

import json
import socket
import threading
import time
import uuid

import pytest

import harness
from conftest import wait_until

EVT = "/lab/orchestrator/ndi/evt"


def dev_cmd(device_id):
    return "/lab/device/%s/ndi/cmd" % device_id


def dev_evt(device_id):
    return "/lab/device/%s/ndi/evt" % device_id


def ndi_config(settings=None):
    s = {"ack_timeout_s": 1, "mdns": False}
    s.update(settings or {})
    return {"plugins": [{"module": "ndi", "path": harness.NDI_PLUGIN, "settings": s}]}


class Device:
    """A test device: announces itself (meta, status, NDI module status),
    sees its NDI commands, and acks them when told to."""

    def __init__(self, make_mqtt, device_id, modules=("ndi",), online=True, ndi_status=None,
                 capabilities=None, register=True):
        self.id = device_id
        self.client = make_mqtt()
        self.client.subscribe(dev_cmd(device_id))
        self.modules = list(modules)
        self.capabilities = capabilities if capabilities is not None else \
            {"ndi": {"start_cmd_template": "ndi-viewer '{source}'"}}
        if register:
            self.register(online)
            if ndi_status is not None:
                self.module_status(ndi_status)

    def register(self, online=True):
        self.client.publish("/lab/device/%s/meta" % self.id, {
            "device_id": self.id, "modules": self.modules, "capabilities": self.capabilities,
            "labels": ["studio-a"], "version": "test", "ts": "2026-11-28T10:00:00Z"}, retain=True)
        self.set_status(online)

    def set_status(self, online):
        self.client.publish("/lab/device/%s/status" % self.id,
                            {"online": online, "ts": "2026-11-28T10:00:00Z", "device_id": self.id},
                            retain=True)

    def module_status(self, status):
        self.client.publish("/lab/device/%s/ndi/status" % self.id, status, retain=True)

    def next_cmd(self, timeout=5, since=0):
        return self.client.wait_for(dev_cmd(self.id), timeout=timeout, since=since)["payload"]

    def ack(self, req_id, ok=True, code="OK", error=None, details=None, action="start"):
        self.client.publish(dev_evt(self.id), {
            "req_id": req_id, "ok": ok, "code": code, "action": action, "actor": "orchestrator",
            "ts": "2026-11-28T10:00:01Z", "error": error, "details": details or {}})

    def auto_ack(self, **kw):
        """Acks every command as it arrives (in a background thread)."""
        stop = threading.Event()
        seen = set()

        def run():
            while not stop.is_set():
                for m in self.client.messages(dev_cmd(self.id)):
                    rid = m["payload"]["req_id"]
                    if rid not in seen:
                        seen.add(rid)
                        self.ack(rid, **kw)
                time.sleep(0.02)    # the poller's interval, not a wait

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return stop


def in_registry(host, device_id):
    return host.get("/api/devices/%s" % device_id)[0] == 200


def ndi_device(host, device_id):
    status, body = host.get("/api/ndi/devices")
    assert status == 200, body
    return {d["device_id"]: d for d in body["devices"]}.get(device_id)


def assert_error(resp, status, code, *needles):
    """An error reply: the status, JSON {"error": {"code", "message"}}, and
    each needle in the message."""
    got_status, body = resp
    assert got_status == status, resp
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code, body
    assert isinstance(err["message"], str) and err["message"], body
    for n in needles:
        assert n in err["message"], body
    return err


@pytest.fixture
def host(make_host):
    h = make_host(ndi_config({"sources": ["CAM-1", "CAM-2"]}))
    h.wait_connected()
    return h


@pytest.fixture
def device(host, make_mqtt):
    d = Device(make_mqtt, "rpi-01", ndi_status={
        "state": "running", "online": True, "ts": "2026-11-28T10:00:00Z",
        "fields": {"input": "CAM-1", "pid": 4242, "recording": False, "record_pid": None}})
    wait_until(lambda: in_registry(host, d.id), 5, msg="rpi-01 in the registry")
    return d


def send(host, body, wait=False, timeout=10):
    return host.post("/api/ndi/send" + ("?wait=1" if wait else ""), body, timeout=timeout)


# ---------------------------------------------------------------- GET routes


def test_status_is_the_registry_snapshot(host, device):
    def has_device():
        status, body = host.get("/api/ndi/status")
        return status == 200 and device.id in body.get("devices", {}) and body
    snap = wait_until(has_device, 5, msg="the snapshot to list rpi-01")
    assert {"devices", "locks", "modules", "ts"} <= set(snap)
    assert "ndi" in snap["modules"]
    assert snap["devices"][device.id]["modules"] == ["ndi"]


def test_status_shows_locks(host, device):
    assert host.post("/api/ndi/reserve", {"device_id": device.id, "actor": "alice"})[0] == 200

    def locked():
        body = host.get("/api/ndi/status")[1]
        return body.get("locks", {}).get("ndi:%s" % device.id)
    assert wait_until(locked, 5, msg="the lock in the snapshot")["holder"] == "alice"


def test_sources_names_and_detail(host):
    status, body = host.get("/api/ndi/sources")
    assert status == 200
    assert body == {"sources": ["CAM-1", "CAM-2"]}
    status, body = host.get("/api/ndi/sources?detail=1")
    assert status == 200
    assert body["mdns"] == "disabled"
    assert body["sources"] == [
        {"name": "CAM-1", "host": None, "address": None, "port": None, "origin": ["static"]},
        {"name": "CAM-2", "host": None, "address": None, "port": None, "origin": ["static"]}]


def test_devices_lists_ndi_devices_with_state_and_holder(host, device, make_mqtt):
    other = Device(make_mqtt, "cam-only", modules=["camera"])
    quiet = Device(make_mqtt, "rpi-02")      # no module status
    wait_until(lambda: in_registry(host, other.id) and in_registry(host, quiet.id), 5)
    wait_until(lambda: (ndi_device(host, device.id) or {}).get("input") == "CAM-1", 5,
               msg="rpi-01's module status")

    status, body = host.get("/api/ndi/devices")
    assert status == 200
    ids = [d["device_id"] for d in body["devices"]]
    assert ids == ["rpi-01", "rpi-02"]          # sorted, NDI devices only
    d = body["devices"][0]
    assert d["online"] is True and d["stale"] is False
    assert d["capabilities"] == {"start_cmd_template": "ndi-viewer '{source}'"}
    assert d["state"] == "running" and d["input"] == "CAM-1" and d["recording"] is False
    assert d["module_status"]["fields"]["pid"] == 4242
    assert d["holder"] is None and d["lease"] is None
    assert isinstance(d["last_seen"], str) and d["last_seen"].endswith("Z")
    q = body["devices"][1]
    assert q["input"] is None and q["recording"] is None and q["module_status"] is None

    assert host.post("/api/ndi/reserve", {"device_id": device.id, "actor": "bob",
                                          "lease_s": 120})[0] == 200
    d = ndi_device(host, device.id)
    assert d["holder"] == "bob"
    assert d["lease"]["holder"] == "bob" and 0 < d["lease"]["remaining_s"] <= 120

    # Recording state follows the module status topic; a cleared topic forgets it.
    device.module_status({"state": "running", "fields": {"input": "CAM-2", "recording": True}})
    wait_until(lambda: ndi_device(host, device.id)["recording"] is True, 5)
    assert ndi_device(host, device.id)["input"] == "CAM-2"
    device.module_status(b"")
    wait_until(lambda: ndi_device(host, device.id)["module_status"] is None, 5)


def test_devices_ids_lists_just_those(host, device, make_mqtt):
    """?ids= (for a page that saw a few devices change): the entries exactly
    as the whole list shows them; unknown ids and non-NDI devices left out."""
    other = Device(make_mqtt, "cam-only", modules=["camera"])
    quiet = Device(make_mqtt, "rpi-02")
    wait_until(lambda: in_registry(host, other.id) and in_registry(host, quiet.id), 5)
    wait_until(lambda: (ndi_device(host, device.id) or {}).get("input") == "CAM-1", 5)
    whole = host.get("/api/ndi/devices")[1]["devices"]
    status, body = host.get("/api/ndi/devices?ids=rpi-02,nobody,cam-only,rpi-01")
    assert status == 200
    assert body["devices"] == [whole[1], whole[0]], body
    status, body = host.get("/api/ndi/devices?ids=rpi-01,bad%2Fid")
    assert status == 400 and "ids[1]" in body["error"]["message"], body
    status, body = host.get("/api/ndi/devices?ids=" + ",".join("d%d" % i for i in range(101)))
    assert status == 400 and "ids: at most 100" in body["error"]["message"], body


def test_devices_ignores_bad_module_status(host, device, mqtt):
    wait_until(lambda: (ndi_device(host, device.id) or {}).get("input") == "CAM-1", 5)
    mqtt.publish("/lab/device/%s/ndi/status" % device.id, b"not json", retain=True)
    mqtt.publish("/lab/device/%s/ndi/status" % device.id, [1, 2], retain=True)
    mqtt.publish("/lab/device/bad%id/ndi/status", {"input": "x"})
    # A later good one still lands: the bad ones changed nothing.
    device.module_status({"state": "idle", "fields": {"input": None, "recording": False}})
    wait_until(lambda: ndi_device(host, device.id)["state"] == "idle", 5)
    assert ndi_device(host, device.id)["input"] is None


def test_devices_empty(host):
    assert host.get("/api/ndi/devices") == (200, {"devices": []})


# ---------------------------------------------------------------- POST /send


def test_send_relays_like_the_mqtt_path(host, device, mqtt):
    mqtt.subscribe(EVT)
    mark = device.client.mark()
    status, ack = send(host, {"device_id": device.id, "action": "start", "source": "CAM-2",
                              "actor": "alice", "params": {"extra": [1]}})
    assert status == 202, ack
    assert ack["code"] == "DISPATCHED" and ack["ok"] is True
    assert ack["action"] == "start" and ack["actor"] == "alice"
    assert ack["details"] == {"device_id": device.id, "topic": dev_cmd(device.id)}
    cmd = device.next_cmd(since=mark)
    assert cmd["req_id"] == ack["req_id"]
    assert cmd["actor"] == "orchestrator" and cmd["requested_by"] == "alice"
    assert cmd["action"] == "start"
    assert cmd["params"] == {"device_id": device.id, "source": "CAM-2", "extra": [1]}
    # The DISPATCHED ack is published too, and the device's ack completes
    # the command on the evt topic, as for MQTT commands.
    first = mqtt.wait_for(EVT, lambda m: m["payload"]["req_id"] == ack["req_id"])["payload"]
    assert first == ack
    device.ack(ack["req_id"], details={"pid": 7})
    done = mqtt.wait_for(EVT, lambda m: m["payload"]["req_id"] == ack["req_id"] and
                         m["payload"]["code"] != "DISPATCHED")["payload"]
    assert done["code"] == "COMPLETED" and done["details"]["pid"] == 7


def test_send_defaults_action_start_and_actor_api(host, device):
    mark = device.client.mark()
    status, ack = send(host, {"device_id": device.id, "source": "CAM-1", "req_id": "my-id-1"})
    assert status == 202, ack
    assert ack["req_id"] == "my-id-1" and ack["action"] == "start" and ack["actor"] == "api"
    cmd = device.next_cmd(since=mark)
    assert cmd["req_id"] == "my-id-1" and cmd["requested_by"] == "api"


@pytest.mark.parametrize("action", ["stop", "set_input", "record_start", "record_stop"])
def test_send_other_actions(host, device, action):
    mark = device.client.mark()
    body = {"device_id": device.id, "action": action}
    if action in ("set_input", "record_start"):
        body["source"] = "CAM-2"
    status, ack = send(host, body)
    assert status == 202, ack
    assert device.next_cmd(since=mark)["action"] == action


def test_send_to_a_device_not_in_the_registry_is_relayed_with_a_warning(host):
    # As over MQTT and from a job (test_validation_parity.py): the agent may
    # be alive while the registry has not heard its meta.
    status, ack = send(host, {"device_id": "nobody", "source": "CAM-1"})
    assert status == 202 and ack["code"] == "DISPATCHED", ack
    assert ack["warnings"][0].startswith("device_id: device nobody is not in the registry"), ack


@pytest.mark.parametrize("action", ["fly", "reserve", "release", "schedule"])
def test_send_unknown_action_is_400(host, device, action):
    assert_error(send(host, {"device_id": device.id, "action": action, "source": "CAM-1"}),
                 400, "BAD_ACTION", action)


def test_send_unseen_source_is_relayed_with_a_warning(host, device):
    # The device may see sources the host's discovery does not (issue 15):
    # relayed as over MQTT, the ack saying so (test_ndi_parity.py).
    mark = device.client.mark()
    status, ack = send(host, {"device_id": device.id, "source": "NOPE"})
    assert status == 202, ack
    assert len(ack["warnings"]) == 1 and '"NOPE"' in ack["warnings"][0], ack
    assert device.next_cmd(since=mark)["params"]["source"] == "NOPE"
    status, ack = send(host, {"device_id": device.id, "source": "CAM-2"})
    assert status == 202 and "warnings" not in ack, ack


def test_any_source_goes_when_none_are_known(make_host, make_mqtt):
    h = make_host(ndi_config())
    h.wait_connected()
    d = Device(make_mqtt, "rpi-09")
    wait_until(lambda: in_registry(h, d.id), 5)
    assert h.get("/api/ndi/sources") == (200, {"sources": []})
    status, ack = send(h, {"device_id": d.id, "source": "ANYTHING (At all)"})
    assert status == 202, ack
    assert "ANYTHING (At all)" in ack["warnings"][0], ack
    assert d.next_cmd()["params"]["source"] == "ANYTHING (At all)"


def test_send_missing_source_names_it(host, device):
    assert_error(send(host, {"device_id": device.id, "action": "start"}), 400, "BAD_REQUEST",
                 "source")


def test_send_denied_when_another_actor_holds_the_lease(host, device):
    assert host.post("/api/ndi/reserve", {"device_id": device.id, "actor": "alice"})[0] == 200
    err = assert_error(send(host, {"device_id": device.id, "source": "CAM-1", "actor": "bob"}),
                       409, "DENIED", "alice")
    assert err["details"]["holder"] == "alice" and err["req_id"]
    # The default requester ("api") is someone else too.
    assert_error(send(host, {"device_id": device.id, "source": "CAM-1"}), 409, "DENIED")
    # The holder passes.
    status, ack = send(host, {"device_id": device.id, "source": "CAM-1", "actor": "alice"})
    assert status == 202, ack


def test_send_lease_taken_over_mqtt_holds_for_rest(host, device, mqtt):
    mqtt.subscribe(EVT)
    mqtt.publish("/lab/orchestrator/ndi/cmd", {"req_id": "r1", "actor": "app", "action": "reserve",
                                               "params": {"device_id": device.id}})
    assert mqtt.wait_for(EVT, lambda m: m["payload"]["req_id"] == "r1")["payload"]["code"] == "OK"
    assert_error(send(host, {"device_id": device.id, "source": "CAM-1"}), 409, "DENIED", "app")
    assert send(host, {"device_id": device.id, "source": "CAM-1", "actor": "app"})[0] == 202


def test_send_offline_is_409(host, device):
    device.set_status(False)
    wait_until(lambda: ndi_device(host, device.id)["online"] is False, 5)
    err = assert_error(send(host, {"device_id": device.id, "source": "CAM-1"}), 409, "OFFLINE",
                       "offline")
    assert err["details"]["device_id"] == device.id


def test_send_same_req_id_in_flight_is_400(host, device):
    body = {"device_id": device.id, "source": "CAM-1", "req_id": "dup-1"}
    assert send(host, body)[0] == 202
    assert_error(send(host, body), 400, "BAD_REQUEST", "dup-1")


# ---------------------------------------------------------------- ?wait=1


def test_wait_returns_the_completed_ack(host, device):
    stop = device.auto_ack(details={"pid": 4243, "input": "CAM-1"})
    try:
        status, ack = send(host, {"device_id": device.id, "source": "CAM-1", "actor": "alice"},
                           wait=True)
    finally:
        stop.set()
    assert status == 200, ack
    assert ack["code"] == "COMPLETED" and ack["ok"] is True and ack["req_id"]
    assert ack["actor"] == "alice" and ack["action"] == "start"
    assert ack["details"] == {"pid": 4243, "input": "CAM-1", "device_id": device.id}


def test_wait_failed_is_502_with_the_device_code(host, device):
    stop = device.auto_ack(ok=False, code="MODULE_ERROR", error="viewer crashed")
    try:
        resp = send(host, {"device_id": device.id, "source": "CAM-1"}, wait=True)
    finally:
        stop.set()
    err = assert_error(resp, 502, "FAILED", "MODULE_ERROR", "viewer crashed")
    assert err["details"]["device_code"] == "MODULE_ERROR"
    assert err["details"]["device_error"] == "viewer crashed"


def test_wait_timeout_is_504(host, device):
    t0 = time.monotonic()
    err = assert_error(send(host, {"device_id": device.id, "source": "CAM-1"}, wait=True), 504,
                       "TIMEOUT")
    assert 0.8 < time.monotonic() - t0 < 5
    assert err["details"]["device_id"] == device.id and err["req_id"]


def test_wait_refused_command_answers_at_once(host, device):
    assert host.post("/api/ndi/reserve", {"device_id": device.id, "actor": "alice"})[0] == 200
    assert_error(send(host, {"device_id": device.id, "source": "CAM-1"}, wait=True), 409, "DENIED")


def test_wait_client_leaving_is_harmless(host, device, mqtt):
    """The client gives up before the device acks: the command stays tracked
    (its event is still published) and the host keeps working."""
    mqtt.subscribe(EVT)
    mark = device.client.mark()
    body = json.dumps({"device_id": device.id, "source": "CAM-1", "req_id": "gone-1"}).encode()
    s = socket.create_connection(("127.0.0.1", host.http_port))
    s.sendall(b"POST /api/ndi/send?wait=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
              b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert device.next_cmd(since=mark)["req_id"] == "gone-1"
    s.close()
    # Nothing to wait for: the host does not watch a request it holds open,
    # so it learns the client left when it answers (here, at the ack).
    device.ack("gone-1")
    ev = mqtt.wait_for(EVT, lambda m: m["payload"]["req_id"] == "gone-1" and
                       m["payload"]["code"] != "DISPATCHED")["payload"]
    assert ev["code"] == "COMPLETED"
    # And the next waiter is answered normally.
    stop = device.auto_ack()
    try:
        assert send(host, {"device_id": device.id, "source": "CAM-1"}, wait=True)[0] == 200
    finally:
        stop.set()


def test_wait_client_leaving_then_timeout(host, device, mqtt):
    mqtt.subscribe(EVT)
    body = json.dumps({"device_id": device.id, "source": "CAM-1", "req_id": "gone-2"}).encode()
    s = socket.create_connection(("127.0.0.1", host.http_port))
    s.sendall(b"POST /api/ndi/send?wait=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
              b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    device.next_cmd()
    s.close()
    # Past ack_timeout_s: the TIMEOUT finds nobody waiting.
    mqtt.wait_for(EVT, lambda m: m["payload"]["req_id"] == "gone-2" and
                  m["payload"]["code"] == "TIMEOUT", timeout=10)
    assert host.get("/healthz")[0] == 200


def test_many_waiters_at_once(host, device):
    stop = device.auto_ack()
    results = []

    def one(i):
        results.append(send(host, {"device_id": device.id, "source": "CAM-1",
                                   "req_id": "many-%d" % i}, wait=True))
    try:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        stop.set()
    assert sorted(r[1]["req_id"] for r in results) == sorted("many-%d" % i for i in range(8))
    assert all(r[0] == 200 and r[1]["code"] == "COMPLETED" for r in results), results


def test_unloading_the_plugin_answers_waiters(make_host, make_mqtt):
    h = make_host(ndi_config({"ack_timeout_s": 30}))
    h.wait_connected()
    d = Device(make_mqtt, "rpi-05")
    wait_until(lambda: in_registry(h, d.id), 5)
    out = {}

    def waiter():
        out["resp"] = send(h, {"device_id": d.id, "source": "CAM-1"}, wait=True, timeout=20)
    t = threading.Thread(target=waiter)
    t.start()
    d.next_cmd()
    assert h.delete("/api/plugins/ndi")[0] == 200
    t.join(10)
    assert_error(out["resp"], 503, "UNAVAILABLE")
    assert h.get("/api/ndi/devices")[0] == 404


# ---------------------------------------------------------------- bad bodies


@pytest.mark.parametrize("path", ["/api/ndi/send", "/api/ndi/reserve", "/api/ndi/renew",
                                  "/api/ndi/release", "/api/ndi/force_release"])
def test_malformed_bodies_are_400_naming_the_problem(host, path):
    assert_error(host.post(path), 400, "BAD_REQUEST", "body")
    assert_error(host.post(path, [1, 2]), 400, "BAD_REQUEST", "body")
    status, _, text = host.request("POST", path, raw='{"device_id": ',
                                   headers={"Content-Type": "application/json"})
    assert_error((status, json.loads(text)), 400, "BAD_JSON", "line 1")
    assert_error(host.post(path, {}), 400, "BAD_REQUEST", "device_id: missing")
    assert_error(host.post(path, {"device_id": 5}), 400, "BAD_REQUEST", "device_id", "string")
    assert_error(host.post(path, {"device_id": "rpi-01", "actor": 3}), 400, "BAD_REQUEST", "actor")
    assert_error(host.post(path, {"device_id": "rpi-01", "actor": ""}), 400, "BAD_REQUEST",
                 "actor")
    assert_error(host.post(path, {"device_id": "rpi-01", "devise": "x"}), 400, "BAD_REQUEST",
                 "devise: unknown key")
    assert_error(host.post(path, {"device_id": "a/b"}), 400, "BAD_REQUEST", "device_id")


def test_send_specific_bad_fields(host, device):
    assert_error(send(host, {"device_id": device.id, "source": 5}), 400, "BAD_REQUEST", "source")
    assert_error(send(host, {"device_id": device.id, "params": []}), 400, "BAD_REQUEST", "params")
    assert_error(send(host, {"device_id": device.id, "action": 1}), 400, "BAD_REQUEST", "action")
    assert_error(send(host, {"device_id": "x" * 65}), 400, "BAD_REQUEST", "device_id")


def test_lease_specific_bad_fields(host):
    assert_error(host.post("/api/ndi/reserve", {"device_id": "rpi-01", "lease_s": "60"}), 400,
                 "BAD_REQUEST", "lease_s")
    assert_error(host.post("/api/ndi/reserve", {"device_id": "rpi-01", "lease_s": 0}), 400,
                 "BAD_REQUEST", "lease_s")
    assert_error(host.post("/api/ndi/reserve", {"device_id": "rpi-01", "lease_s": 1e12}), 400,
                 "BAD_REQUEST", "lease_s")
    assert_error(host.post("/api/ndi/release", {"device_id": "rpi-01", "lease_s": 5}), 400,
                 "BAD_REQUEST", "lease_s: unknown key")


def test_body_over_the_limit_is_413(make_host):
    h = make_host(dict(ndi_config(), http={"max_body_bytes": 1024}))
    h.wait_connected()
    big = {"device_id": "rpi-01", "params": {"pad": "x" * 4096}}
    assert_error(h.post("/api/ndi/send", big), 413, "TOO_LARGE")
    assert_error(h.post("/api/ndi/reserve", big), 413, "TOO_LARGE")


def test_wrong_method_and_path(host):
    status, body = host.get("/api/ndi/send")
    assert status == 405 and body["error"]["code"] == "METHOD_NOT_ALLOWED"
    status, body = host.post("/api/ndi/devices", {})
    assert status == 405
    assert host.get("/api/ndi/nothing")[0] == 404


# ---------------------------------------------------------------- leases


def test_reserve_renew_release(host):
    status, ack = host.post("/api/ndi/reserve", {"device_id": "rpi-01", "actor": "alice",
                                                 "lease_s": 90, "req_id": "res-1"})
    assert status == 200, ack
    assert ack["code"] == "OK" and ack["ok"] is True and ack["req_id"] == "res-1"
    assert ack["details"]["holder"] == "alice" and ack["details"]["lease_s"] == 90
    # The same actor again extends it.
    status, ack = host.post("/api/ndi/reserve", {"device_id": "rpi-01", "actor": "alice"})
    assert status == 200 and ack["details"]["lease_s"] == 60      # default_lease_s

    err = assert_error(host.post("/api/ndi/reserve", {"device_id": "rpi-01", "actor": "bob"}),
                       409, "IN_USE", "alice")
    assert err["details"]["holder"] == "alice" and err["details"]["remaining_s"] > 0

    status, ack = host.post("/api/ndi/renew", {"device_id": "rpi-01", "actor": "alice",
                                               "lease_s": 30})
    assert status == 200 and ack["details"]["lease_s"] == 30
    assert_error(host.post("/api/ndi/renew", {"device_id": "rpi-01", "actor": "bob"}), 409,
                 "NOT_OWNER", "alice")
    assert_error(host.post("/api/ndi/release", {"device_id": "rpi-01"}), 409, "NOT_OWNER")

    status, ack = host.post("/api/ndi/release", {"device_id": "rpi-01", "actor": "alice"})
    assert status == 200 and ack["code"] == "OK"
    assert_error(host.post("/api/ndi/release", {"device_id": "rpi-01", "actor": "alice"}), 409,
                 "NOT_HELD")
    assert_error(host.post("/api/ndi/renew", {"device_id": "rpi-01", "actor": "alice"}), 409,
                 "NOT_HELD")


def test_default_actor_is_api(host):
    status, ack = host.post("/api/ndi/reserve", {"device_id": "rpi-03"})
    assert status == 200 and ack["details"]["holder"] == "api" and ack["actor"] == "api"
    assert host.post("/api/ndi/release", {"device_id": "rpi-03"})[0] == 200


def test_rest_lease_is_seen_by_mqtt(host, mqtt):
    mqtt.subscribe(EVT)
    assert host.post("/api/ndi/reserve", {"device_id": "rpi-04", "actor": "alice"})[0] == 200
    mqtt.publish("/lab/orchestrator/ndi/cmd", {"req_id": "m1", "actor": "bob", "action": "reserve",
                                               "params": {"device_id": "rpi-04"}})
    ev = mqtt.wait_for(EVT, lambda m: m["payload"]["req_id"] == "m1")["payload"]
    assert ev["code"] == "IN_USE" and ev["details"]["holder"] == "alice"


def test_force_release(host):
    assert host.post("/api/ndi/reserve", {"device_id": "rpi-01", "actor": "alice"})[0] == 200
    status, ack = host.post("/api/ndi/force_release", {"device_id": "rpi-01", "actor": "ops"})
    assert status == 200, ack
    assert ack["details"]["previous_holder"] == "alice" and ack["details"]["released_by"] == "ops"
    assert_error(host.post("/api/ndi/force_release", {"device_id": "rpi-01"}), 409, "NOT_HELD")


def test_force_release_by_a_non_admin_is_403(make_host):
    h = make_host(ndi_config({"admins": ["root"]}))
    h.wait_connected()
    assert h.post("/api/ndi/reserve", {"device_id": "rpi-01", "actor": "alice"})[0] == 200
    assert_error(h.post("/api/ndi/force_release", {"device_id": "rpi-01", "actor": "mallory"}),
                 403, "DENIED", "mallory")
    assert h.post("/api/ndi/force_release", {"device_id": "rpi-01", "actor": "root"})[0] == 200


# ---------------------------------------------------------------- OpenAPI


NDI_ROUTES = [("get", "/api/ndi/status"), ("get", "/api/ndi/sources"),
              ("get", "/api/ndi/devices"), ("post", "/api/ndi/send"),
              ("post", "/api/ndi/reserve"), ("post", "/api/ndi/renew"),
              ("post", "/api/ndi/release"), ("post", "/api/ndi/force_release")]


def test_openapi_describes_the_ndi_routes(host):
    status, doc = host.get("/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.")
    for method, path in NDI_ROUTES:
        op = doc["paths"][path][method]
        assert op["summary"] and op["summary"] != path, (method, path, op)
        assert op["tags"] == ["ndi"]
        assert "200" in op["responses"] or "202" in op["responses"], op
        for code, resp in op["responses"].items():
            assert resp["description"], (path, code)
    send_op = doc["paths"]["/api/ndi/send"]["post"]
    assert {"200", "202", "400", "409", "413", "502", "504"} <= set(send_op["responses"])
    # A device the registry does not know is relayed with a warning, not 404.
    assert "404" not in send_op["responses"]
    assert send_op["requestBody"]["content"]["application/json"]["schema"]["required"] == \
        ["device_id"]
    assert [p["name"] for p in send_op["parameters"]] == ["wait"]
    assert {"400", "409"} <= set(doc["paths"]["/api/ndi/reserve"]["post"]["responses"])
    assert "403" in doc["paths"]["/api/ndi/force_release"]["post"]["responses"]
    # Every route is described, the core's and the plugin's alike.
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op.get("summary"), (method, path)


def test_ui_page_is_served(host):
    status, _, text = host.request("GET", "/ui/ndi")
    assert status == 200
    assert 'id="ndi-device"' in text and "/ui/ndi/page.js" in text
    status, headers, js = host.request("GET", "/ui/ndi/page.js")
    assert status == 200 and "javascript" in headers["Content-Type"]
    assert "innerHTML" not in js


def test_plugin_comes_from_the_configured_path(make_host):
    """The same tests run with builtin:ndi and with build/plugins/ndi.so
    (OH_NDI_PLUGIN=so): the host really loaded the one asked for."""
    h = make_host(ndi_config())
    status, body = h.get("/api/plugins")
    assert status == 200, body
    ndi = [p for p in body["plugins"] if p["module"] == "ndi"]
    assert ndi and ndi[0]["loaded"] is True and ndi[0]["path"] == harness.NDI_PLUGIN, ndi
    assert ("from %s" % harness.NDI_PLUGIN) in h.log()
