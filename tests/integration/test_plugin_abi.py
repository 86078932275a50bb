"""
The plugin ABI's edges, black-box: a real mosquitto, the real
orchestrator-host, and tiny test plugins from tests/plugins/ built as real
shared objects (OH_BUILD_DIR/test-plugins/NAME.so).

Covers: refusal with a named reason (wrong ABI version naming both numbers,
a newer minor naming both versions, failing init, missing file, missing symbol, unknown built-in) while the other
plugins keep working; teardown of everything a failed plugin registered;
`path.so:symbol`; the services behind the handle (settings, registry reads,
non-JSON payloads as ackable errors, log prefix); namespace enforcement;
run-time unload (DELETE /api/plugins/{module}) with live timers,
subscriptions, routes, an open deferred request, a lease watcher and a UI
page; edges a careless plugin reaches (stale timer handles, lease calls
without an actor or with NaN durations, oh_spawn with max_output SIZE_MAX);
the example relay plugin built out of tree against the installed
headers and pkg-config file, driven end to end; and docs/plugins.md's
hello.c built with the page's command (-Wall -Wextra -Werror) and loaded.  See docs/plugins.md.
"""

import glob
import os
import re
import shutil
import subprocess
import threading
import time
import uuid

import pytest

import harness
from conftest import wait_until

ROOT = "/lab"


def so(name):
    return os.path.join(harness.BUILD_DIR, "test-plugins", name + ".so")


def abi_minor():
    """OH_PLUGIN_ABI_MINOR as the headers this tree builds with say it."""
    header = os.path.join(os.path.dirname(__file__), "..", "..", "include", "oh", "plugin.h")
    with open(header, encoding="utf-8") as f:
        return int(re.search(r"#define OH_PLUGIN_ABI_MINOR (\d+)", f.read()).group(1))


def rid():
    return uuid.uuid4().hex[:12]


@pytest.fixture(autouse=True)
def _need_plugins():
    if not os.path.exists(so("abi_failing_init")):
        pytest.skip("test plugins not built in %s" % harness.BUILD_DIR)


def plugins_by_module(host, path="/api/plugins"):
    status, body = host.get(path)
    assert status in (200, 503), (status, body)
    return {p["module"]: p for p in body["plugins"]}


def snapshot_modules(host):
    status, body = host.get("/api/registry")
    assert status == 200, body
    return body["modules"]


def ack_for(mqtt, module, req_id, since=0, timeout=5):
    return mqtt.wait_for("%s/orchestrator/%s/evt" % (ROOT, module),
                         lambda m: m["payload"]["req_id"] == req_id, timeout=timeout,
                         since=since)["payload"]


def ndi_answers(mqtt, timeout=10):
    """Until the built-in NDI plugin acks a command (its subscriptions are
    made on connect, after /healthz already answers)."""
    mqtt.subscribe(ROOT + "/orchestrator/ndi/evt")
    deadline = time.monotonic() + timeout
    while True:
        req_id = "probe-" + rid()
        mqtt.publish(ROOT + "/orchestrator/ndi/cmd",
                     {"req_id": req_id, "actor": "app", "action": "release",
                      "params": {"device_id": "probe"}})
        try:
            return ack_for(mqtt, "ndi", req_id, timeout=0.5)
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def registry_barrier(mqtt):
    """Publishes a marker device's meta and waits for the host's snapshot
    holding it.  The host read everything this client published before
    first (one connection each way, in order), and what it published in
    answer went out before the snapshot, which waits for a timer besides."""
    mqtt.subscribe(ROOT + "/orchestrator/registry")
    dev = "barrier-" + rid()
    mark = mqtt.mark()
    mqtt.publish(ROOT + "/device/%s/meta" % dev, {"device_id": dev, "modules": []})
    mqtt.wait_for(ROOT + "/orchestrator/registry", lambda m: dev in m["payload"]["devices"],
                  timeout=10, since=mark)
    return dev


def nothing_on(mqtt, topic_filter, since, ticks=0):
    """Asserts nothing arrived on topic_filter since `since`, up to a
    registry barrier.  With ticks, first lets that many of a 20 ms timer's
    periods pass: a clock that must pass for "the timer is stopped"."""
    time.sleep(ticks * 0.02)
    registry_barrier(mqtt)
    got = mqtt.messages(topic_filter, since=since)
    assert not got, "unexpected messages on %s: %r" % (topic_filter, got[:5])


# --------------------------------------------------------------------------
# Refused plugins


