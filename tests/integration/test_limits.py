"""
Bounded under pressure: every table a client can grow has a cap from the
host's `limits`, a refusal naming it, and a count in
oh_limit_refusals_total{limit}; what is already held is not disturbed.

  devices          limits.max_devices, limits.max_device_bytes (dropped, logged)
  pending commands limits.max_pending, limits.max_pending_per_device (LIMIT, 429)
  leases           limits.max_leases (LIMIT, 507)
  jobs             limits.max_jobs, limits.max_jobs_per_actor (LIMIT, 507)

and the config keys (errors naming them), the metric's labels, and memory:
RSS before and after a burst of 50,000 commands to a device that never
answers, once they timed out and the host trimmed its heap.
"""

import json
import os
import re
import time
import uuid

import pytest

import harness
from conftest import wait_until
from harness import rss_kb, sanitized

CMD = "/lab/orchestrator/ndi/cmd"
EVT = "/lab/orchestrator/ndi/evt"
LIMIT_NAMES = ["max_devices", "max_device_bytes", "max_pending", "max_pending_per_device",
               "max_leases", "max_jobs", "max_jobs_per_actor", "max_sse_clients", "max_sse_backlog_bytes",
               "max_http_connections", "max_http_connections_per_client"]


def rid():
    return uuid.uuid4().hex[:12]


def refusals(host):
    """{limit: count} from GET /metrics."""
    status, _, text = host.request("GET", "/metrics")
    assert status == 200
    out = {}
    for m in re.finditer(r'^oh_limit_refusals_total\{limit="([a-z_]+)"\} ([0-9.e+]+)$', text,
                         re.M):
        out[m.group(1)] = float(m.group(2))
    return out


class App:
    """Publishes command envelopes and finds the host's acks for them."""

    def __init__(self, host, mqtt):
        self.host = host
        self.mqtt = mqtt
        mqtt.subscribe(EVT)
        wait_until(self._probe, 10, 0.1, "the host to answer commands")

    def _probe(self):
        req_id = "probe-" + rid()
        self.send("release", {"device_id": "probe"}, req_id=req_id)
        try:
            return self.ack(req_id, timeout=0.5)
        except AssertionError:
            return None

    def send(self, action, params, actor="app", req_id=None):
        env = {"req_id": req_id or rid(), "actor": actor, "action": action, "params": params}
        self.mqtt.publish(CMD, env)
        return env["req_id"]

    def ack(self, req_id, code=None, timeout=5):
        m = self.mqtt.wait_for(EVT, lambda m: m["payload"]["req_id"] == req_id and
                               (code is None or m["payload"]["code"] == code), timeout)
        return m["payload"]

    def run(self, action, params, actor="app"):
        return self.ack(self.send(action, params, actor=actor))


def check_limit_ack(ack, limit, value):
    assert ack["code"] == "LIMIT" and ack["ok"] is False, ack
    assert ack["details"]["limit"] == limit and ack["details"]["value"] == value, ack
    assert ack["error"].startswith("limits.%s (%d) reached" % (limit, value)), ack


def register(mqtt, host, device_id, extra=None):
    meta = {"device_id": device_id, "modules": ["ndi"]}
    meta.update(extra or {})
    mqtt.publish("/lab/device/%s/meta" % device_id, meta, retain=True)
    mqtt.publish("/lab/device/%s/status" % device_id, {"online": True}, retain=True)
    wait_until(lambda: host.get("/api/devices/%s" % device_id)[0] == 200, 5,
               msg="%s registered" % device_id)


# ---- config -------------------------------------------------------------------


def test_config_errors_name_the_key(make_host):
    host = make_host(start=False)
    base = dict(host.config)
    for limits, needle in [
            ({"max_devices": 0}, "limits.max_devices: expected an integer from 1 to 10000000"),
            ({"max_pending": "lots"}, "limits.max_pending: expected an integer from 1 to"),
            ({"max_jobs": 2.5}, "limits.max_jobs: expected an integer from 1 to"),
            ({"max_lease": 5}, "limits.max_lease: unknown key")]:
        host.write_config(harness.deep_merge(base, {"limits": limits}))
        cp = host.run(["--config", host.config_path, "--check-config"])
        assert cp.returncode != 0, limits
        assert needle in cp.stderr + cp.stdout, (limits, cp.stderr)
    # null is absence (docs/plugins.md, "Validating JSON"): the default.
    host.write_config(harness.deep_merge(base, {"limits": {"max_devices": 5, "max_leases": None}}))
    cp = host.run(["--config", host.config_path, "--check-config"])
    assert cp.returncode == 0, cp.stderr


