"""
The live device registry: {root}/device/+/meta and /status merged into a
snapshot that is published retained on {root}/orchestrator/registry and served
at GET /api/registry and GET /api/devices/{id}.
"""

import re
import signal
import time

import pytest

from harness import MqttClient, wait_until

ROOT = "/lab"
REGISTRY = ROOT + "/orchestrator/registry"


def meta_topic(dev, root=ROOT):
    return "%s/device/%s/meta" % (root, dev)


def status_topic(dev, root=ROOT):
    return "%s/device/%s/status" % (root, dev)


def meta(dev, **extra):
    m = {"device_id": dev, "modules": ["ndi"],
         "capabilities": {"ndi": {"start_cmd_template": "ndi-viewer '{source}'"}},
         "labels": ["studio-a"], "feature": None, "version": "dev-0.1.0",
         "ts": "2026-11-28T10:00:00Z"}
    m.update(extra)
    return m


def status(dev, online=True, **extra):
    s = {"online": online, "ts": "2026-11-28T10:00:00Z", "device_id": dev}
    s.update(extra)
    return s


def devices_of(msg):
    return msg["payload"]["devices"]


def device_is(dev, **fields):
    """Predicate for a snapshot message: dev is present with these fields."""
    def pred(m):
        d = devices_of(m).get(dev)
        return d is not None and all(d.get(k) == v for k, v in fields.items())
    return pred


def device_absent(dev):
    return lambda m: dev not in devices_of(m)


@pytest.fixture
def host(make_host):
    h = make_host()
    h.wait_connected()
    return h


@pytest.fixture
def reg(mqtt):
    """The test's MQTT client, subscribed to the registry snapshot."""
    mqtt.subscribe(REGISTRY)
    return mqtt


def api_device(host, dev):
    status_, body = host.get("/api/devices/%s" % dev)
    return body if status_ == 200 else None


def assert_json_error(status_, body, code):
    assert status_ == code, (status_, body)
    assert isinstance(body, dict), "error body is not JSON: %r" % (body,)
    err = body.get("error")
    assert isinstance(err, dict), body
    assert isinstance(err.get("code"), str) and err["code"], body
    assert isinstance(err.get("message"), str) and err["message"], body


# --------------------------------------------------------------------------


def test_meta_and_status_merge_into_retained_snapshot(host, reg, make_mqtt):
    reg.publish(meta_topic("rpi-01"), meta("rpi-01"), retain=True)
    reg.publish(status_topic("rpi-01"), status("rpi-01"), retain=True)

    m = reg.wait_for(REGISTRY, device_is("rpi-01", online=True, modules=["ndi"]))
    snap = m["payload"]
    for key in ("devices", "locks", "modules", "ts", "seq"):
        assert key in snap, "snapshot lacks %r: %r" % (key, snap)
    assert isinstance(snap["locks"], dict)
    assert isinstance(snap["modules"], list)
    assert isinstance(snap["seq"], int)
    assert isinstance(snap["ts"], str) and snap["ts"].endswith("Z"), snap["ts"]
    dev = snap["devices"]["rpi-01"]
    assert dev["labels"] == ["studio-a"]
    assert dev["capabilities"] == {"ndi": {"start_cmd_template": "ndi-viewer '{source}'"}}
    assert dev["version"] == "dev-0.1.0"
    assert "last_seen" in dev, dev

    # Top-level keys merge, later wins; keys not mentioned stay.
    reg.publish(meta_topic("rpi-01"), {"device_id": "rpi-01", "labels": ["studio-b"], "extra": 7},
                retain=True)
    m2 = reg.wait_for(REGISTRY, device_is("rpi-01", labels=["studio-b"], extra=7))
    dev = devices_of(m2)["rpi-01"]
    assert dev["modules"] == ["ndi"], dev
    assert dev["online"] is True, dev
    assert m2["payload"]["seq"] > snap["seq"]

    # Status going offline is tracked.
    reg.publish(status_topic("rpi-01"), status("rpi-01", online=False), retain=True)
    reg.wait_for(REGISTRY, device_is("rpi-01", online=False, labels=["studio-b"]))

    # A subscriber that connects afterwards gets the latest state, retained.
    late = make_mqtt()
    late.subscribe(REGISTRY)
    r = late.wait_for(REGISTRY)
    assert r["retain"], "registry snapshot was not retained"
    dev = devices_of(r)["rpi-01"]
    assert dev["online"] is False and dev["labels"] == ["studio-b"] and dev["extra"] == 7, dev