def test_refused_plugins_name_their_reason_and_the_rest_run(make_host, mqtt):
    host = make_host({"plugins": [
        {"module": "ndi", "path": "builtin:ndi"},
        {"module": "wrongver", "path": so("abi_wrong_version")},
        {"module": "newer", "path": so("abi_newer_minor")},
        {"module": "newer2", "path": so("abi_newer_minor_only")},
        {"module": "failing", "path": so("abi_failing_init"), "settings": {"device": "/dev/ttyX9"}},
        {"module": "nofile", "path": "/nonexistent/dir/plugin.so"},
        {"module": "nosym", "path": so("abi_custom_symbol")},
        {"module": "badsym", "path": so("abi_custom_symbol") + ":no_such_entry"},
        {"module": "nobuiltin", "path": "builtin:nope"},
        {"module": "custom", "path": so("abi_custom_symbol") + ":my_entry"},
    ]})
    host.wait_connected()
    ndi_answers(mqtt)

    for path in ("/api/plugins", "/healthz"):
        p = plugins_by_module(host, path)
        assert p["ndi"]["loaded"] is True and p["ndi"]["error"] is None
        assert p["custom"]["loaded"] is True and p["custom"]["version"] == "1.2.3"
        for module in ("wrongver", "newer", "newer2", "failing", "nofile", "nosym", "badsym",
                       "nobuiltin"):
            assert p[module]["loaded"] is False, p[module]
            assert "name" not in p[module] and "ui" not in p[module]
        assert p["wrongver"]["error"] == ("built for plugin ABI version 3, "
                                          "but this host speaks version 2")
        # Needing a later minor: named in versions, whether dlopen would
        # have failed on a missing symbol (newer) or not (newer2).
        minor = abi_minor()
        for module in ("newer", "newer2"):
            assert p[module]["error"] == ("needs plugin ABI 2.%d, but this host provides 2.%d"
                                          % (minor + 1, minor)), p[module]
        assert p["failing"]["error"] == "probe says no: /dev/ttyX9 is not a relay board"
        assert p["nofile"]["error"].startswith("cannot load: ")
        assert "/nonexistent/dir/plugin.so" in p["nofile"]["error"]
        assert p["nosym"]["error"] == "%s has no symbol oh_plugin_entry" % so("abi_custom_symbol")
        assert p["badsym"]["error"] == "%s has no symbol no_such_entry" % so("abi_custom_symbol")
        assert p["nobuiltin"]["error"] == 'no built-in plugin named "nope"'

    wait_until(lambda: sorted(snapshot_modules(host)) == ["custom", "ndi"], 5,
               msg="snapshot modules to list only the loaded plugins")
    mqtt.subscribe(ROOT + "/orchestrator/registry")
    snap = mqtt.wait_for(ROOT + "/orchestrator/registry", timeout=5)["payload"]
    assert sorted(snap["modules"]) == ["custom", "ndi"]

    log = host.log()
    assert "plugin wrongver (%s) refused: built for plugin ABI version 3" % so("abi_wrong_version") in log
    assert "plugin newer (%s) refused: needs plugin ABI 2.%d" % (so("abi_newer_minor"), abi_minor() + 1) in log
    assert "undefined symbol" not in log
    assert "init of a plugin needing a newer minor ran" not in log
    assert "refused: probe says no: /dev/ttyX9 is not a relay board" in log
    assert "init of a plugin with the wrong ABI version ran" not in log
    assert "[custom] custom entry point says hello" in log
    assert host.running()


def test_failing_init_leaves_nothing_behind(make_host, mqtt):
    host = make_host({"plugins": [
        {"module": "ndi"},
        {"module": "failing", "path": so("abi_failing_init")},
    ]})
    host.wait_connected()
    mqtt.subscribe(ROOT + "/orchestrator/failing/evt")
    ndi_answers(mqtt)

    # Its route, its page and its OpenAPI entry are gone.
    status, body = host.get("/api/failing/hello")
    assert status == 404, body
    _, api = host.get("/openapi.json")
    assert not [p for p in api["paths"] if p.startswith("/api/failing")]
    assert "ui" not in plugins_by_module(host)["failing"]
    assert host.get("/ui/failing")[0] == 404
    assert plugins_by_module(host)["failing"]["error"] == "probe says no: (none) is not a relay board"

    # Its subscription does not react, its 20 ms timer does not tick.
    mark = mqtt.mark()
    mqtt.publish(ROOT + "/orchestrator/failing/cmd", {"action": "anything"})
    nothing_on(mqtt, ROOT + "/orchestrator/failing/evt", mark, ticks=10)

    # The others still work.
    assert ndi_answers(mqtt)["req_id"].startswith("probe-")
    assert snapshot_modules(host) == ["ndi"]


# --------------------------------------------------------------------------
# Services behind the handle


