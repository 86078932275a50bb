"""
Retiring devices, and the truth about them across restarts (issue 17):
DELETE /api/devices/{id} clears the device's retained topics on the broker
(checked with a fresh subscriber), releases its lease through the plugin's
device_forgotten hook and holds across a restart; last_seen and online
survive a restart without claiming fresh contact; forget_after_days.
"""

import hashlib
import time

import pytest

import harness
from harness import wait_until

ROOT = "/lab"
REGISTRY = ROOT + "/orchestrator/registry"
TOKENS = {"ops": ("ops-token-1", "operator"), "boss": ("boss-token-1", "admin")}


def topic(dev, *rest):
    return "/".join((ROOT, "device", dev) + rest)


def ndi_config(**extra):
    cfg = {"plugins": [{"module": "ndi", "path": harness.NDI_PLUGIN,
                        "settings": {"ack_timeout_s": 1, "mdns": False}}]}
    cfg.update(extra)
    return cfg


def announce(mqtt, dev, online=True):
    mqtt.publish(topic(dev, "meta"), {"device_id": dev, "modules": ["ndi"], "version": "1"},
                 retain=True)
    mqtt.publish(topic(dev, "status"), {"device_id": dev, "online": online}, retain=True)
    mqtt.publish(topic(dev, "ndi", "status"), {"state": "idle"}, retain=True)


def device(host, dev):
    st, body = host.get("/api/devices/%s" % dev)
    return body if st == 200 else None


def retained_under(make_mqtt, dev):
    """The retained messages a fresh subscriber gets under device/{dev}/#.

    A plain marker published after the subscription is acknowledged comes
    after every retained copy, so waiting for it is waiting for them all."""
    c = make_mqtt()
    c.subscribe(topic(dev, "#"))
    marker = topic(dev, "zz-marker")
    c.publish(marker, {"m": 1})
    c.wait_for(marker)
    return sorted(m["topic"] for m in c.messages() if m["topic"] != marker)


def next_second():
    """Waits for the wall clock's next second: last_seen has whole seconds."""
    start = int(time.time())
    wait_until(lambda: int(time.time()) > start, timeout=2)


def test_delete_clears_retained_releases_lease_and_holds_across_restart(make_host, mqtt, make_mqtt):
    host = make_host(ndi_config())
    host.wait_connected()
    announce(mqtt, "rpi-07")
    announce(mqtt, "rpi-08")
    wait_until(lambda: (device(host, "rpi-07") or {}).get("online") is True)
    wait_until(lambda: (device(host, "rpi-08") or {}).get("online") is True)
    assert retained_under(make_mqtt, "rpi-07") == [topic("rpi-07", "meta"), topic("rpi-07", "ndi", "status"),
                                                  topic("rpi-07", "status")]
    assert host.post("/api/ndi/reserve", {"device_id": "rpi-07", "actor": "alice"})[0] == 200
    assert "ndi:rpi-07" in host.get("/api/registry")[1]["locks"]

    st, body = host.delete("/api/devices/rpi-07")
    assert st == 200, body
    assert body["device_id"] == "rpi-07" and body["forgotten"] is True
    assert sorted(body["cleared"]) == [topic("rpi-07", "meta"), topic("rpi-07", "ndi", "status"),
                                       topic("rpi-07", "status")]
    assert device(host, "rpi-07") is None
    reg = host.get("/api/registry")[1]
    assert "rpi-07" not in reg["devices"] and "rpi-08" in reg["devices"]
    assert "ndi:rpi-07" not in reg["locks"]
    assert retained_under(make_mqtt, "rpi-07") == []
    assert len(retained_under(make_mqtt, "rpi-08")) == 3   # the neighbour is untouched

    # Unknown and malformed ids.
    st, body = host.delete("/api/devices/rpi-07")
    assert st == 404 and body["error"]["code"] == "NOT_FOUND", body
    st, body = host.delete("/api/devices/bad%20id")
    assert st == 400 and body["error"]["code"] == "BAD_REQUEST" and "id" in body["error"]["message"], body

    # Neither the store nor the broker brings it back.
    host.restart()
    host.wait_connected()
    wait_until(lambda: device(host, "rpi-08") is not None)
    mqtt.publish(topic("marker-dev", "meta"), {"device_id": "marker-dev"}, retain=True)
    wait_until(lambda: device(host, "marker-dev") is not None)
    assert device(host, "rpi-07") is None
    assert "rpi-07" not in host.get("/api/registry")[1]["devices"]


def test_delete_needs_admin_with_tokens(make_host, mqtt):
    tokens = [{"name": n, "role": r, "sha256": hashlib.sha256(t.encode()).hexdigest()}
              for n, (t, r) in TOKENS.items()]
    host = make_host({"http": {"tokens": tokens}})
    host.wait_connected()
    announce(mqtt, "cam-1")
    auth = {"Authorization": "Bearer " + TOKENS["boss"][0]}
    wait_until(lambda: host.get("/api/devices/cam-1", headers=auth)[0] == 200)
    st, body = host.delete("/api/devices/cam-1", headers={"Authorization": "Bearer " + TOKENS["ops"][0]})
    assert st == 403, body
    assert host.get("/api/devices/cam-1", headers=auth)[0] == 200
    st, body = host.delete("/api/devices/cam-1", headers=auth)
    assert st == 200, body
    assert host.get("/api/devices/cam-1", headers=auth)[0] == 404
    # The audit call site names who did it.
    assert "forgetting device cam-1 (DELETE /api/devices/{id}, by boss)" in host.log()


