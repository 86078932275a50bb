"""
The event stream sends changes, not whole snapshots (issue 16): GET
/api/events gives one `registry` snapshot, then `registry_delta` events
(the devices changed, the ids removed), each with an `id:` that is the seq
it brings the client to.  Applying them gives what GET /api/registry says;
a client that reconnects with Last-Event-ID gets only what it missed, or
the whole snapshot when the id is too old or from another run; a client
that falls behind by more than limits.max_sse_backlog_bytes is cut off and
catches up on reconnecting; and the devices page applies deltas in
Chromium.  Real host, real broker, raw HTTP (sse.py).
"""

import re

from conftest import wait_until
from sse import REGISTRY_EVENTS, EventStream, Mirror

ROOT = "/lab"


def announce(mqtt, dev, pad=None, online=True):
    meta = {"device_id": dev, "modules": ["ndi"], "labels": ["studio-a"]}
    if pad:
        meta["pad"] = pad
    mqtt.publish("%s/device/%s/meta" % (ROOT, dev), meta, retain=True)
    mqtt.publish("%s/device/%s/status" % (ROOT, dev), {"online": online, "device_id": dev},
                 retain=True)


def registry(host):
    st, body = host.get("/api/registry")
    assert st == 200, body
    return body


def assert_in_sync(mirror, stream, host):
    """The mirror, once it applied everything up to the registry's seq, holds
    what GET /api/registry says (asked again if a change came meanwhile)."""
    for _ in range(20):
        reg = registry(host)
        mirror.follow(stream, lambda st: st["seq"] >= reg["seq"])
        if mirror.state["seq"] == reg["seq"]:
            assert mirror.state["devices"] == reg["devices"]
            assert mirror.state["locks"] == reg["locks"]
            return
    raise AssertionError("the registry kept changing")


def assert_page_in_sync(b, host):
    """The page's copy, once at the registry's seq, is the registry (asked
    again if a change came meanwhile)."""
    for _ in range(20):
        reg = registry(host)
        b.wait_until(lambda: b.js("return OH.live.snapshot.seq;") >= reg["seq"],
                     msg="the page at seq %s" % reg["seq"])
        snap = b.js("return OH.live.snapshot;")
        if snap["seq"] == reg["seq"]:
            assert snap["devices"] == reg["devices"]
            return
    raise AssertionError("the registry kept changing")


def refusals(host, limit):
    _, _, text = host.request("GET", "/metrics")
    m = re.search(r'^oh_limit_refusals_total\{limit="%s"\} ([0-9.e+]+)$' % limit, text, re.M)
    return float(m.group(1)) if m else None


def host_with(make_host, mqtt, ids, pad=None, config=None):
    """A connected host whose registry holds ids, announced by mqtt."""
    host = make_host(config) if config else make_host()
    host.wait_connected()
    for d in ids:
        announce(mqtt, d, pad=pad)
    wait_until(lambda: set(ids) <= set(registry(host)["devices"]), 5, msg="%d devices" % len(ids))
    return host


def test_a_snapshot_then_deltas_with_removals(make_host, mqtt):
    host = host_with(make_host, mqtt, ["d-a", "d-b", "d-c"])
    s = EventStream(host)
    m = Mirror()
    first = m.follow(s)
    assert first["event"] == "registry" and set(m.state["devices"]) == {"d-a", "d-b", "d-c"}

    mqtt.publish(ROOT + "/device/d-a/status", {"online": False}, retain=True)
    announce(mqtt, "d-d")
    st, _ = host.delete("/api/devices/d-b")
    assert st == 200
    m.follow(s, lambda st: "d-b" not in st["devices"] and "d-d" in st["devices"]
             and st["devices"]["d-a"]["online"] is False)
    got = [e for e in s.events if e.get("event") in REGISTRY_EVENTS]
    # One snapshot, then only deltas; one of them names the removal, and
    # none carries a device that did not change.
    assert [e["event"] for e in got[1:]] == ["registry_delta"] * (len(got) - 1), got
    assert any(e["json"]["removed"] == ["d-b"] for e in got[1:]), got
    assert all("d-c" not in e["json"]["devices"] for e in got[1:]), got
    assert_in_sync(m, s, host)
    s.close()