def test_custom_symbol_plugin_gets_settings_registry_and_errors(make_host, mqtt):
    settings = {"greeting": "hi", "nested": {"n": [1, 2, 3]}}
    host = make_host({"plugins": [
        {"module": "custom", "path": so("abi_custom_symbol") + ":my_entry", "settings": settings},
    ]})
    host.wait_connected()
    evt = ROOT + "/orchestrator/custom/evt"
    cmd = ROOT + "/orchestrator/custom/cmd"
    mqtt.subscribe(evt)

    # Settings arrive as the JSON object from the config.
    assert host.get("/api/custom/settings") == (200, settings)

    # A JSON payload is handed over parsed (probe until subscribed).
    def echoed():
        mark = mqtt.mark()
        mqtt.publish(cmd, {"x": 1})
        return mqtt.wait_for(evt, lambda m: m["payload"]["code"] == "OK", timeout=0.5,
                             since=mark)
    ack = wait_until(echoed, 10, msg="the plugin to echo a command")["payload"]
    assert ack["ok"] is True and ack["details"] == {"got": {"x": 1}}

    # A payload that is not JSON reaches the handler as an error it can ack.
    mark = mqtt.mark()
    mqtt.publish(cmd, b"{not json")
    ack = mqtt.wait_for(evt, lambda m: m["payload"]["code"] == "BAD_JSON", since=mark)["payload"]
    assert ack["ok"] is False and ack["error"].startswith("not JSON: line 1")
    mark = mqtt.mark()
    mqtt.publish(cmd, b"")
    ack = mqtt.wait_for(evt, lambda m: m["payload"]["code"] == "BAD_JSON", since=mark)["payload"]
    assert ack["error"] == "empty payload"

    # Registry reads: one device, and all devices.
    dev = "abi-" + rid()
    mqtt.publish(ROOT + "/device/%s/meta" % dev, {"device_id": dev, "modules": ["custom"]},
                 retain=True)
    mqtt.publish(ROOT + "/device/%s/status" % dev, {"online": True, "device_id": dev},
                 retain=True)
    wait_until(lambda: dev in host.get("/api/custom/devices")[1]["devices"], 5,
               msg="the device in oh_device_foreach")
    def online():
        status, body = host.get("/api/custom/devices/" + dev)
        return body if status == 200 and body["online"] == 1 else None
    body = wait_until(online, 5, msg="the device online in oh_device_get")
    assert body["id"] == dev and body["doc"]["modules"] == ["custom"]
    assert host.get("/api/custom/devices/nope-" + rid())[0] == 404
    for t in ("meta", "status"):
        mqtt.publish(ROOT + "/device/%s/%s" % (dev, t), b"", retain=True)


def test_namespace_is_enforced(make_host, mqtt, make_mqtt):
    host = make_host({"plugins": [
        {"module": "ndi"},
        {"module": "ns", "path": so("abi_namespace")},
    ]})
    host.wait_connected()
    spy = make_mqtt()
    for f in (ROOT + "/orchestrator/ndi/cmd", ROOT + "/device/+/ndi/cmd", "/elsewhere/#",
              ROOT + "/orchestrator/registry", ROOT + "/orchestrator/nsx/#",
              ROOT + "/orchestrator/ns/evt", ROOT + "/device/+/ns/cmd"):
        spy.subscribe(f)
    last_probe = ndi_answers(mqtt)["req_id"]
    # The spy is another connection: its copies of the probe commands can
    # trail the ack.  The last one in means all are (one publisher, in order).
    spy.wait_for(ROOT + "/orchestrator/ndi/cmd", lambda m: m["payload"].get("req_id") == last_probe)
    spy_mark = spy.mark()

    status, init = host.get("/api/ns/init")
    assert status == 200
    for name, res in init.items():
        if name.startswith("bad_"):
            assert res["error"] == "invalid argument", (name, res)
        else:
            assert res["rc"] == 0, (name, res)

    status, probe = host.get("/api/ns/probe")
    assert status == 200, probe
    expected = {
        "bad_publish_other_module": "denied",
        "bad_publish_other_device_module": "denied",
        "bad_publish_outside_root": "denied",
        "bad_publish_registry": "denied",
        "bad_publish_longer_name": "denied",
        "bad_publish_device_bad_id": "denied",
        "bad_publish_device_empty_id": "denied",
        "own_topic_parse_device": "success",
        "own_topic_parse_orchestrator": "success",
        "own_topic_parse_outside": "success",
        "bad_topic_parse_empty_level": "invalid argument",
        "bad_topic_parse_wildcard_id": "invalid argument",
        "bad_subscribe_all": "invalid argument",
        "bad_subscribe_outside_root": "invalid argument",
        "bad_lease_take_other": "denied",
        "bad_lease_renew_other": "denied",
        "bad_lease_release_other": "denied",
        "bad_lease_force_other": "denied",
        "bad_lease_no_colon": "denied",
        "bad_route_dotdot": "invalid argument",
        "bad_route_relative": "invalid argument",
        "own_publish_evt": "success",
        "own_publish_device": "success",
        "own_lease_take": "success",
        "own_lease_renew": "success",
        "own_lease_release": "success",
        "own_can_use_other": "success",
    }
    assert {k: v["error"] for k, v in probe.items()} == expected

    # Only the two allowed publishes went out; the refused ones never
    # reached the broker.
    spy.wait_for(ROOT + "/orchestrator/ns/evt", since=spy_mark)
    spy.wait_for(ROOT + "/device/rpi-01/ns/cmd", since=spy_mark)
    registry_barrier(spy)
    leaked = [m for m in spy.messages(since=spy_mark)
              if m["topic"] not in (ROOT + "/orchestrator/ns/evt", ROOT + "/device/rpi-01/ns/cmd")
              and m["topic"] != ROOT + "/orchestrator/registry"]
    assert not leaked, leaked
    registry = [m for m in spy.messages(ROOT + "/orchestrator/registry", since=spy_mark)
                if m["payload"] == {}]
    assert not registry
    # No lease was taken on another module's key.
    _, snap = host.get("/api/registry")
    assert "ndi:rpi-01" not in snap["locks"] and "ns:rpi-01" not in snap["locks"]
    assert "refused: outside the ns namespace" in host.log()
    assert 'must start with "ns:"' in host.log()


