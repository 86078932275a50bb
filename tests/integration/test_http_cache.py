"""
Fewer bytes for big registries over HTTP (issue 16): GET /api/registry and
GET /api/ndi/devices answer 304 to If-None-Match while nothing changed,
send a gzip copy made once per snapshot to clients that accept gzip (and
Vary: Accept-Encoding), and /api/registry?since=SEQ sends only the devices
changed and removed after snapshot SEQ, or the whole snapshot when SEQ is
too old.  Real host, real broker, real HTTP (http.client, no decoding
done for us).
"""

import gzip
import http.client
import json

import pytest

import harness
from conftest import LOCALHOST, wait_until

ROOT = "/lab"


def meta(dev, **extra):
    m = {"device_id": dev, "modules": ["ndi"], "labels": ["studio-a", "rack-%s" % dev],
         "capabilities": {"ndi": {"start_cmd_template": "ndi-viewer '{source}'"}},
         "version": "dev-0.1.0", "ts": "2026-11-28T10:00:00Z", "name": "Device %s" % dev}
    m.update(extra)
    return m


def get(host, path, headers=None):
    """(status, headers as a dict with lower-case names, raw body bytes)."""
    c = http.client.HTTPConnection(LOCALHOST, host.http_port, timeout=10)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        hdrs = {}
        for k, v in r.getheaders():
            k = k.lower()
            hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
        return r.status, hdrs, body
    finally:
        c.close()


def metric(host, name):
    _, _, text = get(host, "/metrics")
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


def announce(mqtt, ids, **extra):
    for dev in ids:
        mqtt.publish("%s/device/%s/meta" % (ROOT, dev), meta(dev, **extra), retain=True)
        mqtt.publish("%s/device/%s/status" % (ROOT, dev),
                     {"device_id": dev, "online": True, "ts": "2026-11-28T10:00:00Z"}, retain=True)


def registry(host):
    st, _, body = get(host, "/api/registry")
    assert st == 200, body
    return json.loads(body)


def wait_registry(host, pred, msg):
    return wait_until(lambda: (lambda r: r if pred(r) else None)(registry(host)), 10, 0.02, msg)


def wait_gzip(host, path):
    """The gzip copy is made in slices on the loop: until it is complete the
    plain body goes out.  Waits for the first gzip answer."""
    def once():
        st, h, body = get(host, path, {"Accept-Encoding": "gzip"})
        assert st == 200, body
        return (h, body) if h.get("content-encoding") == "gzip" else None
    return wait_until(once, 10, 0.02, "a gzip answer from " + path)


@pytest.fixture
def host(make_host):
    h = make_host()
    h.wait_connected()
    return h


def test_registry_etag_304_until_a_change(host, mqtt):
    ids = ["cache-%02d" % i for i in range(30)]
    announce(mqtt, ids)
    snap = wait_registry(host, lambda r: all(i in r["devices"] for i in ids), "30 devices")

    st, h, body = get(host, "/api/registry")
    assert st == 200
    etag = h["etag"]
    assert etag.startswith('"') and etag.endswith('"'), h
    assert "Accept-Encoding" in h["vary"], h
    assert json.loads(body)["seq"] >= snap["seq"]

    # Unchanged: 304, no body, the same tag; also when listed among others.
    for inm in (etag, 'W/%s' % etag, '"other", %s' % etag):
        st, h2, body2 = get(host, "/api/registry", {"If-None-Match": inm})
        assert st == 304, (inm, st, body2[:200])
        assert body2 == b""
        assert h2["etag"] == etag
        assert "Accept-Encoding" in h2["vary"]
    assert get(host, "/api/registry", {"If-None-Match": '"other"'})[0] == 200
    assert metric(host, "oh_http_not_modified_total") >= 3

    # A change: a new snapshot, a new tag, 200 to the old one.
    mqtt.publish("%s/device/cache-05/status" % ROOT,
                 {"device_id": "cache-05", "online": False, "ts": "2026-11-28T10:01:00Z"}, retain=True)
    wait_registry(host, lambda r: r["devices"]["cache-05"]["online"] is False, "cache-05 offline")
    st, h3, body3 = get(host, "/api/registry", {"If-None-Match": etag})
    assert st == 200
    assert h3["etag"] != etag
    assert json.loads(body3)["devices"]["cache-05"]["online"] is False