def test_every_limit_reads_zero_in_metrics(make_host):
    host = make_host()
    counts = refusals(host)
    for name in LIMIT_NAMES:
        assert counts.get(name) == 0, (name, counts)


# ---- the registry --------------------------------------------------------------


def test_max_devices(make_host, mqtt):
    host = make_host({"limits": {"max_devices": 3}})
    host.wait_connected()
    for d in ("d1", "d2", "d3"):
        register(mqtt, host, d)
    mqtt.publish("/lab/device/d4/meta", {"device_id": "d4", "modules": ["ndi"]}, retain=True)
    mqtt.publish("/lab/device/d5/status", {"online": True}, retain=True)
    wait_until(lambda: refusals(host)["max_devices"] >= 2, 5, msg="two refusals counted")
    assert host.get("/api/devices/d4")[0] == 404
    assert host.get("/api/devices/d5")[0] == 404
    assert sorted(host.get("/api/registry")[1]["devices"]) == ["d1", "d2", "d3"]
    assert "limits.max_devices (3) reached" in host.log()

    # Those held still take updates.
    mqtt.publish("/lab/device/d2/status", {"online": False, "note": "kept"}, retain=True)
    wait_until(lambda: host.get("/api/devices/d2")[1].get("note") == "kept", 5,
               msg="d2 updated")
    # A removed device makes room.
    mqtt.publish("/lab/device/d3/meta", b"", retain=True)
    wait_until(lambda: host.get("/api/devices/d3")[0] == 404, 5, msg="d3 removed")
    mqtt.publish("/lab/device/d6/meta", {"device_id": "d6", "modules": ["ndi"]}, retain=True)
    wait_until(lambda: host.get("/api/devices/d6")[0] == 200, 5, msg="d6 admitted")


def test_max_device_bytes(make_host, mqtt):
    host = make_host({"limits": {"max_device_bytes": 2048}})
    host.wait_connected()
    register(mqtt, host, "big", {"labels": ["studio-a"]})
    before = host.get("/api/devices/big")[1]

    # Growing past 2048 bytes: dropped whole, the document as it was.
    mqtt.publish("/lab/device/big/status", {"online": True, "blob": "x" * 3000, "small": 1},
                 retain=True)
    wait_until(lambda: refusals(host)["max_device_bytes"] >= 1, 5, msg="refusal counted")
    doc = host.get("/api/devices/big")[1]
    assert "blob" not in doc and "small" not in doc
    assert doc["labels"] == before["labels"] and doc["modules"] == ["ndi"]
    assert re.search(r"limits\.max_device_bytes \(2048\) reached: the document of big would "
                     r"be \d+ bytes", host.log())

    # Growth in small steps stops at the limit, wherever it is reached.
    for i in range(40):
        mqtt.publish("/lab/device/big/status", {"online": True, "k%02d" % i: "y" * 80})
    wait_until(lambda: refusals(host)["max_device_bytes"] >= 2, 5, msg="second refusal")
    doc = host.get("/api/devices/big")[1]
    assert len(json.dumps(doc, separators=(",", ":"))) <= 2048 + 80  # + last_seen, stale
    kept = [k for k in doc if k.startswith("k")]
    assert 10 < len(kept) < 40, kept
    # Replacing a value with a smaller one always fits.
    mqtt.publish("/lab/device/big/status", {"online": True, "k00": "z"})
    wait_until(lambda: host.get("/api/devices/big")[1]["k00"] == "z", 5, msg="k00 shrunk")

    # A new device whose first message is too large is not added at all.
    mqtt.publish("/lab/device/huge/meta", {"modules": ["ndi"], "blob": "x" * 4000}, retain=True)
    wait_until(lambda: refusals(host)["max_device_bytes"] >= 3, 5, msg="third refusal")
    assert host.get("/api/devices/huge")[0] == 404
    assert sorted(host.get("/api/registry")[1]["devices"]) == ["big"]


# ---- pending commands ----------------------------------------------------------


