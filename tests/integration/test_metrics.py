"""
GET /metrics: Prometheus text exposition of the host's counters, after some
MQTT and HTTP traffic, checked strictly (exposition.py, in place of
promtool); the process_* metrics against /proc; HTTP refusals on a real
route labelled with that route; and --log-format json lines.
"""

import json
import os
import time

import pytest

from conftest import wait_until
from exposition import check
from test_big_registry import rss_kb

def get(host):
    status, headers, text = host.request("GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return check(text)


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
                       ("oh_mqtt_connected", "gauge"),
                       ("oh_mqtt_held_messages", "gauge")]:
        if kind:
            assert types.get(name) == kind, name
    assert value(before, "oh_mqtt_connected") == 1
    assert ("oh_mqtt_held_messages", frozenset()) in before

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


def test_exposition_checker_refuses_what_promtool_refuses():
    """The checker is the gate in place of promtool: it must fail."""
    good = ("# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
            "# HELP h_seconds H.\n# TYPE h_seconds histogram\n"
            'h_seconds_bucket{le="1"} 1\nh_seconds_bucket{le="+Inf"} 2\n'
            "h_seconds_sum 3\nh_seconds_count 2\n")
    check(good)
    bad = {
        "no newline": good[:-1],
        "counter without _total": good.replace("a_total", "a"),
        "no help": good.replace("# HELP a_total A.\n", ""),
        "twice": good + "a_total 2\n",
        "split family": good + "# HELP b B.\n# TYPE b gauge\nb 1\n" + "a_total{x=\"1\"} 2\n",
        "bad escape": good.replace("a_total 1", 'a_total{x="\\q"} 1'),
        "not cumulative": good.replace('le="+Inf"} 2', 'le="+Inf"} 0').replace("count 2", "count 0"),
        "count differs": good.replace("h_seconds_count 2", "h_seconds_count 5"),
        "no +Inf": good.replace('h_seconds_bucket{le="+Inf"} 2\n', ""),
        "milliseconds": good.replace("h_seconds", "h_milliseconds"),
        "bad value": good.replace("a_total 1", "a_total one"),
    }
    for why, text in bad.items():
        try:
            check(text)
        except AssertionError:
            continue
        pytest.fail("the checker accepted an exposition with %s" % why)


def test_refusals_on_a_real_route_carry_its_label(make_host):
    """405 and 413 are answered before the handler, but on a route that
    exists: they count under it, and only unknown paths read "unmatched"."""
    host = make_host({"http": {"max_body_bytes": 1024}})
    host.wait_ready()
    assert host.request("DELETE", "/api/registry")[0] == 405
    assert host.request("POST", "/metrics", body={})[0] == 405
    # Refused from the Content-Length alone, and after reading a body that
    # grew too large without one.
    big = json.dumps({"device_id": "x" * 4096}).encode()
    assert host.request("POST", "/api/ndi/send", raw=big,
                        headers={"Content-Type": "application/json"})[0] == 413
    assert host.request("POST", "/api/ndi/send", raw=iter([big]),
                        headers={"Content-Type": "application/json"})[0] == 413
    assert host.request("DELETE", "/no/such/path")[0] == 404
    samples, _ = get(host)
    assert value(samples, "oh_http_requests_total", method="DELETE", route="/api/registry",
                 code="405") == 1
    assert value(samples, "oh_http_requests_total", method="POST", route="/metrics",
                 code="405") == 1
    assert value(samples, "oh_http_requests_total", method="POST", route="/api/ndi/send",
                 code="413") == 2
    assert value(samples, "oh_http_requests_total", method="DELETE", route="unmatched",
                 code="404") == 1
    unmatched = sum(v for (n, l), v in samples.items()
                    if n == "oh_http_requests_total" and ("route", "unmatched") in l)
    assert unmatched == 1


def test_request_duration_histogram(make_host):
    host = make_host()
    host.wait_ready()
    for _ in range(5):
        assert host.get("/api/registry")[0] == 200
    samples, types = get(host)
    name = "oh_http_request_duration_seconds"
    assert types.get(name) == "histogram"
    labels = {"method": "GET", "route": "/api/registry"}
    assert value(samples, name + "_count", **labels) == 5
    assert 0 < value(samples, name + "_sum", **labels) < 5
    les = sorted(float(dict(l)["le"]) for (n, l), _ in samples.items()
                 if n == name + "_bucket" and dict(l)["route"] == "/api/registry")
    assert les == [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                   5, 10, float("inf")]
    # Loopback requests to an idle host take well under a second.
    assert value(samples, name + "_bucket", le="1", **labels) == 5