# --------------------------------------------------------------------------
# Unload at run time


def sys_subscription_count(sysmon, since=0):
    msgs = sysmon.messages("$SYS/broker/subscriptions/count", since=since)
    return int(msgs[-1]["raw"]) if msgs else None


def test_unload_tears_down_everything(make_host, make_broker, make_mqtt, tmp_path):
    broker = make_broker(extra_conf="sys_interval 1")
    marker = tmp_path / "marker.txt"
    host = make_host({"plugins": [
        {"module": "ndi"},
        {"module": "timers", "path": so("abi_timers"), "settings": {"marker": str(marker)}},
    ]}, broker=broker)
    host.wait_connected()
    mqtt = make_mqtt(broker=broker)
    evt = ROOT + "/orchestrator/timers/evt"
    mqtt.subscribe(evt)
    ndi_answers(mqtt)

    # Alive: ticks, pongs, routes, page.
    mqtt.wait_for(evt, lambda m: "tick" in m["payload"])
    def pong():
        mark = mqtt.mark()
        mqtt.publish(ROOT + "/orchestrator/timers/cmd", {})
        return mqtt.wait_for(evt, lambda m: m["payload"] == "pong", timeout=0.5, since=mark)
    wait_until(pong, 10, msg="a pong")
    status, body = host.get("/api/timers/ticks")
    assert status == 200 and body["ticks"] > 0
    assert plugins_by_module(host)["timers"]["ui"] == "/ui/timers"
    status, page = host.get("/ui/timers")
    assert status == 200 and "<p>ticks</p>" in page
    assert host.get("/ui/timers/page.js") == (200, "console.log('ticks');")
    assert sorted(snapshot_modules(host)) == ["ndi", "timers"]

    # The broker holds one subscription for the plugin's own command topic;
    # the device meta filter is shared with the core registry.
    sysmon = make_mqtt(broker=broker)
    mqtt.subscribe(ROOT + "/orchestrator/registry")   # the barriers' before the count
    # The host reads the broker's last snapshot only until the start-up has
    # settled (registry.c); count after that.
    wait_until(lambda: "publishing the snapshot" in host.log(), 15, msg="the start-up settled")
    sysmon.subscribe("$SYS/broker/subscriptions/count")
    # $SYS is refreshed once a second: wait for a count that includes
    # everyone's subscriptions and then holds still.
    wait_until(lambda: (sys_subscription_count(sysmon) or 0) > 0, 10,
               msg="a non-zero $SYS subscription count")
    for _ in range(10):
        mark = sysmon.mark()
        time.sleep(1.5)   # a clock: $SYS changes are published at most once a second
        if not sysmon.messages("$SYS/broker/subscriptions/count", since=mark):
            break
    before = sys_subscription_count(sysmon)

    # A request the plugin leaves open (deferred reply, with on_gone).
    waited = {}

    def wait_request():
        waited["result"] = host.get("/api/timers/wait", timeout=20)
    t = threading.Thread(target=wait_request)
    t.start()
    wait_until(lambda: "holding a wait request" in host.log(), 10,
               msg="the plugin to hold the request")
    assert t.is_alive(), waited

    mark = mqtt.mark()
    status, body = host.delete("/api/plugins/timers")
    assert status == 200, body
    assert body["module"] == "timers" and body["loaded"] is False and body["error"] == "unloaded"
    assert "ui" not in body

    # The open request was answered by the host, not left to hang.
    t.join(10)
    assert not t.is_alive()
    assert waited["result"][0] == 503
    assert waited["result"][1]["error"]["code"] == "UNAVAILABLE"

    # cleanup() ran while it could still publish, then the state was freed.
    mqtt.wait_for(evt, lambda m: m["payload"] == "bye", since=mark)
    assert marker.read_text() == "cleanup\nfree\n"

    # Timers stopped, subscriptions gone, routes and page gone.  A tick
    # published just before the unload may still be on its way: from the
    # barrier on, nothing.
    registry_barrier(mqtt)
    quiet = mqtt.mark()
    mqtt.publish(ROOT + "/orchestrator/timers/cmd", {})
    nothing_on(mqtt, evt, quiet, ticks=10)
    assert host.get("/api/timers/ticks")[0] == 404
    assert host.get("/api/timers/wait")[0] == 404
    assert host.get("/ui/timers")[0] == 404
    assert host.get("/ui/timers/page.js")[0] == 404
    _, api = host.get("/openapi.json")
    assert not [p for p in api["paths"] if p.startswith("/api/timers")]
    for path in ("/api/plugins", "/healthz"):
        p = plugins_by_module(host, path)["timers"]
        assert p["loaded"] is False and p["error"] == "unloaded" and "ui" not in p
    wait_until(lambda: snapshot_modules(host) == ["ndi"], 5, msg="modules without timers")

    # The broker dropped the plugin's own filter but kept the shared one:
    # the registry still sees new devices.
    wait_until(lambda: sys_subscription_count(sysmon) == before - 1, 5,
               msg="the broker's subscription count to drop by one from %s" % before)
    dev = "after-unload-" + rid()
    mqtt.publish(ROOT + "/device/%s/meta" % dev, {"device_id": dev, "modules": []})
    wait_until(lambda: host.get("/api/devices/" + dev)[0] == 200, 5,
               msg="the registry to see a device after unload")
    ndi_answers(mqtt)

    # Unloading again or something unknown.
    status, body = host.delete("/api/plugins/timers")
    assert status == 409 and body["error"]["code"] == "NOT_LOADED"
    status, body = host.delete("/api/plugins/nope")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"

    log = host.log()
    assert "unloaded timers" in log
    assert "on_gone ran" not in log and "one-shot timer fired" not in log