def test_max_pending(make_host, mqtt, make_mqtt):
    host = make_host({"limits": {"max_pending": 5, "max_pending_per_device": 3},
                      "plugins": [{"module": "ndi", "path": "builtin:ndi",
                                   "settings": {"ack_timeout_s": 60}}]})
    host.wait_connected()
    for d in ("rpi-01", "rpi-02", "rpi-03"):
        register(mqtt, host, d)
    device = make_mqtt()
    device.subscribe("/lab/device/+/ndi/cmd")
    app = App(host, mqtt)

    sent = [app.send("start", {"device_id": "rpi-01", "source": "CAM-1"}) for _ in range(3)]
    for req_id in sent:
        assert app.ack(req_id)["code"] == "DISPATCHED"
    ack = app.run("start", {"device_id": "rpi-01", "source": "CAM-1"})
    check_limit_ack(ack, "max_pending_per_device", 3)
    assert ack["error"] == "limits.max_pending_per_device (3) reached for rpi-01"
    assert ack["details"]["device_id"] == "rpi-01"

    # Other devices still get theirs, up to 5 in all.
    for _ in range(2):
        assert app.run("stop", {"device_id": "rpi-02"})["code"] == "DISPATCHED"
    ack = app.run("stop", {"device_id": "rpi-03"})
    check_limit_ack(ack, "max_pending", 5)
    status, body = host.post("/api/ndi/send", {"device_id": "rpi-03", "action": "stop"})
    assert status == 429, body
    assert body["error"]["code"] == "LIMIT", body
    assert body["error"]["details"]["limit"] == "max_pending", body
    assert "limits.max_pending (5)" in body["error"]["message"]
    status, body = host.post("/api/ndi/send?wait=1", {"device_id": "rpi-01", "action": "stop"})
    assert status == 429 and body["error"]["details"]["limit"] == "max_pending", body

    # Nothing in flight was disturbed: the refused commands never reached a
    # device, and an ack for one sent before still completes it.
    relayed = {m["payload"]["req_id"] for m in device.messages("/lab/device/+/ndi/cmd")}
    assert set(sent) <= relayed and len(relayed) == 5, relayed
    device.publish("/lab/device/rpi-01/ndi/evt", {"req_id": sent[0], "ok": True, "code": "OK"})
    assert app.ack(sent[0], "COMPLETED")["ok"] is True
    # ...which makes room for one more.
    assert app.run("start", {"device_id": "rpi-01", "source": "CAM-2"})["code"] == "DISPATCHED"

    counts = refusals(host)
    assert counts["max_pending_per_device"] == 1, counts
    assert counts["max_pending"] == 3, counts


# ---- leases ---------------------------------------------------------------------


def test_max_leases(make_host, mqtt):
    host = make_host({"limits": {"max_leases": 2}})
    host.wait_connected()
    app = App(host, mqtt)
    for d in ("l1", "l2"):
        assert app.run("reserve", {"device_id": d, "lease_s": 300}, actor="alice")["code"] == "OK"
    ack = app.run("reserve", {"device_id": "l3", "lease_s": 300}, actor="bob")
    check_limit_ack(ack, "max_leases", 2)
    assert ack["details"]["device_id"] == "l3"
    status, body = host.post("/api/ndi/reserve", {"device_id": "l3", "actor": "bob"})
    assert status == 507, body
    assert body["error"]["code"] == "LIMIT" and body["error"]["details"]["limit"] == "max_leases"

    # The leases held are untouched and their holders keep using them.
    locks = host.get("/api/registry")[1]["locks"]
    assert sorted(locks) == ["ndi:l1", "ndi:l2"] and locks["ndi:l1"]["holder"] == "alice"
    assert app.run("renew", {"device_id": "l1", "lease_s": 200}, actor="alice")["code"] == "OK"
    assert app.run("reserve", {"device_id": "l2", "lease_s": 100}, actor="alice")["code"] == "OK"
    assert app.run("reserve", {"device_id": "l1"}, actor="bob")["code"] == "IN_USE"
    assert app.run("release", {"device_id": "l1"}, actor="alice")["code"] == "OK"
    assert app.run("reserve", {"device_id": "l3"}, actor="bob")["code"] == "OK"
    assert refusals(host)["max_leases"] == 2


# ---- jobs ------------------------------------------------------------------------


def schedule_params(name):
    return {"cron": "0 8 * * *", "name": name,
            "commands": [{"device_id": "rpi-01", "action": "start",
                          "params": {"source": "CAM-1"}}]}


