"""
The host as a process: command line, configuration errors, /healthz, HTTP
error shapes, broker outages and a clean shutdown.
"""

import json
import math
import os
import re
import signal
import subprocess
import time

import pytest

import harness
from harness import MqttClient, free_port, wait_until

REGISTRY = "/lab/orchestrator/registry"


def project_version():
    with open(os.path.join(harness.SOURCE_DIR, "CMakeLists.txt")) as f:
        m = re.search(r"project\(\s*orchestrator-host\s+VERSION\s+([0-9.]+)", f.read())
    return m.group(1)


def assert_json_error(status, body, code):
    assert status == code, (status, body)
    assert isinstance(body, dict), "error body is not JSON: %r" % (body,)
    err = body.get("error")
    assert isinstance(err, dict), body
    assert isinstance(err.get("code"), str) and err["code"], body
    assert isinstance(err.get("message"), str) and err["message"], body


def start_failing(host, timeout=10):
    """Starts a host that must refuse to start; returns (exit code, output)."""
    host.start(wait=False)
    rc = host.wait_exit(timeout)
    return rc, host.log()


def error_lines(text):
    return [line for line in text.splitlines()
            if line.strip() and not line.startswith("=== ")]


# ---- command line -------------------------------------------------------


def test_version(make_host):
    host = make_host(start=False)
    cp = host.run(["--version"])
    assert cp.returncode == 0, cp
    assert project_version() in cp.stdout + cp.stderr, (cp.stdout, cp.stderr)


def test_check_config_valid(make_host):
    host = make_host(start=False)
    cp = host.run(["--config", host.config_path, "--check-config"])
    assert cp.returncode == 0, (cp.stdout, cp.stderr)
    assert not host.running()


def test_check_config_empty_object_is_valid(make_host):
    host = make_host(start=False)
    host.write_config("{}")
    cp = host.run(["--config", host.config_path, "--check-config"])
    assert cp.returncode == 0, (cp.stdout, cp.stderr)


def test_check_config_full_example_is_valid(make_host, tmp_path):
    pw = tmp_path / "mqtt-password"
    pw.write_text("secret\n")
    host = make_host({
        "mqtt": {"username": "svc", "password_file": str(pw), "keepalive_s": 15},
        "topic_root": "/lab",
        "timezone": "UTC",
        "stale_after_s": 30,
        "snapshot_interval_ms": 200,
        "max_payload_bytes": 65536,
        "log_level": "debug",
        "plugins": [],
    }, start=False)
    cp = host.run(["--config", host.config_path, "--check-config"])
    assert cp.returncode == 0, (cp.stdout, cp.stderr)


@pytest.mark.parametrize("text,needle", [
    ('{"mqtt": {"hots": "127.0.0.1"}}', "mqtt.hots"),
    ('{"http": {"port": "eighty"}}', "http.port"),
    ('{\n  "mqtt": {\n    "host": "127.0.0.1",,\n  }\n}\n', None),
])
def test_check_config_invalid(make_host, text, needle):
    host = make_host(start=False)
    host.write_config(text)
    cp = host.run(["--config", host.config_path, "--check-config"])
    out = cp.stdout + cp.stderr
    assert cp.returncode == 1, (cp.returncode, out)
    assert host.config_path in out, out
    if needle:
        assert needle in out, out


def test_missing_config_file(make_host):
    host = make_host(start=False)
    missing = host.config_path + ".nope"
    cp = host.run(["--config", missing])
    out = cp.stdout + cp.stderr
    assert cp.returncode != 0, out
    assert missing in out, out


# ---- configuration errors stop startup ----------------------------------


def test_syntax_error_names_file_line_and_column(make_host):
    host = make_host(start=False)
    host.write_config('{\n  "mqtt": {\n    "host": "127.0.0.1",,\n    "port": 1\n  }\n}\n')
    rc, out = start_failing(host)
    assert rc != 0 and rc > 0, (rc, out)
    assert host.config_path in out, out
    assert re.search(r"(line\D{0,3}3\b|:3:\d+)", out), "line 3 not named:\n" + out
    assert re.search(r"(col(umn)?\D{0,3}\d+|:3:\d+)", out), "column not named:\n" + out
    assert len(error_lines(out)) <= 3, "expected one message:\n" + out