def test_snapshot_seq_increases(host, reg):
    for i in range(5):
        reg.publish(meta_topic("seq-dev"), {"device_id": "seq-dev", "n": i}, retain=True)
        reg.wait_for(REGISTRY, device_is("seq-dev", n=i))
    seqs = [m["payload"]["seq"] for m in reg.messages(REGISTRY)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs


def test_http_registry_and_device(host, reg):
    reg.publish(meta_topic("cam-7"), meta("cam-7", labels=["x"]), retain=True)
    reg.publish(status_topic("cam-7"), status("cam-7"), retain=True)
    reg.wait_for(REGISTRY, device_is("cam-7", online=True))

    st, body = host.get("/api/registry")
    assert st == 200, (st, body)
    for key in ("devices", "locks", "modules", "ts", "seq"):
        assert key in body, body
    assert body["devices"]["cam-7"]["labels"] == ["x"]
    assert body["devices"]["cam-7"]["online"] is True

    st, hdrs, _ = host.request("GET", "/api/registry")
    assert "application/json" in (hdrs.get("Content-Type") or ""), dict(hdrs)

    st, dev = host.get("/api/devices/cam-7")
    assert st == 200, (st, dev)
    assert dev["modules"] == ["ndi"] and dev["online"] is True and dev["labels"] == ["x"], dev

    st, body = host.get("/api/devices/no-such-device")
    assert_json_error(st, body, 404)


def test_plain_empty_meta_does_not_remove_a_device(host, reg):
    """Only clearing the retained meta retires a device; a plain empty
    publish is not that (mosquitto speaks MQTT 5, so the host subscribes
    with retain-as-published and can tell them apart)."""
    reg.publish(meta_topic("kept-1"), meta("kept-1"), retain=True)
    reg.wait_for(REGISTRY, lambda m: "kept-1" in devices_of(m))
    reg.publish(meta_topic("kept-1"), b"", retain=False)
    # A later update is the fence: the empty publish came before it.
    mark = reg.mark()
    reg.publish(status_topic("kept-1"), status("kept-1"), retain=True)
    m = reg.wait_for(REGISTRY, device_is("kept-1", online=True), since=mark)
    assert devices_of(m)["kept-1"]["modules"] == ["ndi"]
    assert api_device(host, "kept-1") is not None
    assert "speaking MQTT 5" in host.log(), "the host did not say it speaks MQTT 5 to mosquitto"


def test_empty_retained_meta_removes_device(host, reg):
    reg.publish(meta_topic("gone-1"), meta("gone-1"), retain=True)
    reg.publish(status_topic("gone-1"), status("gone-1"), retain=True)
    reg.publish(meta_topic("stays-1"), meta("stays-1"), retain=True)
    reg.wait_for(REGISTRY, lambda m: "gone-1" in devices_of(m) and "stays-1" in devices_of(m))
    assert api_device(host, "gone-1") is not None

    mark = reg.mark()
    reg.publish(meta_topic("gone-1"), b"", retain=True)
    m = reg.wait_for(REGISTRY, device_absent("gone-1"), since=mark)
    assert "stays-1" in devices_of(m)
    st, body = host.get("/api/devices/gone-1")
    assert_json_error(st, body, 404)
    st, body = host.get("/api/registry")
    assert "gone-1" not in body["devices"]

    # The retained snapshot (for late subscribers) agrees.
    late = MqttClient(reg.host, reg.port)
    try:
        late.subscribe(REGISTRY)
        r = late.wait_for(REGISTRY)
        assert "gone-1" not in devices_of(r) and "stays-1" in devices_of(r)
    finally:
        late.close()

    # The device can come back.
    reg.publish(meta_topic("gone-1"), meta("gone-1", version="2"), retain=True)
    reg.wait_for(REGISTRY, device_is("gone-1", version="2"))


BAD_PAYLOADS = [
    ("not json", b"this is not json {"),
    ("truncated json", b'{"device_id": "bad-in", "x": '),
    ("json array", b'[1, 2, 3]'),
    ("json string", b'"hello"'),
    ("json number", b"42"),
    ("json null", b"null"),
    ("json true", b"true"),
    ("not utf-8", b'{"x": "\xff\xfe"}'),
]


@pytest.mark.parametrize("kind", ["meta", "status"])
def test_bad_payloads_ignored_then_good_message_works(host, reg, kind):
    dev = "bad-in-" + kind
    topic = meta_topic(dev) if kind == "meta" else status_topic(dev)
    good = meta(dev) if kind == "meta" else status(dev)

    reg.publish(topic, dict(good, marker=0))
    reg.wait_for(REGISTRY, device_is(dev, marker=0))

    for i, (label, payload) in enumerate(BAD_PAYLOADS, start=1):
        reg.publish(topic, payload)
        # A good message after the bad one: once it shows, the bad one was handled.
        reg.publish(topic, dict(good, marker=i))
        m = reg.wait_for(REGISTRY, device_is(dev, marker=i),
                         timeout=5)
        d = devices_of(m)[dev]
        assert "x" not in d, "%s payload was merged: %r" % (label, d)
        assert host.running(), "host died on %s payload" % label

    st, d = host.get("/api/devices/" + dev)
    assert st == 200 and d["marker"] == len(BAD_PAYLOADS), (st, d)
    # Eight bad payloads within the minute: one log line for the device.
    complaints = [l for l in host.log().splitlines() if "ignored message on " + topic in l]
    assert len(complaints) == 1, complaints


@pytest.mark.parametrize("kind", ["meta", "status"])
def test_device_id_mismatch_rejected(host, reg, kind):
    topic_of = meta_topic if kind == "meta" else status_topic
    reg.publish(topic_of("real-1"), {"device_id": "real-1", "marker": 1})
    reg.wait_for(REGISTRY, device_is("real-1", marker=1))

    # Payload says another device: rejected, neither device changes.
    reg.publish(topic_of("real-1"), {"device_id": "impostor-1", "marker": 2, "evil": True})
    reg.publish(topic_of("other-1"), {"device_id": "real-1", "marker": 3, "evil": True})
    reg.publish(topic_of("real-1"), {"device_id": "real-1", "marker": 4})
    m = reg.wait_for(REGISTRY, device_is("real-1", marker=4))
    devs = devices_of(m)
    assert "evil" not in devs["real-1"], devs["real-1"]
    assert "impostor-1" not in devs, devs.keys()
    assert "other-1" not in devs, devs.keys()

    # A payload without device_id is fine: the topic says who it is.
    reg.publish(topic_of("real-1"), {"marker": 5})
    reg.wait_for(REGISTRY, device_is("real-1", marker=5))


def test_oversized_payload_ignored_default_limit(host, reg):
    dev = "big-1"
    reg.publish(meta_topic(dev), meta(dev, marker=0))
    reg.wait_for(REGISTRY, device_is(dev, marker=0))

    big = meta(dev, marker=1, blob="x" * 70000)          # over the 65536 default
    reg.publish(meta_topic(dev), big)
    reg.publish(meta_topic(dev), meta(dev, marker=2))
    m = reg.wait_for(REGISTRY, device_is(dev, marker=2))
    assert "blob" not in devices_of(m)[dev]

    # Somewhat under the limit is accepted.
    ok = meta(dev, marker=3, blob="y" * 60000)
    reg.publish(meta_topic(dev), ok)
    m = reg.wait_for(REGISTRY, device_is(dev, marker=3))
    assert len(devices_of(m)[dev]["blob"]) == 60000


def _payload_of_size(dev, marker, size):
    base = {"device_id": dev, "marker": marker, "pad": ""}
    import json
    n = size - len(json.dumps(base).encode())
    base["pad"] = "p" * n
    raw = json.dumps(base).encode()
    assert len(raw) == size
    return raw


def test_max_payload_bytes_boundary(make_host, reg):
    host = make_host({"max_payload_bytes": 1024})
    host.wait_connected()
    dev = "edge-1"
    reg.publish(meta_topic(dev), _payload_of_size(dev, 1, 1024))      # exactly the limit: ok
    reg.wait_for(REGISTRY, device_is(dev, marker=1))
    reg.publish(meta_topic(dev), _payload_of_size(dev, 2, 1025))      # one over: ignored
    reg.publish(status_topic(dev), _payload_of_size(dev, 3, 1025))
    reg.publish(meta_topic(dev), {"device_id": dev, "marker": 4, "small": True})
    m = reg.wait_for(REGISTRY, device_is(dev, marker=4))
    assert devices_of(m)[dev]["small"] is True
    assert len(devices_of(m)[dev]["pad"]) > 900   # the pad from marker 1, never replaced
    # Watch every snapshot: neither marker 2 nor 3 ever appeared.
    for s in reg.messages(REGISTRY):
        assert devices_of(s).get(dev, {}).get("marker") not in (2, 3)


BAD_IDS = [
    "a" * 65,                # too long
    "bad id",                # space
    "bad$id",
    "bad@id",
    "bad:id",
    "bad\u00e9id",           # non-ASCII
    "bad%id",
    "",                      # empty level: /lab/device//meta
]


def test_invalid_device_ids_ignored(host, reg):
    good_long = "a" * 64
    for i, bad in enumerate(BAD_IDS):
        reg.publish(meta_topic(bad), {"marker": i})
        reg.publish(status_topic(bad), status(bad))
    # Valid ids at the edges of the alphabet and length.
    for dev in (good_long, "A.b_c-9", "x"):
        reg.publish(meta_topic(dev), {"device_id": dev, "ok": True})
    m = reg.wait_for(REGISTRY, lambda m: all(devices_of(m).get(d, {}).get("ok")
                                              for d in (good_long, "A.b_c-9", "x")))
    devs = devices_of(m)
    assert set(devs) == {good_long, "A.b_c-9", "x"}, sorted(devs)
    for s in reg.messages(REGISTRY):
        for bad in BAD_IDS:
            assert bad not in devices_of(s), "invalid id %r entered the registry" % bad
    st, body = host.get("/api/registry")
    assert set(body["devices"]) == {good_long, "A.b_c-9", "x"}


def test_deeper_topics_are_not_registry_input(host, reg):
    # Module status and commands live below the device; they are not meta.
    reg.publish("/lab/device/mod-1/ndi/status", {"state": "running", "online": True}, retain=True)
    reg.publish("/lab/device/mod-1/cmd", {"action": "ping"})
    reg.publish(meta_topic("mod-2"), {"device_id": "mod-2"})
    m = reg.wait_for(REGISTRY, lambda m: "mod-2" in devices_of(m))
    assert "mod-1" not in devices_of(m)


def test_stale_after_silence(make_host, reg):
    host = make_host({"stale_after_s": 1})
    host.wait_connected()
    reg.publish(meta_topic("quiet-1"), meta("quiet-1"), retain=True)
    # From the last message (the first snapshot may wait for the start-up
    # to settle, so it is no clock).
    t0 = time.monotonic()
    reg.publish(status_topic("quiet-1"), status("quiet-1"), retain=True)
    reg.publish(meta_topic("off-1"), meta("off-1"), retain=True)
    reg.publish(status_topic("off-1"), status("off-1", online=False), retain=True)
    # The snapshot made when the status came in says "not stale" (it is the
    # host's view at that moment, however late a loaded machine reads it);
    # /api/devices says so too if asked before a second has passed.
    m = reg.wait_for(REGISTRY, device_is("quiet-1", online=True))
    assert devices_of(m)["quiet-1"].get("stale") is not True, devices_of(m)
    asked = time.monotonic()
    d = api_device(host, "quiet-1")
    if time.monotonic() - t0 < 0.9:
        assert d.get("stale") is not True, d
    else:
        print("/api/devices asked %.2f s after the status: too late to say not stale"
              % (asked - t0))

    mark = reg.mark()
    wait_until(lambda: (api_device(host, "quiet-1") or {}).get("stale") is True, timeout=10,
               msg="quiet-1 to be stale in /api/devices")
    assert time.monotonic() - t0 > 0.5, "stale too early"
    # The snapshot on MQTT says so as well, without any device speaking.
    reg.wait_for(REGISTRY, device_is("quiet-1", stale=True), timeout=10, since=mark)
    # An offline device is not stale: nobody expects to hear from it.
    assert (api_device(host, "off-1") or {}).get("stale") is not True

    mark = reg.mark()
    reg.publish(status_topic("quiet-1"), status("quiet-1"), retain=True)
    reg.wait_for(REGISTRY, lambda m: devices_of(m)["quiet-1"].get("stale") is not True,
                 since=mark)
    assert api_device(host, "quiet-1").get("stale") is not True


def test_topic_root(make_host, mqtt):
    host = make_host({"topic_root": "/test-root"})
    host.wait_connected()
    mqtt.subscribe("/test-root/orchestrator/registry")
    mqtt.subscribe(REGISTRY)
    mqtt.publish("/lab/device/wrong-root/meta", {"device_id": "wrong-root"}, retain=True)
    mqtt.publish(meta_topic("rooted", "/test-root"), meta("rooted"), retain=True)
    mqtt.publish(status_topic("rooted", "/test-root"), status("rooted"), retain=True)
    m = mqtt.wait_for("/test-root/orchestrator/registry", device_is("rooted", online=True))
    assert "wrong-root" not in devices_of(m)
    assert m["payload"]["devices"]["rooted"]["modules"] == ["ndi"]
    assert not mqtt.messages(REGISTRY), "snapshot published under /lab despite topic_root"
    st, body = host.get("/api/devices/rooted")
    assert st == 200 and body["online"] is True
    st, body = host.get("/api/devices/wrong-root")
    assert st == 404


def test_retained_input_present_before_host_starts(broker, mqtt, make_host):
    # Devices published retained meta/status before the host came up.
    for i in range(5):
        dev = "early-%d" % i
        mqtt.publish(meta_topic(dev), meta(dev), retain=True)
        mqtt.publish(status_topic(dev), status(dev), retain=True)
    mqtt.subscribe(REGISTRY)
    host = make_host()
    m = mqtt.wait_for(REGISTRY, lambda m: all(devices_of(m).get("early-%d" % i, {}).get("online")
                                              for i in range(5)), timeout=10)
    assert len(devices_of(m)) == 5
    st, body = host.get("/api/registry")
    assert sorted(body["devices"]) == ["early-%d" % i for i in range(5)]


def test_coalescing_burst(make_host, reg):
    interval_ms = 50
    host = make_host({"snapshot_interval_ms": interval_ms})
    host.wait_connected()
    n_dev, per_dev = 200, 10
    mark = reg.mark()

    t0 = time.monotonic()
    infos = []
    for k in range(per_dev):
        for i in range(n_dev):
            dev = "burst-%03d" % i
            payload = {"device_id": dev, "n": k, "pad": "z" * 40}
            topic = meta_topic(dev) if k % 2 == 0 else status_topic(dev)
            infos.append(reg.publish(topic, payload, wait=False))
    reg.wait_published(infos, timeout=60)
    t_sent = time.monotonic()

    def final(m):
        devs = devices_of(m)
        return all(devs.get("burst-%03d" % i, {}).get("n") == per_dev - 1 for i in range(n_dev))

    m = reg.wait_for(REGISTRY, final, timeout=10, since=mark)
    latency = m["time"] - t_sent
    assert latency <= 1.0, "final state appeared %.2fs after the burst (limit 1s)" % latency

    # A marker device after the burst: once a snapshot holds it, every
    # snapshot the burst caused has come (one connection, in order).
    reg.publish(meta_topic("burst-marker"), meta("burst-marker"), retain=True)
    reg.wait_for(REGISTRY, lambda m: "burst-marker" in devices_of(m), timeout=10, since=mark)
    snaps = reg.messages(REGISTRY, since=mark)
    updates = n_dev * per_dev
    window = snaps[-1]["time"] - t0
    # Snapshot count is bounded by the interval, not by the updates.
    limit = window / (interval_ms / 1000.0) + 3
    assert len(snaps) <= limit, ("%d snapshots in %.2fs with snapshot_interval_ms=%d (max %d)"
                                 % (len(snaps), window, interval_ms, limit))
    assert len(snaps) < updates / 10, "%d snapshots for %d updates" % (len(snaps), updates)
    seqs = [s["payload"]["seq"] for s in snaps]
    assert all(b > a for a, b in zip(seqs, seqs[1:])), "seq not strictly increasing: %r" % seqs
    # Nothing moves after the final state: every snapshot from the first
    # final one on (up to the marker's) is final.
    first_final = next(i for i, s in enumerate(snaps) if final(s))
    assert all(final(s) for s in snaps[first_final:]), "an older state after the final one"
    st, body = host.get("/api/registry")
    assert final({"payload": body})


# ------------------------------------------------------- typed known fields


def test_known_fields_of_the_wrong_type_are_dropped(host, reg):
    dev = "typed-1"
    good = meta(dev)
    reg.publish(meta_topic(dev), good, retain=True)
    reg.publish(status_topic(dev), status(dev), retain=True)
    reg.wait_for(REGISTRY, device_is(dev, online=True))

    # The examples: the known fields are dropped, the rest merges.
    reg.publish(meta_topic(dev), {"modules": "ndi", "labels": 5, "capabilities": [],
                                  "version": "v2", "marker": 1})
    reg.publish(status_topic(dev), {"online": "yes", "ts": 5, "marker": 2})
    m = reg.wait_for(REGISTRY, device_is(dev, marker=2))
    d = devices_of(m)[dev]
    assert d["version"] == "v2", d
    expect = {"modules": good["modules"], "labels": good["labels"],
              "capabilities": good["capabilities"], "online": True,
              "ts": "2026-11-28T10:00:00Z"}
    assert {k: d.get(k) for k in expect} == expect, d
    for s in reg.messages(REGISTRY):
        sd = devices_of(s).get(dev, {})
        assert sd.get("modules") in (None, ["ndi"]) and sd.get("online") in (None, True), sd
    st, body = host.get("/api/devices/" + dev)
    assert st == 200 and {k: body.get(k) for k in expect} == expect, (st, body)
    st, body = host.get("/api/registry")
    assert {k: body["devices"][dev].get(k) for k in expect} == expect, body

    # A device whose first word is all wrong is known, with nothing typed in it.
    reg.publish(meta_topic("typed-2"), {"modules": 5, "online": "yes", "marker": 3})
    m = reg.wait_for(REGISTRY, device_is("typed-2", marker=3))
    d = devices_of(m)["typed-2"]
    assert "modules" not in d and d["online"] is None, d

    # Logged, naming the fields, at most once a minute per device.
    complaints = [l for l in host.log().splitlines()
                  if "ignored" in l and "/device/%s/" % dev in l]
    assert len(complaints) == 1, complaints
    for field in ("modules", "labels", "capabilities"):
        assert field in complaints[0], complaints


def test_the_device_agents_own_meta_and_status_pass(host, reg):
    # The shapes src/device/agent.c publishes, null feature included.
    dev = "agent-shaped"
    reg.publish(meta_topic(dev), {"device_id": dev, "modules": ["ndi"],
                                  "capabilities": {"ndi": {}}, "labels": [],
                                  "feature": None, "version": "0.1.0",
                                  "ts": "2026-11-28T10:00:00Z"}, retain=True)
    reg.publish(status_topic(dev), status(dev), retain=True)
    reg.wait_for(REGISTRY, device_is(dev, online=True, modules=["ndi"], labels=[],
                                     capabilities={"ndi": {}}, feature=None, version="0.1.0"))
    assert not [l for l in host.log().splitlines() if "/device/%s/" % dev in l]


# ------------------------------------------------------- "." and ".." ids


def test_dot_device_ids_never_enter_the_registry(host, reg):
    for bad in (".", ".."):
        reg.publish(meta_topic(bad), meta(bad), retain=True)
        reg.publish(status_topic(bad), {"online": True, "ts": "2026-11-28T10:00:00Z"})
    # Only those two: dots are fine inside an id and in longer ones.
    for dev in ("...", ".a", "a.."):
        reg.publish(meta_topic(dev), {"ok": True})
    m = reg.wait_for(REGISTRY, lambda m: all(devices_of(m).get(d, {}).get("ok")
                                              for d in ("...", ".a", "a..")))
    for s in reg.messages(REGISTRY):
        assert "." not in devices_of(s) and ".." not in devices_of(s), sorted(devices_of(s))
    st, body = host.get("/api/registry")
    assert set(body["devices"]) == {"...", ".a", "a.."}, sorted(body["devices"])
    st, _ = host.get("/api/devices/...")
    assert st == 200


def _ndi_host(make_host):
    h = make_host({"plugins": [{"module": "ndi", "path": "builtin:ndi",
                                "settings": {"ack_timeout_s": 1}}]})
    h.wait_connected()
    return h


def test_commands_to_dot_device_ids_are_refused(make_host, mqtt):
    host = _ndi_host(make_host)
    cmd, evt = ROOT + "/orchestrator/ndi/cmd", ROOT + "/orchestrator/ndi/evt"
    mqtt.subscribe(evt)
    mqtt.subscribe(ROOT + "/device/#")

    def ack(req_id, action, params, timeout=5):
        mark = mqtt.mark()
        mqtt.publish(cmd, {"req_id": req_id, "actor": "app", "action": action, "params": params})
        return mqtt.wait_for(evt, lambda m: m["payload"]["req_id"] == req_id,
                             timeout=timeout, since=mark)["payload"]

    # The plugin subscribes a moment after /healthz says connected.
    wait_until(lambda: _try(lambda: ack("probe-%f" % time.monotonic(), "release",
                                        {"device_id": "probe"}, timeout=0.5)),
               timeout=10, msg="the ndi plugin to answer")

    for i, bad in enumerate((".", "..")):
        for action, params in (("stop", {}), ("start", {"source": "CAM-1"}),
                               ("reserve", {"lease_s": 5})):
            a = ack("dot-%d-%s" % (i, action), action, dict(params, device_id=bad))
            assert a["code"] == "BAD_REQUEST" and a["ok"] is False, a
            assert "device_id" in a["error"], a
        st, body = host.post("/api/ndi/send", {"device_id": bad, "action": "stop"})
        assert st == 400 and body["error"]["code"] == "BAD_REQUEST", (st, body)
        a = ack("dot-%d-schedule" % i, "schedule", {
            "at": "2099-01-01T00:00:00Z", "commands": [{"device_id": bad, "action": "stop"}]})
        assert a["code"] == "BAD_REQUEST" and "device_id" in a["error"], a

    # A good command after them is relayed; the host publishes in order, so
    # once it shows nothing can still be on its way to a dot topic.
    a = ack("after-dots", "stop", {"device_id": "rpi-01"})
    assert a["code"] == "DISPATCHED", a
    mqtt.wait_for(ROOT + "/device/rpi-01/ndi/cmd", lambda m: m["payload"]["req_id"] == "after-dots")
    dots = [m["topic"] for m in mqtt.messages(ROOT + "/device/#")
            if m["topic"].split("/")[3] in (".", "..")]
    assert not dots, dots


def _try(fn):
    try:
        fn()
        return True
    except AssertionError:
        return False


# ------------------------------------------------- the snapshot's size and acks

def snapshot_publishes(host):
    """oh_snapshot_publishes_total of GET /metrics."""
    status, text = host.get("/metrics")
    m = re.search(r"^oh_snapshot_publishes_total(?:\{\})? (\d+)", text, re.M)
    assert status == 200 and m, (status, text[-2000:])
    return int(m.group(1))


def test_past_max_snapshot_bytes_the_broker_gets_a_summary(make_host, reg):
    host = make_host({"limits": {"max_snapshot_bytes": 2000}})
    host.wait_connected()
    reg.publish(meta_topic("sum-small"), meta("sum-small"), retain=True)
    reg.wait_for(REGISTRY, lambda m: "sum-small" in (m["payload"]["devices"] or {}))
    mark = reg.mark()
    reg.publish(meta_topic("sum-big"), meta("sum-big", pad="p" * 3000), retain=True)
    m = reg.wait_for(REGISTRY, lambda m: m["payload"]["devices"] is None, since=mark)
    s = m["payload"]
    assert s["device_count"] == 2 and s["bytes"] > 3000 and s["max_snapshot_bytes"] == 2000, s
    assert isinstance(s["seq"], int) and s["ts"], s
    # HTTP still has the whole.
    status, body = host.get("/api/registry")
    assert status == 200 and set(body["devices"]) >= {"sum-small", "sum-big"}, body
    assert body["seq"] >= s["seq"]
    # Back under the limit, the whole again.
    reg.publish(meta_topic("sum-big"), b"", retain=True)
    reg.wait_for(REGISTRY, lambda m: m["payload"]["devices"] is not None and
                 "sum-big" not in m["payload"]["devices"], since=mark)


def test_a_stalled_broker_gets_no_second_snapshot_before_its_ack(make_host, reg, broker):
    """libmosquitto holds an unacknowledged snapshot twice; one that was
    published again after 5 s stacked copies (4.6 GB at 755,000 devices)."""
    host = make_host({"snapshot_interval_ms": 50})
    host.wait_connected()
    reg.publish(meta_topic("stall-1"), meta("stall-1"), retain=True)
    reg.wait_for(REGISTRY, device_is("stall-1"))
    before = snapshot_publishes(host)
    broker.proc.send_signal(signal.SIGSTOP)
    try:
        # Changes the broker does not carry: a reservation, renewed.
        status, ack = host.post("/api/ndi/reserve", {"device_id": "stall-1", "actor": "a", "lease_s": 600})
        assert status == 200, ack
        # That snapshot goes out and waits for its ack.
        wait_until(lambda: snapshot_publishes(host) > before, timeout=5)
        sent = snapshot_publishes(host)
        renewals = [0]

        def waited_or_sent_again():
            renewals[0] += 1
            host.post("/api/ndi/renew", {"device_id": "stall-1", "actor": "a", "lease_s": 600 - renewals[0]})
            return snapshot_publishes(host) > sent or "has not acknowledged" in host.log()

        wait_until(waited_or_sent_again, timeout=15, interval=0.2)
        assert snapshot_publishes(host) == sent, "a second snapshot was queued before the first's ack"
    finally:
        broker.proc.send_signal(signal.SIGCONT)
    # Once acknowledged, the latest goes out.
    status, body = host.get("/api/registry")
    reg.wait_for(REGISTRY, lambda m: m["payload"]["locks"] == body["locks"], timeout=20)


def test_a_summary_left_by_the_last_run_sets_the_devices_to_wait_for(make_host, reg):
    """A host whose store was lost must not replace a big registry with its
    first few devices: it waits for as many as the broker's last snapshot
    had, and past max_snapshot_bytes that snapshot is a summary."""
    reg.publish(REGISTRY, {"devices": None, "device_count": 7, "bytes": 9000,
                           "max_snapshot_bytes": 2000, "ts": "2026-12-07T08:00:00Z", "seq": 3},
                retain=True)
    try:
        host = make_host({"limits": {"max_snapshot_bytes": 2000}})
        host.wait_connected()
        wait_until(lambda: "the broker's last snapshot has 7 devices" in host.log(), timeout=10,
                   msg="the summary's device_count to be waited for")
    finally:
        reg.publish(REGISTRY, b"", retain=True)
