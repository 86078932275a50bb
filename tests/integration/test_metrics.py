"""
GET /metrics: Prometheus text exposition of the host's counters, after some
MQTT and HTTP traffic; and --log-format json lines.
"""

import json
import re

from conftest import wait_until

# One sample line: name{labels} value
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*)?\})? '
                    r'(-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$')


def parse(text):
    """{(name, frozenset(labels)): value}, checking every line's syntax and
    that every sample follows its family's # TYPE."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in types, "family %s declared twice" % name
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, "not an exposition line: %r" % line
        name = m.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or family in types, "sample before its # TYPE: %r" % line
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^"\\])*)"',
                                      m.group(3) or ""))
        samples[(name, labels)] = float(m.group(7))
    return samples, types


def get(host):
    status, headers, text = host.request("GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert text.endswith("\n")
    return parse(text)


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_move_with_traffic(make_host, mqtt):
    host = make_host()
    host.wait_connected()
    before, types = get(host)
    for name, kind in [("oh_mqtt_messages_received_total", None),
                       ("oh_http_requests_total", "counter"),
                       ("oh_mqtt_reconnects_total", "counter"),
                       ("oh_leases_held", "gauge"),
                       ("oh_snapshot_publishes_total", "counter"),
                       ("oh_snapshot_bytes_total", "counter"),
                       ("oh_scheduler_jobs_scheduled_total", "counter"),
                       ("oh_scheduler_jobs_fired_total", "counter"),
                       ("oh_scheduler_jobs_missed_total", "counter"),
                       ("oh_mqtt_connected", "gauge")]:
        if kind:
            assert types.get(name) == kind, name
    assert value(before, "oh_mqtt_connected") == 1

    mqtt.publish("/lab/device/rpi-01/meta", {"modules": ["ndi"]}, retain=True)
    mqtt.publish("/lab/device/rpi-01/status", {"online": True}, retain=True)
    wait_until(lambda: host.get("/api/devices/rpi-01")[0] == 200, 5, msg="device registered")
    host.get("/api/devices/rpi-01")
    host.get("/no/such/path")
    host.get("/api/devices/nobody")
    mqtt.subscribe("/lab/orchestrator/ndi/evt")
    mqtt.publish("/lab/orchestrator/ndi/cmd", {"req_id": "m1", "actor": "alice",
                                               "action": "reserve",
                                               "params": {"device_id": "rpi-01", "lease_s": 60}})
    mqtt.wait_for("/lab/orchestrator/ndi/evt", lambda m: m["payload"].get("req_id") == "m1")

    def moved():
        after, types = get(host)
        done = (value(after, "oh_leases_held") == 1 and value(after, "oh_snapshot_publishes_total")
                > value(before, "oh_snapshot_publishes_total"))
        return after, types if done else None
    after, types = wait_until(lambda: (lambda r: r if r[1] else None)(moved()), 5,
                              msg="lease gauge and snapshot counter to move")

    assert value(after, "oh_mqtt_messages_received_total", kind="registry") >= 2
    assert value(after, "oh_mqtt_messages_received_total", kind="command") >= 1
    assert value(after, "oh_mqtt_messages_sent_total", kind="snapshot") >= 1
    assert value(after, "oh_mqtt_messages_sent_total", kind="event") >= 1
    assert value(after, "oh_snapshot_publishes_total") > value(before, "oh_snapshot_publishes_total")
    assert value(after, "oh_snapshot_bytes_total") > value(before, "oh_snapshot_bytes_total")
    assert value(after, "oh_devices") == 1
    # HTTP by route pattern, never the raw path; unknown paths as "unmatched".
    assert value(after, "oh_http_requests_total", method="GET", route="/api/devices/{id}",
                 code="200") >= 2
    assert value(after, "oh_http_requests_total", method="GET", route="/api/devices/{id}",
                 code="404") == 1
    assert value(after, "oh_http_requests_total", method="GET", route="unmatched", code="404") == 1
    assert value(after, "oh_http_requests_total", method="GET", route="/metrics", code="200") >= 1
    assert not any("nobody" in v or "no/such" in v
                   for (_, labels) in after for (_, v) in labels)
    # The NDI plugin's own counters: every ack by code.
    assert types.get("oh_ndi_commands_total") == "counter"
    assert value(after, "oh_ndi_commands_total", code="OK") >= 1


def test_relay_latency_histogram(make_host, mqtt):
    host = make_host()
    host.wait_connected()
    mqtt.publish("/lab/device/rpi-02/meta", {"modules": ["ndi"]}, retain=True)
    mqtt.publish("/lab/device/rpi-02/status", {"online": True}, retain=True)
    wait_until(lambda: host.get("/api/devices/rpi-02")[0] == 200, 5, msg="device registered")
    mqtt.subscribe("/lab/device/rpi-02/ndi/cmd")
    mqtt.subscribe("/lab/orchestrator/ndi/evt")
    mqtt.publish("/lab/orchestrator/ndi/cmd", {"req_id": "h1", "actor": "bob", "action": "start",
                                               "params": {"device_id": "rpi-02", "source": "CAM"}})
    mqtt.wait_for("/lab/device/rpi-02/ndi/cmd")
    mqtt.publish("/lab/device/rpi-02/ndi/evt", {"req_id": "h1", "ok": True, "code": "OK",
                                                "device_id": "rpi-02", "details": {}})
    mqtt.wait_for("/lab/orchestrator/ndi/evt", lambda m: m["payload"].get("code") == "COMPLETED")
    samples, types = get(host)
    assert types.get("oh_ndi_relay_latency_seconds") == "histogram"
    count = value(samples, "oh_ndi_relay_latency_seconds_count")
    assert count == 1
    assert value(samples, "oh_ndi_relay_latency_seconds_bucket", le="+Inf") == count
    assert value(samples, "oh_ndi_relay_latency_seconds_bucket", le="10") == count
    assert 0 < value(samples, "oh_ndi_relay_latency_seconds_sum") < 10
    buckets = sorted((float(dict(l)["le"]), v) for (n, l), v in samples.items()
                     if n == "oh_ndi_relay_latency_seconds_bucket" and dict(l)["le"] != "+Inf")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets), "buckets must be cumulative"
    assert value(samples, "oh_ndi_commands_total", code="DISPATCHED") == 1
    assert value(samples, "oh_ndi_commands_total", code="COMPLETED") == 1
    # One line per command outcome with req_id, actor, device and result.
    lines = [l for l in host.log().splitlines() if "h1" in l and "COMPLETED" in l]
    assert len(lines) == 1, lines
    assert "bob" in lines[0] and "rpi-02" in lines[0]


def test_every_command_is_logged_once(make_host, mqtt):
    host = make_host({"plugins": [{"module": "ndi", "path": "builtin:ndi",
                                   "settings": {"ack_timeout_s": 1}}]})
    host.wait_connected()
    mqtt.publish("/lab/device/rpi-03/meta", {"modules": ["ndi"]}, retain=True)
    mqtt.publish("/lab/device/rpi-03/status", {"online": True}, retain=True)
    wait_until(lambda: host.get("/api/devices/rpi-03")[0] == 200, 5, msg="device registered")
    mqtt.subscribe("/lab/orchestrator/ndi/evt")

    def cmd(req_id, actor, action, params):
        mqtt.publish("/lab/orchestrator/ndi/cmd", {"req_id": req_id, "actor": actor,
                                                   "action": action, "params": params})

    cmd("l-lease", "alice", "reserve", {"device_id": "rpi-03", "lease_s": 60})
    cmd("l-denied", "bob", "stop", {"device_id": "rpi-03"})
    cmd("l-bad", "bob", "start", {"device_id": "rpi-03"})           # no source
    cmd("l-timeout", "alice", "stop", {"device_id": "rpi-03"})      # nobody acks
    st, body = host.post("/api/ndi/send", {"device_id": "rpi-03", "action": "stop",
                                            "actor": "alice"})
    assert st == 202, body
    rest_id = body["req_id"]
    for rid in ("l-timeout", rest_id):
        mqtt.wait_for("/lab/orchestrator/ndi/evt", lambda m, r=rid: m["payload"].get("req_id") == r
                      and m["payload"].get("code") == "TIMEOUT", timeout=5)
    expected = {"l-lease": ("alice", "OK"), "l-denied": ("bob", "DENIED"),
                "l-bad": ("bob", "BAD_REQUEST"), "l-timeout": ("alice", "TIMEOUT"),
                rest_id: ("alice", "TIMEOUT")}
    log = host.log().splitlines()
    for rid, (actor, result) in expected.items():
        lines = [l for l in log if "command req_id=%s " % rid in l]
        assert len(lines) == 1, (rid, lines)
        assert "actor=%s " % actor in lines[0] and "device=rpi-03 " in lines[0], lines[0]
        assert lines[0].endswith("result=%s" % result), lines[0]


def test_json_log_lines(make_host):
    host = make_host(args=["--log-format", "json"])
    host.wait_connected()
    host.get("/no/such/path")
    host.stop()
    lines = [l for l in host.log().splitlines() if l and not l.startswith("=== ")]
    assert lines
    for line in lines:
        doc = json.loads(line)
        for key in ("ts", "level", "source", "msg"):
            assert key in doc, (key, line)