def test_max_jobs(make_host, mqtt):
    host = make_host({"limits": {"max_jobs": 3, "max_jobs_per_actor": 2}})
    host.wait_connected()
    app = App(host, mqtt)
    ids = []
    for i in range(2):
        ack = app.run("schedule", schedule_params("a%d" % i), actor="alice")
        assert ack["code"] == "SCHEDULED", ack
        ids.append(ack["details"]["job_id"])
    ack = app.run("schedule", schedule_params("a2"), actor="alice")
    check_limit_ack(ack, "max_jobs_per_actor", 2)
    assert ack["error"] == "limits.max_jobs_per_actor (2) reached for alice"

    assert app.run("schedule", schedule_params("b0"), actor="bob")["code"] == "SCHEDULED"
    ack = app.run("schedule", schedule_params("c0"), actor="carol")
    check_limit_ack(ack, "max_jobs", 3)
    body = dict(schedule_params("c1"), actor="carol")
    status, reply = host.post("/api/ndi/jobs", body)
    assert status == 507, reply
    assert reply["error"]["code"] == "LIMIT" and reply["error"]["details"] == {
        "limit": "max_jobs", "value": 3}, reply

    # The jobs held are all there, and removing one makes room.
    status, listing = host.get("/api/ndi/jobs")
    assert status == 200 and listing["count"] == 3
    assert sorted(j["name"] for j in listing["jobs"]) == ["a0", "a1", "b0"]
    assert app.run("unschedule", {"job_id": ids[0]}, actor="alice")["code"] == "OK"
    assert app.run("schedule", schedule_params("a3"), actor="alice")["code"] == "SCHEDULED"
    counts = refusals(host)
    assert counts["max_jobs_per_actor"] == 1 and counts["max_jobs"] == 2, counts

    # Stored jobs come back after a restart, limit or not.
    host.restart()
    host.wait_connected()
    assert host.get("/api/ndi/jobs")[1]["count"] == 3


# ---- memory ---------------------------------------------------------------------






def test_memory_returns_after_a_burst(make_host, make_mqtt):
    """50,000 commands to a device that never answers: all pending, then all
    TIMEOUT, and the heap handed back to the system."""
    n = 50000
    host = make_host({"limits": {"max_pending": 100000, "max_pending_per_device": 100000},
                      "log_level": "warn",
                      "plugins": [{"module": "ndi", "path": "builtin:ndi",
                                   "settings": {"ack_timeout_s": 10}}]})
    host.wait_connected()
    app = make_mqtt()
    App(host, app)           # until commands are answered
    app.close()              # 100,000 acks are not this test's business
    pid = host.proc.pid
    time.sleep(0.5)    # a window for the start-up's memory to settle: no event says so
    before = rss_kb(pid)

    # One connection, 1000 in flight: as a paho client would send them.
    burst = ((CMD, '{"req_id": "burst-%d", "actor": "app", "action": "start", '
                   '"params": {"device_id": "silent-01", "source": "CAM-1"}}' % i)
             for i in range(n))
    harness.bulk_publish(app.host, app.port, burst, qos=1, window=1000, timeout=120)
    held = rss_kb(pid)
    # Every command times out 10 s after it was relayed.
    wait_until(lambda: timed_out(host) >= n, 120, 0.5, "every command to time out")
    # VmHWM and VmRSS are sampled separately by the kernel: take the larger.
    peak = max(held, rss_kb(pid, "VmHWM"))
    # The trim follows within a few seconds of the last timeout, once the
    # table is quiet; under ASan it never shows in RSS, so do not wait long.
    deadline = time.monotonic() + (3 if sanitized(host.binary) else 15)
    while rss_kb(pid) - before >= 8 * 1024 and time.monotonic() < deadline:
        time.sleep(0.25)    # the sampling interval: no event says when memory goes back
    after = rss_kb(pid)
    report = "RSS before %.1f MB, peak %.1f MB, after %.1f MB" % (
        before / 1024, peak / 1024, after / 1024)
    print(report)
    with open(os.path.join(host.workdir, "rss.txt"), "w") as f:
        f.write(report + "\n")
    assert refusals(host)["max_pending"] == 0
    if sanitized(host.binary):
        pytest.skip("RSS is not meaningful under ASan (%s)" % report)
    assert peak - before > 12 * 1024, report       # the burst really was held
    assert after - before < 8 * 1024, report        # and it went back


def timed_out(host):
    """TIMEOUT events published, from oh_ndi_commands_total."""
    status, _, text = host.request("GET", "/metrics")
    m = re.search(r'^oh_ndi_commands_total\{code="TIMEOUT"\} ([0-9.e+]+)$', text, re.M)
    return float(m.group(1)) if m else 0.0