def test_last_seen_and_online_survive_a_restart(make_host, mqtt):
    host = make_host()
    host.wait_connected()
    mqtt.publish(topic("rpi-09", "meta"), {"device_id": "rpi-09", "modules": []}, retain=True)
    wait_until(lambda: device(host, "rpi-09") is not None)
    next_second()
    # A heartbeat shortly after the meta: stored at the clean stop, not a
    # minute later.
    mqtt.publish(topic("rpi-09", "status"), {"device_id": "rpi-09", "online": True}, retain=True)
    wait_until(lambda: (device(host, "rpi-09") or {}).get("online") is True)
    seen = device(host, "rpi-09")["last_seen"]

    host.stop()
    next_second()
    host.start()
    host.wait_connected()
    # The retained meta and status come back on subscribing; a device
    # announced after them shows they were handled.
    mqtt.publish(topic("marker-dev", "meta"), {"device_id": "marker-dev"}, retain=True)
    wait_until(lambda: device(host, "marker-dev") is not None)
    d = device(host, "rpi-09")
    assert d["last_seen"] == seen, d
    assert d["online"] is None, d
    assert d["stale"] is False, d
    # The snapshot says the same.
    reg = host.get("/api/registry")[1]["devices"]["rpi-09"]
    assert reg["online"] is None and reg["last_seen"] == seen, reg

    # Heard again: fresh contact, online again.
    next_second()
    mqtt.publish(topic("rpi-09", "status"), {"device_id": "rpi-09", "online": True}, retain=True)
    wait_until(lambda: (device(host, "rpi-09") or {}).get("online") is True)
    assert device(host, "rpi-09")["last_seen"] > seen


@pytest.mark.parametrize("value,needle", [(-1, "forget_after_days"), ("7", "forget_after_days"),
                                          (36501, "forget_after_days")])
def test_forget_after_days_is_checked(make_host, value, needle):
    host = make_host({"forget_after_days": value}, start=False)
    cp = host.run(["--config", host.config_path, "--check-config"])
    out = cp.stdout + cp.stderr
    assert cp.returncode == 1 and needle in out, (cp.returncode, out)


def test_forget_after_days_forgets_silent_offline_devices(make_host, mqtt, make_mqtt):
    # Two seconds, in days: the scan runs every second.
    host = make_host(ndi_config(forget_after_days=2 / 86400, stale_after_s=3600))
    host.wait_connected()
    announce(mqtt, "gone-1", online=False)
    announce(mqtt, "alive-1", online=True)
    wait_until(lambda: (device(host, "gone-1") or {}).get("online") is False)
    wait_until(lambda: (device(host, "alive-1") or {}).get("online") is True)
    wait_until(lambda: device(host, "gone-1") is None, timeout=8, msg="gone-1 forgotten")
    assert retained_under(make_mqtt, "gone-1") == []
    # Online and not stale: kept, however long silent.
    assert device(host, "alive-1") is not None
    assert len(retained_under(make_mqtt, "alive-1")) == 3
    assert "forgetting device gone-1 (forget_after_days, by the host)" in host.log()


def test_devices_page_sorts_filters_and_shows_unknown(make_host, mqtt, browser):
    host = make_host({"stale_after_s": 3600})
    host.wait_connected()
    announce(mqtt, "b-on", online=True)
    announce(mqtt, "c-off", online=False)
    mqtt.publish(topic("a-quiet", "meta"), {"device_id": "a-quiet", "modules": ["zz"]}, retain=True)
    wait_until(lambda: device(host, "a-quiet") is not None
               and (device(host, "c-off") or {}).get("online") is False
               and (device(host, "b-on") or {}).get("online") is True)
    b = browser
    b.open(host.url("/ui/devices"))
    b.wait_until(lambda: b.count("#devices tbody tr") == 3, msg="three rows")
    rows = lambda: [e.get_attribute("data-device") for e in b.find("#devices tbody tr")]
    assert rows() == ["a-quiet", "b-on", "c-off"]
    # No status yet: "unknown", never "offline".
    assert b.text("tr[data-device='a-quiet'] .badge") == "unknown"
    assert b.text("tr[data-device='c-off'] .badge") == "offline"

    # Sort by state, then the other way; by id again.
    b.click("th[data-sort='state'] button")
    b.wait_until(lambda: rows() == ["b-on", "c-off", "a-quiet"], msg="sorted by state")
    assert b.attr("th[data-sort='state']", "aria-sort") == "ascending"
    b.click("th[data-sort='state'] button")
    b.wait_until(lambda: rows() == ["a-quiet", "c-off", "b-on"], msg="sorted by state, descending")
    assert b.attr("th[data-sort='state']", "aria-sort") == "descending"
    assert b.attr("th[data-sort='id']", "aria-sort") == "none"
    b.click("th[data-sort='modules'] button")
    b.wait_until(lambda: rows() == ["b-on", "c-off", "a-quiet"], msg="sorted by modules")

    # Filter by state.
    for value, expect in (("unknown", ["a-quiet"]), ("offline", ["c-off"]), ("online", ["b-on"]),
                          ("stale", []), ("", ["b-on", "c-off", "a-quiet"])):
        b.js("var s = document.querySelector('#device-state'); s.value = arguments[0];"
             "s.dispatchEvent(new Event('change'));", value)
        b.wait_until(lambda: rows() == expect, msg="state filter %r" % value)

    # The last-seen cell says the absolute time on hover.
    seen = device(host, "b-on")["last_seen"]
    title = b.attr("tr[data-device='b-on'] .last-seen", "title")
    assert seen in title and len(title) > len(seen), title