def test_registry_gzip_is_the_plain_body_compressed_once_per_snapshot(host, mqtt):
    ids = ["gz-%03d" % i for i in range(200)]
    announce(mqtt, ids)
    wait_registry(host, lambda r: all(i in r["devices"] for i in ids), "200 devices")
    before = metric(host, "oh_http_gzip_compressions_total")

    h, zipped = wait_gzip(host, "/api/registry")
    st, hp, plain = get(host, "/api/registry")
    assert st == 200 and "content-encoding" not in hp
    assert gzip.decompress(zipped) == plain
    assert len(zipped) * 4 < len(plain), (len(zipped), len(plain))
    assert "Accept-Encoding" in h["vary"]
    # The gzip representation has a tag of its own; either one is "not
    # modified" (the same snapshot).
    assert h["etag"] != hp["etag"]
    assert get(host, "/api/registry", {"If-None-Match": h["etag"], "Accept-Encoding": "gzip"})[0] == 304

    # Cached: the same bytes every time, one compression for this snapshot.
    for _ in range(5):
        st, h2, again = get(host, "/api/registry", {"Accept-Encoding": "deflate, gzip;q=0.8"})
        assert st == 200 and h2.get("content-encoding") == "gzip"
        assert again == zipped
    assert metric(host, "oh_http_gzip_compressions_total") == before + 1

    # q=0 refuses gzip.
    st, h3, body = get(host, "/api/registry", {"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in h3 and body == plain

    # A new snapshot gets a new copy, compressed once more.
    mqtt.publish("%s/device/gz-007/meta" % ROOT, meta("gz-007", version="dev-0.2.0"), retain=True)
    wait_registry(host, lambda r: r["devices"]["gz-007"]["version"] == "dev-0.2.0", "gz-007 v0.2")
    _, zipped2 = wait_gzip(host, "/api/registry")
    assert zipped2 != zipped
    assert gzip.decompress(zipped2) == get(host, "/api/registry")[2]
    assert metric(host, "oh_http_gzip_compressions_total") == before + 2


def test_small_bodies_are_not_compressed(host):
    st, h, body = get(host, "/api/registry", {"Accept-Encoding": "gzip"})
    assert st == 200 and len(body) < 2048
    assert "content-encoding" not in h
    assert json.loads(body)["devices"] == {}


def test_registry_since(host, mqtt):
    announce(mqtt, ["keep-1", "change-1", "gone-1"])
    base = wait_registry(host, lambda r: {"keep-1", "change-1", "gone-1"} <= set(r["devices"]), "3 devices")
    seq0 = base["seq"]

    # Nothing since the current seq: an empty delta.
    st, h, body = get(host, "/api/registry?since=%d" % seq0)
    d = json.loads(body)
    assert st == 200 and h["x-registry-delta"] == "true"
    assert d["delta"] is True and d["since"] == seq0 and d["seq"] == seq0
    assert d["devices"] == {} and d["removed"] == []
    assert set(d) == {"devices", "removed", "locks", "modules", "ts", "seq", "since", "delta"}

    mqtt.publish("%s/device/change-1/meta" % ROOT, meta("change-1", version="dev-9"), retain=True)
    announce(mqtt, ["new-1"])
    mqtt.publish("%s/device/gone-1/meta" % ROOT, b"", retain=True)
    now = wait_registry(host, lambda r: "gone-1" not in r["devices"] and "new-1" in r["devices"]
                        and r["devices"]["change-1"]["version"] == "dev-9", "the changes")

    st, h, body = get(host, "/api/registry?since=%d" % seq0)
    d = json.loads(body)
    assert st == 200 and h["x-registry-delta"] == "true" and d["delta"] is True
    assert d["seq"] == now["seq"] and d["since"] == seq0
    assert set(d["devices"]) == {"change-1", "new-1"}
    assert d["devices"]["change-1"] == now["devices"]["change-1"]
    assert d["removed"] == ["gone-1"]

    # Applying the delta to the old snapshot gives the new one's devices.
    devices = dict(base["devices"])
    devices.update(d["devices"])
    for gone in d["removed"]:
        devices.pop(gone)
    assert devices == now["devices"]

    # Removed, then back: it is a device again, not a removal.
    announce(mqtt, ["gone-1"])
    wait_registry(host, lambda r: "gone-1" in r["devices"], "gone-1 back")
    d = json.loads(get(host, "/api/registry?since=%d" % seq0)[2])
    assert "gone-1" in d["devices"] and d["removed"] == []

    # A SEQ newer than the host's (an earlier run's): the whole snapshot.
    st, h, body = get(host, "/api/registry?since=%d" % (10 ** 12))
    whole = json.loads(body)
    assert st == 200 and h["x-registry-delta"] == "false"
    assert "delta" not in whole and set(whole["devices"]) == {"keep-1", "change-1", "new-1", "gone-1"}

    for bad in ("abc", "-1", "", "1x", " 1", "99999999999999999999999"):
        st, _, body = get(host, "/api/registry?since=" + bad.replace(" ", "%20"))
        assert st == 400, (bad, body)
        err = json.loads(body)["error"]
        assert err["code"] == "BAD_REQUEST" and err["message"].startswith("since:"), err


def test_registry_since_too_old_gets_the_whole(host, mqtt):
    """Removals are remembered up to 4096: a SEQ from before the oldest one
    forgotten cannot be answered with a delta."""
    announce(mqtt, ["stays"])
    seq0 = wait_registry(host, lambda r: "stays" in r["devices"], "stays")["seq"]
    ids = ["tmp-%05d" % i for i in range(4200)]
    for dev in ids:
        mqtt.publish("%s/device/%s/meta" % (ROOT, dev), meta(dev), retain=True, qos=0, wait=False)
    wait_until(lambda: harness_devices(host) >= 4201, 30, 0.1, "4201 devices")
    for dev in ids:
        mqtt.publish("%s/device/%s/meta" % (ROOT, dev), b"", retain=True, qos=0, wait=False)
    wait_until(lambda: harness_devices(host) == 1, 30, 0.1, "the 4200 removed")
    now = registry(host)

    st, h, body = get(host, "/api/registry?since=%d" % seq0)
    whole = json.loads(body)
    assert st == 200 and h["x-registry-delta"] == "false"
    assert "delta" not in whole and set(whole["devices"]) == {"stays"}
    assert whole["seq"] >= now["seq"]
    # A recent SEQ still gets a delta.
    d = json.loads(get(host, "/api/registry?since=%d" % now["seq"])[2])
    assert d["delta"] is True and d["removed"] == []


def harness_devices(host):
    return host.get("/healthz")[1]["devices"]


def test_ndi_devices_etag_and_gzip(make_host, mqtt):
    h = make_host({"plugins": [{"module": "ndi", "path": harness.NDI_PLUGIN,
                                "settings": {"ack_timeout_s": 1, "mdns": False}}]})
    h.wait_connected()
    ids = ["ndi-%03d" % i for i in range(60)]
    announce(mqtt, ids)

    def listed():
        st, _, body = get(h, "/api/ndi/devices")
        return st == 200 and {d["device_id"] for d in json.loads(body)["devices"]} >= set(ids)
    wait_until(listed, 10, 0.05, "60 NDI devices listed")

    st, hp, plain = get(h, "/api/ndi/devices")
    assert st == 200 and len(plain) > 2048
    assert "Accept-Encoding" in hp["vary"]
    st, h304, body = get(h, "/api/ndi/devices", {"If-None-Match": hp["etag"]})
    assert st == 304 and body == b"" and h304["etag"] == hp["etag"]

    hz, zipped = wait_gzip(h, "/api/ndi/devices")
    st, _, plain_now = get(h, "/api/ndi/devices")
    assert gzip.decompress(zipped) == plain_now
    assert get(h, "/api/ndi/devices", {"Accept-Encoding": "gzip"})[2] == zipped

    mqtt.publish("%s/device/ndi-003/status" % ROOT,
                 {"device_id": "ndi-003", "online": False, "ts": "2026-11-28T10:02:00Z"}, retain=True)

    def changed():
        st, hh, _ = get(h, "/api/ndi/devices", {"If-None-Match": hp["etag"]})
        return st == 200 and hh["etag"] != hp["etag"]
    wait_until(changed, 10, 0.05, "a new NDI list after ndi-003 went offline")


def test_registry_since_from_an_earlier_run_gets_the_whole(host, mqtt):
    """A SEQ kept across a restart of the host: seq must not count from
    the same start again, or a client would get a delta of the new run
    against a snapshot of the old one, missing what changed in between."""
    announce(mqtt, ["before-1"])
    old = wait_registry(host, lambda r: "before-1" in r["devices"], "before-1")
    host.stop()
    host.start()
    host.wait_connected()
    # Enough snapshots that a run counting from 1 again passes the old seq.
    for i in range(5):
        announce(mqtt, ["after-%d" % i])
        wait_registry(host, lambda r, i=i: "after-%d" % i in r["devices"], "after-%d" % i)
    new = registry(host)
    assert new["seq"] > old["seq"], (old["seq"], new["seq"])
    st, h, body = get(host, "/api/registry?since=%d" % old["seq"])
    whole = json.loads(body)
    assert st == 200 and h["x-registry-delta"] == "false", whole
    assert "delta" not in whole and "before-1" in whole["devices"]


def changed_after_the_replay(host, mqtt, seq):
    """The devices GET /api/registry?since=seq holds once the broker's
    replay has reached the host: once a marker published after it is in."""
    announce(mqtt, ["marker"])
    wait_registry(host, lambda r: "marker" in r["devices"], "the marker")
    d = json.loads(get(host, "/api/registry?since=%d" % seq)[2])
    assert d.get("delta") is True, d
    return set(d["devices"])


def test_a_reconnect_replaying_what_the_host_holds_changes_nothing(make_host, make_broker, make_mqtt):
    """After a reconnect the broker replays every retained meta and status.
    Copies identical to what the host holds are no change: a client's
    ?since delta stays empty instead of holding the whole registry."""
    b = make_broker(persistence=True)
    host = make_host({"mqtt": {"host": b.host, "port": b.port}})
    host.wait_connected()
    mqtt = make_mqtt(broker=b)
    ids = ["same-%d" % i for i in range(20)]
    announce(mqtt, ids)
    seq = wait_registry(host, lambda r: set(ids) <= set(r["devices"]), "20 devices")["seq"]
    mqtt.close()
    b.stop()
    b.start()
    host.wait_connected()
    changed = changed_after_the_replay(host, make_mqtt(broker=b), seq)
    assert changed <= {"marker"}, sorted(changed)


def test_a_restart_replaying_what_the_store_holds_changes_nothing(make_host, make_broker, make_mqtt):
    """A restarted host starts from the stored documents, "online": null
    until each device speaks, and the broker then replays each retained
    status saying "online": true.  That is not a change of the document
    (the host sets "online" itself): with 100,000 devices, rebuilding and
    storing every one of them again was a fifth of a start-up
    (docs/performance.md, "Start-up").  The devices keep their place in
    ?since, and stay unknown until they speak."""
    b = make_broker(persistence=True)
    host = make_host({"mqtt": {"host": b.host, "port": b.port}})
    host.wait_connected()
    mqtt = make_mqtt(broker=b)
    ids = ["kept-%d" % i for i in range(20)]
    announce(mqtt, ids)
    wait_registry(host, lambda r: set(ids) <= set(r["devices"]), "20 devices")
    mqtt.close()
    host.stop()
    # Started while the broker is away: the stored devices alone, and a seq
    # taken before any replay.
    b.stop()
    host.start()
    seq = wait_registry(host, lambda r: set(ids) <= set(r["devices"]), "the stored devices")["seq"]
    b.start()
    host.wait_connected()
    changed = changed_after_the_replay(host, make_mqtt(broker=b), seq)
    assert changed <= {"marker"}, sorted(changed)
    reg = registry(host)["devices"]
    assert all(reg[i]["online"] is None for i in ids), [reg[i] for i in ids]