def test_unload_builtin_and_shutdown(make_host, mqtt):
    host = make_host({"plugins": [
        {"module": "ndi"},
        {"module": "custom", "path": so("abi_custom_symbol") + ":my_entry"},
    ]})
    host.wait_connected()
    ndi_answers(mqtt)
    status, body = host.delete("/api/plugins/ndi")
    assert status == 200 and body["loaded"] is False, body
    _, api = host.get("/openapi.json")
    assert not [p for p in api["paths"] if p.startswith("/api/ndi")]
    mark = mqtt.mark()
    mqtt.publish(ROOT + "/orchestrator/ndi/cmd",
                 {"req_id": "x", "actor": "app", "action": "release", "params": {"device_id": "d"}})
    nothing_on(mqtt, ROOT + "/orchestrator/ndi/evt", mark)
    assert host.get("/api/custom/settings")[0] == 200
    wait_until(lambda: snapshot_modules(host) == ["custom"], 5)
    # A clean SIGTERM with one plugin unloaded and one loaded (the fixture
    # checks the exit and the sanitizers).
    assert host.stop() == 0


def test_edges_a_careless_plugin_reaches_are_harmless(make_host):
    """Stale timer handles, lease calls without actor or with NaN/huge
    durations, and oh_spawn with max_output up to SIZE_MAX (abi_edges.c):
    answered, never a crash or a sanitizer report."""
    host = make_host({"plugins": [{"module": "edges", "path": so("abi_edges")}]})
    assert plugins_by_module(host)["edges"]["loaded"] is True

    # A one-shot timer fired and its handle was cancelled from its own
    # callback (after a new timer was added), and again later; a repeating
    # timer was cancelled twice.  The new timer still fired.
    timers = wait_until(lambda: (lambda r: r[1] if r[0] == 200 and r[1]["checked"] else None)(
        host.get("/api/edges/timers")), 5, msg="the stale-handle checks to run")
    assert timers == {"first_fired": 1, "second_fired": 1, "rep_ticks": 3, "checked": 1}
    time.sleep(0.1)   # a clock: ten periods of the cancelled 10 ms timer, none may tick
    assert host.get("/api/edges/timers")[1]["rep_ticks"] == 3

    status, leases = host.get("/api/edges/leases")
    assert status == 200, leases
    bad = {k: v for k, v in leases.items() if k.startswith("bad_")}
    assert len(bad) == 13
    assert bad == {k: "invalid argument" for k in bad}
    assert {k: v for k, v in leases.items() if k.startswith("own_")} == {
        "own_take": "success", "own_get": "success", "own_renew": "success",
        "own_release": "success"}
    assert leases["holder"] == "alice" and 59 < leases["remaining_s"] <= 60

    def spawn(**query):
        path = "/api/edges/spawn?" + "&".join("%s=%s" % kv for kv in query.items())
        status, body = host.get(path, timeout=15)
        assert status == 200, (path, body)
        assert body["status"] == 0 and body["timed_out"] is False, body
        return body
    assert spawn(max=3, text="abcdef")["text"] == "abc"
    assert spawn(max="SIZE_MAX", text="hello")["text"] == "hello"
    assert spawn(max="SIZE_MAX", bytes=1000000)["len"] == 1000000
    assert spawn(max=18446744073709551614, bytes=70000)["len"] == 70000
    assert spawn(max=100000, bytes=1000000)["len"] == 100000
    assert spawn(max=0, bytes=5000) == {"status": 0, "timed_out": False, "len": 0, "text": ""}
    assert host.running()
    assert host.stop() == 0