@pytest.mark.parametrize("overrides,key", [
    ({"mqtt": {"hots": "127.0.0.1"}}, "mqtt.hots"),
    ({"bogus_top_level": 1}, "bogus_top_level"),
    ({"http": {"prot": 1}}, "http.prot"),
])
def test_unknown_key_is_named(make_host, overrides, key):
    host = make_host(overrides, start=False)
    rc, out = start_failing(host)
    assert rc > 0, (rc, out)
    assert key in out, out
    assert host.config_path in out, out


@pytest.mark.parametrize("overrides,key", [
    ({"http": {"port": "eighty"}}, "http.port"),
    ({"mqtt": {"port": [1883]}}, "mqtt.port"),
    ({"snapshot_interval_ms": "fast"}, "snapshot_interval_ms"),
    ({"stale_after_s": {"s": 1}}, "stale_after_s"),
    ({"mqtt": "127.0.0.1"}, "mqtt"),
    ({"plugins": {"module": "ndi"}}, "plugins"),
])
def test_wrong_type_is_named(make_host, overrides, key):
    host = make_host(overrides, start=False)
    rc, out = start_failing(host)
    assert rc > 0, (rc, out)
    assert key in out, out
    assert host.config_path in out, out


def test_config_not_an_object(make_host):
    host = make_host(start=False)
    host.write_config("[1, 2]")
    rc, out = start_failing(host)
    assert rc > 0, (rc, out)
    assert host.config_path in out, out


# ---- environment overrides ----------------------------------------------


def test_env_overrides_http_port(make_host):
    env_port = free_port()
    host = make_host(env={"OH_HTTP_PORT": str(env_port)}, start=False)
    cfg_port = host.config["http"]["port"]
    host.start()
    assert host.http_port == env_port
    host.wait_connected()
    assert not harness.port_accepts(cfg_port), "config http.port still listening"


def test_env_overrides_http_bind(make_host):
    host = make_host({"http": {"bind": "0.0.0.0"}},
                     env={"OH_HTTP_BIND": "127.0.0.1"})
    host.wait_connected()
    st, _ = host.get("/healthz")
    assert st == 200


def test_env_overrides_mqtt_port(make_host, broker):
    closed = free_port()
    host = make_host({"mqtt": {"port": closed}}, env={"OH_MQTT_PORT": str(broker.port)})
    host.wait_connected()


def test_env_mqtt_credentials(make_broker, make_host, tmp_path):
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run(["/usr/bin/mosquitto_passwd", "-b", str(pwfile), "svc", "s3cret"], check=True)
    os.chmod(pwfile, 0o600)
    b = make_broker(extra_conf="allow_anonymous false\npassword_file %s" % pwfile)
    wrong = make_host({"mqtt": {"port": b.port}}, broker=b,
                      env={"OH_MQTT_USERNAME": "svc", "OH_MQTT_PASSWORD": "wrong"})
    right = make_host({"mqtt": {"port": b.port, "username": "nobody", "password": "x"}}, broker=b,
                      env={"OH_MQTT_USERNAME": "svc", "OH_MQTT_PASSWORD": "s3cret"})
    right.wait_connected()
    # The broker said no to the wrong password (an attempt was made):
    wait_until(lambda: "broker refused connection" in wrong.log(), 10,
               msg="the broker to refuse the wrong password")
    assert wrong.get("/healthz")[1]["mqtt"] == "disconnected"
    assert "s3cret" not in right.log(), "password written to the log"


def test_password_file(make_broker, make_host, tmp_path):
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run(["/usr/bin/mosquitto_passwd", "-b", str(pwfile), "svc", "fromfile"], check=True)
    b = make_broker(extra_conf="allow_anonymous false\npassword_file %s" % pwfile)
    secret = tmp_path / "secret"
    secret.write_text("fromfile\n")
    host = make_host({"mqtt": {"port": b.port, "username": "svc", "password_file": str(secret)}},
                     broker=b)
    host.wait_connected()


# ---- /healthz and HTTP errors ---------------------------------------------