def test_process_metrics_match_the_kernel(make_host):
    host = make_host()
    host.wait_ready()
    pid = host.proc.pid
    samples, types = get(host)
    for name, kind in [("process_cpu_seconds_total", "counter"),
                       ("process_resident_memory_bytes", "gauge"),
                       ("process_virtual_memory_bytes", "gauge"),
                       ("process_open_fds", "gauge"),
                       ("process_max_fds", "gauge"),
                       ("process_start_time_seconds", "gauge")]:
        assert types.get(name) == kind, name
    # Resident memory: within 25% of what the kernel says right after.
    rss = rss_kb(pid) * 1024
    assert 0.75 * rss < value(samples, "process_resident_memory_bytes") < 1.25 * rss + (1 << 20)
    assert value(samples, "process_virtual_memory_bytes") >= value(samples,
                                                                   "process_resident_memory_bytes")
    # Open descriptors: the listening socket, the broker, the store, the
    # epoll sets...; the kernel's count, give or take the /metrics connection.
    fds = len(os.listdir("/proc/%d/fd" % pid))
    assert 5 <= value(samples, "process_open_fds") and abs(
        value(samples, "process_open_fds") - fds) <= 2, (value(samples, "process_open_fds"), fds)
    with open("/proc/%d/limits" % pid) as f:
        soft = [l.split()[3] for l in f if l.startswith("Max open files")][0]
    assert value(samples, "process_max_fds") == float(soft)
    # Started when the test started it, to the tick.
    started = value(samples, "process_start_time_seconds")
    assert abs(started - host._started_wall) < 1.0, (started, host._started_wall)
    assert started <= time.time()
    # CPU: counted in microseconds, it only grows, and no more than wall time.
    cpu = value(samples, "process_cpu_seconds_total")
    assert 0 < cpu < time.time() - started + 0.1
    for _ in range(200):
        host.get("/api/registry")
    later, _ = get(host)
    assert value(later, "process_cpu_seconds_total") > cpu


def test_json_log_lines_include_config_errors(make_host, tmp_path):
    """In JSON mode every line is JSON, also a config that does not load and
    a bad time zone (both once printed as plain text)."""
    host = make_host(start=False)
    bad = tmp_path / "bad.json"
    bad.write_text('{"mqtt": {"hots": "x"}}')
    cases = [
        (["--config", str(bad), "--log-format", "json"], "mqtt.hots: unknown key"),
        (["--log-format", "json", "--config", str(tmp_path / "missing.json")], "missing.json"),
    ]
    tz = tmp_path / "tz.json"
    tz.write_text('{"timezone": "Mars/Olympus"}')
    cases.append((["--config", str(tz), "--log-format", "json"], "Mars/Olympus"))
    for args, needle in cases:
        cp = host.run(args)
        assert cp.returncode == 1, (args, cp.stderr)
        lines = cp.stderr.splitlines()
        assert lines, args
        for line in lines:
            doc = json.loads(line)
            assert doc["level"] == "error" and doc["source"] == "config", line
            assert set(doc) >= {"ts", "level", "source", "msg"}, line
        assert needle in lines[0], lines
    # So are usage errors, wherever --log-format stands on the line.
    for args in (["--bogus", "--log-format", "json"], ["--log-format", "json", "stray"],
                 ["--log-format", "json", "--config"]):
        cp = host.run(args)
        assert cp.returncode == 2, (args, cp.stderr)
        docs = [json.loads(line) for line in cp.stderr.splitlines()]
        assert len(docs) == 1 and docs[0]["source"] == "usage", (args, cp.stderr)
    # Text mode keeps the one line the README shows.
    cp = host.run(["--config", str(bad)])
    assert cp.stderr.startswith("orchestrator-host: config error: ") and \
        "mqtt.hots: unknown key" in cp.stderr, cp.stderr