def test_last_event_id_resumes_with_only_what_was_missed(make_host, mqtt):
    host = host_with(make_host, mqtt, ["r-a", "r-b", "r-c"])
    s = EventStream(host)
    m = Mirror()
    m.follow(s, lambda st: len(st["devices"]) == 3)
    last = m.state["seq"]
    s.close()

    # While it is away: one device changes, one goes.
    mqtt.publish(ROOT + "/device/r-a/status", {"online": False}, retain=True)
    assert host.delete("/api/devices/r-c")[0] == 200
    wait_until(lambda: registry(host)["devices"]["r-a"]["online"] is False, 5, msg="r-a offline")

    s = EventStream(host, headers={"Last-Event-ID": str(last)})
    ev = m.follow(s)
    assert ev["event"] == "registry_delta", ev
    assert ev["json"]["since"] == last
    assert set(ev["json"]["devices"]) == {"r-a"} and ev["json"]["removed"] == ["r-c"], ev
    assert_in_sync(m, s, host)
    s.close()


def test_a_too_old_or_foreign_id_gets_the_whole_snapshot(make_host, mqtt):
    host = host_with(make_host, mqtt, ["w-a"])
    # 1: older than this run's first seq; 2^62: from a later (clock) run;
    # not a number at all.
    for last in ("1", str(1 << 62), "yesterday"):
        s = EventStream(host, headers={"Last-Event-ID": last})
        m = Mirror()
        ev = m.follow(s)
        assert ev["event"] == "registry", (last, ev)
        assert "w-a" in ev["json"]["devices"]
        assert_in_sync(m, s, host)
        s.close()


def test_a_slow_client_is_cut_off_and_catches_up(make_host, mqtt):
    limit = 64 * 1024
    ids = ["s-%02d" % i for i in range(80)]
    host = host_with(make_host, mqtt, ids, pad="x" * 1000, config={"limits": {"max_sse_backlog_bytes": limit}})
    # A small receive buffer: what it does not read stays with the host.
    s = EventStream(host, rcvbuf=4096)
    m = Mirror()
    m.follow(s, lambda st: len(st["devices"]) == 80)
    s.pause()
    assert refusals(host, "max_sse_backlog_bytes") == 0
    # Every round changes every device (~80 KB of deltas): the host holds
    # them back, and cuts the client off once the one delta that would bring
    # it up to date, with its backlog, is over the limit.
    for n in range(60):
        for d in ids:
            mqtt.publish("%s/device/%s/status" % (ROOT, d), {"online": True, "n": n}, retain=True)
        if refusals(host, "max_sse_backlog_bytes") >= 1:
            break
    else:
        raise AssertionError("the slow client was not cut off")
    assert "fell behind by more than limits.max_sse_backlog_bytes" in host.log()
    s.resume()
    assert s.wait_ended(10), "the cut-off stream was not closed"
    # What arrived before the cut is whole events; a reconnect with the last
    # id gets one delta with all it missed.
    m.drain(s)
    last = m.state["seq"]
    s2 = EventStream(host, headers={"Last-Event-ID": str(last)})
    ev = m.follow(s2)
    assert ev["event"] == "registry_delta" and ev["json"]["since"] == last, ev
    assert_in_sync(m, s2, host)
    s.close()
    s2.close()


def test_the_devices_page_applies_deltas(make_host, mqtt, browser):
    host = make_host()
    host.wait_connected()
    announce(mqtt, "p-a")
    announce(mqtt, "p-b")
    b = browser
    b.open(host.url("/ui/devices"))
    b.wait_for_css("tr[data-device='p-a']")
    b.js("window.__deltas = 0; window.__not_reloaded = 42;"
         "OH.live.on('registry_delta', function () { window.__deltas++; });")
    mqtt.publish(ROOT + "/device/p-a/status", {"online": False}, retain=True)
    b.wait_for_text("tr[data-device='p-a'] .badge", "offline")
    assert b.text("tr[data-device='p-b'] .badge") == "online"
    assert b.js("return window.__not_reloaded;") == 42, "the page was reloaded"
    assert b.js("return window.__deltas;") >= 1
    # The page's copy is the registry (compared only when both were at the
    # same seq, this passed whatever the page held).
    assert_page_in_sync(b, host)
    assert host.delete("/api/devices/p-b")[0] == 200
    b.wait_until(lambda: b.count("tr[data-device='p-b']") == 0, msg="p-b removed")
    assert b.js("return window.__not_reloaded;") == 42
    # A new run of the host: EventSource resumes with an id of the old run
    # and gets the whole snapshot, which the page takes in place of its copy.
    host.restart()
    host.wait_connected()
    mqtt.publish(ROOT + "/device/p-a/status", {"online": True}, retain=True)
    b.wait_for_text("tr[data-device='p-a'] .badge", "online", timeout=15)
    assert b.js("return window.__not_reloaded;") == 42
    assert_page_in_sync(b, host)