def test_healthz_connected(make_host):
    host = make_host()
    body = host.wait_connected()
    t0 = time.monotonic()
    st, body = host.get("/healthz")
    assert st == 200, (st, body)
    assert body["mqtt"] == "connected"
    assert isinstance(body["uptime_s"], (int, float)) and body["uptime_s"] >= 0
    later = wait_until(lambda: (lambda b: b if b["uptime_s"] > body["uptime_s"] else None)(
        host.get("/healthz")[1]), 5, msg="uptime_s to grow")
    later_end = time.monotonic()
    # Whole seconds since start: between readings r seconds apart (r at
    # most later_end - t0) it grows by floor(r) or ceil(r); polled every
    # 20 ms, it is first seen one higher, whatever the machine's load.
    assert later["uptime_s"] - body["uptime_s"] <= max(1, math.ceil(later_end - t0)), (
        body["uptime_s"], later, later_end - t0)


def test_unknown_path_and_wrong_method(make_host):
    host = make_host()
    for path in ("/nope", "/api/nope", "/api/devices/x/y"):
        st, body = host.get(path)
        assert st == 404, (path, st, body)
        assert_json_error(st, body, 404)
    for method, path in (("POST", "/healthz"), ("DELETE", "/api/registry"),
                         ("PUT", "/api/registry"), ("POST", "/api/devices/x")):
        st, hdrs, text = host.request(method, path, body={})
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        assert_json_error(st, body, 405)
        assert "json" in (hdrs.get("Content-Type") or ""), (method, path, dict(hdrs))


def test_malformed_http_requests_do_not_hurt(make_host):
    host = make_host()
    host.wait_connected()
    for method, path, raw in (("GET", "/api/devices/" + "a" * 5000, None),
                              ("GET", "/api/devices/%00%ff", None),
                              ("GET", "/api/registry?x=" + "y" * 3000, None),
                              ("POST", "/api/registry", b"\x00\xff{{{")):
        st, _, _ = host.request(method, path, raw=raw)
        # Answered, as the client's fault or served: never a server error.
        assert st < 500, (method, path[:40], st)
    # And the host is as healthy as before, not merely answering.
    st, body = host.get("/healthz")
    assert st == 200 and body["mqtt"] == "connected", (st, body)
    assert host.running()


# ---- broker outages ------------------------------------------------------


def test_host_started_before_broker(broker, make_host, make_mqtt):
    broker.stop()
    host = make_host()
    st, body = host.get("/healthz")
    assert st == 503, (st, body)
    assert body["mqtt"] == "disconnected"
    st, body = host.get("/api/registry")
    assert st == 200 and body["devices"] == {}, (st, body)

    broker.start()
    host.wait_connected(timeout=15)
    assert host.get("/healthz")[0] == 200

    c = make_mqtt()
    c.subscribe(REGISTRY)
    c.publish("/lab/device/late-1/meta", {"device_id": "late-1", "modules": []}, retain=True)
    c.wait_for(REGISTRY, lambda m: "late-1" in m["payload"]["devices"], timeout=5)
    wait_until(lambda: host.get("/api/devices/late-1")[0] == 200, msg="late-1 in /api/devices")


def test_broker_restart_same_port(broker, make_host, make_mqtt):
    host = make_host()
    host.wait_connected()
    c = make_mqtt()
    c.subscribe(REGISTRY)
    c.publish("/lab/device/before/meta", {"device_id": "before"}, retain=True)
    c.wait_for(REGISTRY, lambda m: "before" in m["payload"]["devices"])
    c.close()

    failures = host.log().count("cannot connect to")
    broker.stop()
    host.wait_disconnected(timeout=10)
    assert host.get("/healthz")[0] == 503
    # Back only after the host has found the port closed at least once.
    wait_until(lambda: host.log().count("cannot connect to") > failures, 10,
               msg="a failed reconnect")
    broker.start()
    t0 = time.monotonic()
    host.wait_connected(timeout=10)

    c2 = make_mqtt()
    c2.subscribe(REGISTRY)
    c2.publish("/lab/device/after/meta", {"device_id": "after", "modules": ["ndi"]}, retain=True)
    m = c2.wait_for(REGISTRY, lambda m: "after" in m["payload"]["devices"],
                    timeout=max(1.0, 10 - (time.monotonic() - t0)))
    assert "before" in m["payload"]["devices"], "registry lost across the broker restart"
    st, dev = host.get("/api/devices/after")
    assert st == 200 and dev["modules"] == ["ndi"]
    # The relay resumed too: the plugin's subscriptions were renewed.
    c2.subscribe("/lab/device/after/ndi/cmd")
    c2.subscribe("/lab/orchestrator/ndi/evt")
    c2.publish("/lab/orchestrator/ndi/cmd", {"req_id": "after-1", "actor": "app", "action": "stop",
                                            "params": {"device_id": "after"}})
    remaining = max(1.0, 10 - (time.monotonic() - t0))
    c2.wait_for("/lab/device/after/ndi/cmd", lambda m: m["payload"]["req_id"] == "after-1",
                timeout=remaining)
    ack = c2.wait_for("/lab/orchestrator/ndi/evt", lambda m: m["payload"]["req_id"] == "after-1")
    assert ack["payload"]["code"] == "DISPATCHED"