# --------------------------------------------------------------------------
# The example plugin, built out of tree


def sanitized_build():
    try:
        with open(os.path.join(harness.BUILD_DIR, "CMakeCache.txt")) as f:
            return "OH_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


def tree_listing(path):
    return sorted(os.path.relpath(os.path.join(d, f), path)
                  for d, _, files in os.walk(path) for f in files)


@pytest.fixture
def installed(tmp_path):
    """Installs the host's headers and pkg-config file under a temporary
    prefix; returns the environment that finds them with pkg-config."""
    if not shutil.which("pkg-config") or not shutil.which("make") or not shutil.which("cc"):
        pytest.skip("pkg-config, make and cc are needed to build the example")
    prefix = tmp_path / "prefix"
    cp = subprocess.run(["cmake", "--install", harness.BUILD_DIR, "--prefix", str(prefix)],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert (prefix / "include" / "oh" / "plugin.h").exists()
    # lib/pkgconfig, lib64/pkgconfig or Debian's lib/<triplet>/pkgconfig.
    pcs = glob.glob(str(prefix / "lib*" / "pkgconfig" / "orchestrator-host.pc")) + \
        glob.glob(str(prefix / "lib" / "*" / "pkgconfig" / "orchestrator-host.pc"))
    assert len(pcs) == 1, pcs
    env = harness.clean_env({"PKG_CONFIG_PATH": os.path.dirname(pcs[0])})

    # The pc file points at the headers just installed, not at the prefix
    # chosen at configure time.
    cflags = subprocess.run(["pkg-config", "--cflags", "orchestrator-host"], env=env,
                            capture_output=True, text=True, check=True).stdout.split()
    incs = [f[2:] for f in cflags if f.startswith("-I")]
    assert incs and os.path.exists(os.path.join(incs[0], "oh", "host.h")), cflags
    assert os.path.realpath(incs[0]) == os.path.realpath(prefix / "include")
    return env, incs[0]


@pytest.fixture
def relay_so(tmp_path, installed):
    """examples/relay built against the installed headers, output kept in
    tmp_path."""
    env, include = installed
    source = os.path.join(harness.SOURCE_DIR, "examples", "relay")
    before = tree_listing(source)
    out = tmp_path / "relay.so"
    cflags = "-O2 -g -Werror"
    ldflags = ""
    if sanitized_build():
        # The host runs under ASan; instrument the plugin the same way.
        cflags += " -fsanitize=address,undefined -fno-omit-frame-pointer"
        ldflags = "-fsanitize=address,undefined"
    cp = subprocess.run(["make", "-C", source, "OUT=%s" % out, "CFLAGS=%s" % cflags,
                         "LDFLAGS=%s" % ldflags],
                        env=env, capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "-I%s" % include in cp.stdout
    assert out.exists()
    assert tree_listing(source) == before, "the example build wrote into the source tree"
    return str(out)


def test_example_relay_built_out_of_tree(make_host, mqtt, make_mqtt, relay_so):
    host = make_host({"plugins": [
        {"module": "ndi", "path": "builtin:ndi"},
        {"module": "relay", "path": relay_so, "settings": {"default_lease_s": 30}},
    ]})
    host.wait_connected()
    p = plugins_by_module(host)
    assert p["relay"]["loaded"] is True, p["relay"]
    assert p["relay"]["name"] == "Power relays" and p["relay"]["ui"] == "/ui/relay"
    assert p["ndi"]["loaded"] is True
    wait_until(lambda: sorted(snapshot_modules(host)) == ["ndi", "relay"], 5)
    status, page = host.get("/ui/relay")
    assert status == 200 and 'id="relays"' in page
    status, script = host.get("/ui/relay/page.js")
    assert status == 200 and "/state" in script

    dev = "rl-" + rid()
    device = make_mqtt()
    device.subscribe(ROOT + "/device/%s/relay/cmd" % dev)
    device.publish(ROOT + "/device/%s/meta" % dev, {"device_id": dev, "modules": ["relay"]},
                   retain=True)
    device.publish(ROOT + "/device/%s/status" % dev, {"online": True, "device_id": dev},
                   retain=True)
    evt = ROOT + "/orchestrator/relay/evt"
    cmd = ROOT + "/orchestrator/relay/cmd"
    mqtt.subscribe(evt)

    def send(action, params, actor="app"):
        env = {"req_id": rid(), "actor": actor, "action": action, "params": params}
        mark = mqtt.mark()
        mqtt.publish(cmd, env)
        return env, mark

    def sent_ack(action, params, actor="app", timeout=5):
        env, mark = send(action, params, actor)
        return env, ack_for(mqtt, "relay", env["req_id"], since=mark, timeout=timeout)

    # One action end to end: relayed unchanged, DISPATCHED ack, state.
    def dispatched():
        env, ack = sent_ack("on", {"device_id": dev, "channel": 2}, timeout=0.5)
        return (env, ack) if ack["code"] == "DISPATCHED" else None
    env, ack = wait_until(dispatched, 10, msg="a DISPATCHED ack from the relay plugin")
    assert ack["ok"] is True and ack["action"] == "on" and ack["actor"] == "app"
    relayed = device.wait_for(ROOT + "/device/%s/relay/cmd" % dev,
                              lambda m: m["payload"]["req_id"] == env["req_id"])
    assert relayed["payload"] == env
    status, state = host.get("/api/relay/state")
    assert status == 200
    mine = [d for d in state["devices"] if d["device_id"] == dev]
    assert mine == [{"device_id": dev, "online": True, "channels": {"2": True},
                     "reserved_by": None}]

    # Leases through can_use: alice reserves, bob is denied, alice may.
    _, ack = sent_ack("reserve", {"device_id": dev}, actor="alice")
    assert ack["code"] == "OK" and ack["details"]["holder"] == "alice"
    _, ack = sent_ack("toggle", {"device_id": dev, "channel": 2}, actor="bob")
    assert ack["code"] == "DENIED" and "alice" in ack["error"]
    status, body = host.post("/api/relay/switch", {"device_id": dev, "channel": 2, "action": "off"})
    assert status == 409 and body["error"]["code"] == "DENIED"
    _, ack = sent_ack("toggle", {"device_id": dev, "channel": 2}, actor="alice")
    assert ack["code"] == "DISPATCHED"
    _, state = host.get("/api/relay/state")
    mine = [d for d in state["devices"] if d["device_id"] == dev][0]
    assert mine["channels"] == {"2": False} and mine["reserved_by"] == "alice"
    _, ack = sent_ack("release", {"device_id": dev}, actor="bob")
    assert ack["code"] == "NOT_OWNER"
    _, ack = sent_ack("release", {"device_id": dev}, actor="alice")
    assert ack["code"] == "OK"
    status, body = host.post("/api/relay/switch", {"device_id": dev, "channel": 1, "action": "on"})
    assert status == 202 and body["code"] == "DISPATCHED", body
    relayed = device.wait_for(ROOT + "/device/%s/relay/cmd" % dev,
                              lambda m: m["payload"]["actor"] == "orchestrator")
    assert relayed["payload"]["params"] == {"device_id": dev, "channel": 1}

    # Bad input is answered, by name.
    _, ack = sent_ack("on", {"device_id": dev, "channel": 99})
    assert ack["code"] == "BAD_REQUEST" and "params.channel" in ack["error"]
    _, ack = sent_ack("explode", {"device_id": dev})
    assert ack["code"] == "BAD_ACTION"
    mark = mqtt.mark()
    mqtt.publish(cmd, b"relay on please")
    ack = mqtt.wait_for(evt, lambda m: m["payload"]["code"] == "BAD_JSON", since=mark)["payload"]
    assert ack["ok"] is False

    # The NDI plugin next to it is unaffected, and the example unloads.
    ndi_answers(mqtt)
    status, body = host.delete("/api/plugins/relay")
    assert status == 200 and body["error"] == "unloaded"
    assert host.get("/api/relay/state")[0] == 404
    assert host.get("/ui/relay")[0] == 404
    for t in ("meta", "status"):
        device.publish(ROOT + "/device/%s/%s" % (dev, t), b"", retain=True)
    assert "[relay] on channel 2 of %s for app" % dev in host.log()


def doc_blocks(lang):
    """The fenced code blocks of docs/plugins.md in language lang."""
    with open(os.path.join(harness.SOURCE_DIR, "docs", "plugins.md")) as f:
        text = f.read()
    return re.findall(r"^```%s\n(.*?)^```$" % lang, text, re.M | re.S)


def test_hello_from_the_docs_builds_cleanly_and_loads(make_host, mqtt, tmp_path, installed):
    """docs/plugins.md's hello.c, built with the page's own command (which
    includes -Wall -Wextra -Werror) against the installed include/oh, then
    loaded and driven: the walk-through cannot drift from the ABI."""
    env, _ = installed
    hello = [b for b in doc_blocks("c") if b.startswith("/* hello.c")]
    assert len(hello) == 1, "docs/plugins.md has no hello.c block"
    command = [b for b in doc_blocks("sh") if "-o hello.so hello.c" in b]
    assert len(command) == 1, "docs/plugins.md has no build command for hello.c"
    assert all(flag in command[0] for flag in ("-Wall", "-Wextra", "-Werror"))
    (tmp_path / "hello.c").write_text(hello[0])
    cp = subprocess.run(["sh", "-ec", command[0]], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0 and not cp.stderr, cp.stdout + cp.stderr
    hello_so = str(tmp_path / "hello.so")

    host = make_host({"plugins": [{"module": "hello", "path": hello_so}]})
    host.wait_connected()
    p = plugins_by_module(host)
    assert p["hello"]["loaded"] is True and p["hello"]["name"] == "Hello", p["hello"]
    assert host.get("/api/hello/hello") == (200, {"hello": "hello"})
    mqtt.subscribe(ROOT + "/orchestrator/hello/evt")

    def acked():
        req = rid()
        mark = mqtt.mark()
        mqtt.publish(ROOT + "/orchestrator/hello/cmd", {"req_id": req, "action": "wave"})
        ack = ack_for(mqtt, "hello", req, since=mark, timeout=0.5)
        return ack if ack else None
    ack = wait_until(acked, 10, msg="an ack from the hello plugin")
    assert ack["ok"] is True and ack["code"] == "OK" and ack["action"] == "wave"



def test_builtin_and_shared_object_of_one_plugin_side_by_side(make_host, mqtt):
    """build/plugins/ndi.so is the same sources as builtin:ndi, compiled once
    with hidden symbols: both load into one host under two module names and
    each answers in its own namespace, with its own settings."""
    ndi_so = os.path.join(harness.BUILD_DIR, "plugins", "ndi.so")
    assert os.path.exists(ndi_so), "the build makes plugins/ndi.so"
    if shutil.which("nm"):
        # Hidden symbols: the .so exports its entry point only, and the
        # host none of the built-in's functions for the .so to bind to.
        def exported(path):
            out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True,
                                 text=True, check=True).stdout
            return {line.split()[-1] for line in out.splitlines() if line.strip()}
        assert {n for n in exported(ndi_so) if not n.startswith("_")} == {"oh_plugin_entry"}
        assert not [n for n in exported(harness.HOST_BINARY) if n.startswith("ndi_")]
    host = make_host({"plugins": [
        {"module": "ndi", "path": "builtin:ndi",
         "settings": {"sources": ["CAM-BUILTIN"], "mdns": False}},
        {"module": "video", "path": ndi_so,
         "settings": {"sources": ["CAM-SO"], "mdns": False}},
    ]})
    host.wait_connected()
    p = plugins_by_module(host)
    assert p["ndi"]["loaded"] is True and p["video"]["loaded"] is True, p
    assert p["video"]["path"] == ndi_so and p["video"]["ui"] == "/ui/video"

    def names(module):
        status, body = host.get("/api/%s/sources" % module)
        assert status == 200, body
        return sorted(body["sources"])
    assert wait_until(lambda: names("ndi") == ["CAM-BUILTIN"], 5)
    assert wait_until(lambda: names("video") == ["CAM-SO"], 5)
    status, page = host.get("/ui/video")
    assert status == 200 and "NDI" in page

    # Each acks on its own event topic.
    for module in ("ndi", "video"):
        mqtt.subscribe(ROOT + "/orchestrator/%s/evt" % module)
        req = rid()
        mark = mqtt.mark()
        mqtt.publish(ROOT + "/orchestrator/%s/cmd" % module, {"req_id": req, "action": "explode",
                                                                "params": {"device_id": "rpi-01"}})
        ack = wait_until(lambda: ack_for(mqtt, module, req, since=mark, timeout=0.5), 10,
                         msg="an ack from %s" % module)
        assert ack["code"] == "BAD_ACTION", ack