def test_broker_killed_and_back(broker, make_host, make_mqtt):
    host = make_host()
    host.wait_connected()
    broker.kill()
    host.wait_disconnected(timeout=10)
    broker.start()
    host.wait_connected(timeout=10)
    c = make_mqtt()
    c.subscribe(REGISTRY)
    c.publish("/lab/device/k-1/meta", {"device_id": "k-1"})
    c.wait_for(REGISTRY, lambda m: "k-1" in m["payload"]["devices"])


# ---- shutdown ------------------------------------------------------------


def test_sigterm_exits_zero_and_final_snapshot_is_retained(make_host, make_mqtt):
    # A long interval: the last change is still waiting to be published
    # when SIGTERM arrives, so only a flush at shutdown can deliver it.
    host = make_host({"snapshot_interval_ms": 3000})
    host.wait_connected()
    c = make_mqtt()
    c.subscribe(REGISTRY)
    c.publish("/lab/device/first/meta", {"device_id": "first"}, retain=True)
    c.wait_for(REGISTRY, lambda m: "first" in m["payload"]["devices"], timeout=8)
    c.publish("/lab/device/last/meta", {"device_id": "last", "v": 2}, retain=True)
    wait_until(lambda: host.get("/api/devices/last")[0] == 200, msg="last in /api/devices")

    t0 = time.monotonic()
    rc = host.stop(timeout=10)
    assert rc == 0, "exit code %r after SIGTERM:\n%s" % (rc, host.log())
    assert time.monotonic() - t0 < 5, "shutdown took %.1fs" % (time.monotonic() - t0)

    late = make_mqtt()
    late.subscribe(REGISTRY)
    m = late.wait_for(REGISTRY)
    assert m["retain"]
    assert m["payload"]["devices"].get("last", {}).get("v") == 2, m["payload"]


def test_sigint_exits_zero(make_host):
    host = make_host()
    host.wait_connected()
    host.proc.send_signal(signal.SIGINT)
    assert host.wait_exit(10) == 0, host.log()


def test_sigterm_while_broker_down(broker, make_host):
    host = make_host()
    host.wait_connected()
    broker.stop()
    host.wait_disconnected()
    rc = host.stop(timeout=10)
    assert rc == 0, host.log()


def test_restart_keeps_working(make_host, make_mqtt):
    host = make_host()
    host.wait_connected()
    c = make_mqtt()
    c.publish("/lab/device/r-1/meta", {"device_id": "r-1"}, retain=True)
    wait_until(lambda: host.get("/api/devices/r-1")[0] == 200, msg="r-1 known")
    host.restart()
    host.wait_connected()
    # Retained meta comes back from the broker after the restart.
    wait_until(lambda: host.get("/api/devices/r-1")[0] == 200, msg="r-1 known after restart")


def test_broker_by_name_resolved_without_blocking(broker, make_host):
    # "localhost" goes through the host's asynchronous resolver (hosts file),
    # not a getaddrinfo() call on the event loop.
    host = make_host({"mqtt": {"host": "localhost", "port": broker.port}})
    body = host.wait_connected()
    assert body["mqtt"] == "connected"
