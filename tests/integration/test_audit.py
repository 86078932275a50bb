"""
The audit trail (issue 17, docs/audit.md), black-box: every kind of record
(commands with latency, leases, job changes and runs: fired, skipped and
missed, plugins, devices, DELETE /api/devices/{id}); filters and keyset
paging over 10,000 records; CSV and JSON Lines exports that parse;
retention by age and by max_rows; and a kill -9 in the middle of a burst losing no record of what was acknowledged.
"""

import csv
import hashlib
import io
import json
import os
import signal
import sqlite3
import threading
import time
import uuid
import urllib.request

import harness
from harness import wait_until

ROOT = "/lab"
CMD = ROOT + "/orchestrator/ndi/cmd"
EVT = ROOT + "/orchestrator/ndi/evt"


def ndi_config(**extra):
    cfg = {"plugins": [{"module": "ndi", "path": harness.NDI_PLUGIN,
                        "settings": {"ack_timeout_s": 5, "mdns": False}}]}
    cfg.update(extra)
    return cfg


def rid():
    return uuid.uuid4().hex[:16]


def announce(mqtt, dev, online=True):
    mqtt.publish("%s/device/%s/meta" % (ROOT, dev), {"device_id": dev, "modules": ["ndi"]}, retain=True)
    mqtt.publish("%s/device/%s/status" % (ROOT, dev), {"device_id": dev, "online": online}, retain=True)


def audit(host, query=""):
    st, body = host.get("/api/audit" + query)
    assert st == 200, body
    return body["records"]


def one(records, **want):
    hits = [r for r in records if all(r.get(k) == v for k, v in want.items())]
    assert hits, "no record with %s in %s" % (want, json.dumps(records, indent=1)[:3000])
    return hits[0]


def send(mqtt, action, params, actor="app", req_id=None):
    env = {"req_id": req_id or rid(), "actor": actor, "action": action, "params": params}
    mqtt.publish(CMD, env)
    return env["req_id"]


def evt(mqtt, req_id, code=None, timeout=5):
    return mqtt.wait_for(EVT, lambda m: m["payload"]["req_id"] == req_id
                         and (code is None or m["payload"]["code"] == code), timeout=timeout)["payload"]


def device_acks(make_mqtt, dev, stop):
    """A device that acks every command OK, on its own thread of paho."""
    c = make_mqtt()

    def on_msg(client, userdata, msg):
        env = json.loads(msg.payload)
        client.publish("%s/device/%s/ndi/evt" % (ROOT, dev),
                       json.dumps({"req_id": env["req_id"], "ok": True, "code": "OK",
                                   "action": env["action"], "details": {}}), qos=1)
    c.client.message_callback_add("%s/device/%s/ndi/cmd" % (ROOT, dev), on_msg)
    c.subscribe("%s/device/%s/ndi/cmd" % (ROOT, dev))
    return c


def test_each_kind_of_record(make_host, mqtt, make_mqtt):
    host = make_host(ndi_config())
    host.wait_connected()
    mqtt.subscribe(EVT)
    device_acks(make_mqtt, "cam-1", None)
    announce(mqtt, "cam-1")
    wait_until(lambda: host.get("/api/devices/cam-1")[1].get("online") is True)

    # A plugin loaded at start-up; a device added, online.
    one(audit(host, "?kind=plugin"), action="load", module="ndi", code="OK")
    recs = audit(host, "?device_id=cam-1")
    one(recs, kind="device", action="added")
    one(recs, kind="device", action="online")

    # Leases: take, renew, release, expire, force_release; each command's
    # outcome too.
    r1 = send(mqtt, "reserve", {"device_id": "cam-1", "lease_s": 30}, actor="alice")
    evt(mqtt, r1, "OK")
    r2 = send(mqtt, "renew", {"device_id": "cam-1", "lease_s": 30}, actor="alice")
    evt(mqtt, r2, "OK")
    r3 = send(mqtt, "release", {"device_id": "cam-1"}, actor="alice")
    evt(mqtt, r3, "OK")
    recs = audit(host, "?kind=lease&device_id=cam-1")
    for action in ("take", "renew", "release"):
        one(recs, action=action, actor="alice", module="ndi")
    cmd = one(audit(host, "?kind=command&actor=alice"), req_id=r1)
    assert cmd["action"] == "reserve" and cmd["code"] == "OK" and cmd["device_id"] == "cam-1", cmd
    r4 = send(mqtt, "reserve", {"device_id": "cam-1", "lease_s": 0.5}, actor="bob")
    evt(mqtt, r4, "OK")
    mqtt.wait_for(EVT, lambda m: m["payload"]["code"] == "EXPIRED", timeout=5)
    one(audit(host, "?kind=lease&action=expire"), actor="bob", device_id="cam-1")
    send(mqtt, "reserve", {"device_id": "cam-1", "lease_s": 30}, actor="carol")
    assert host.post("/api/ndi/force_release", {"device_id": "cam-1"})[0] == 200
    one(audit(host, "?kind=lease&action=force_release"), device_id="cam-1",
        detail={"key": "ndi:cam-1", "holder": "carol"})

    # A relayed command: its outcome, from the device's ack, with latency.
    r5 = send(mqtt, "start", {"device_id": "cam-1", "source": "CAM-A"}, actor="dave",
              req_id="start-" + rid())
    evt(mqtt, r5, "COMPLETED")
    done = one(audit(host, "?code=COMPLETED"), req_id=r5)
    assert done["kind"] == "command" and done["actor"] == "dave" and done["module"] == "ndi", done
    assert isinstance(done["latency_ms"], float) and 0 <= done["latency_ms"] < 5000, done
    assert not [r for r in audit(host, "?limit=1000") if r.get("code") == "DISPATCHED"]

    # Jobs: scheduled, fired, cancelled.
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
    st, job = host.post("/api/ndi/jobs", {"at": at, "actor": "erin", "commands": [
        {"device_id": "cam-1", "action": "stop", "params": {}}]})
    assert st == 201, job
    one(audit(host, "?kind=job&action=scheduled"), actor="erin", detail={
        "job_id": job["id"], "owner": "erin", "spec": "at", "when": at})
    fired = mqtt.wait_for(EVT, lambda m: m["payload"]["code"] == "FIRED", timeout=5)["payload"]
    one(audit(host, "?kind=job&action=fired"), actor="erin", req_id=fired["req_id"])
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    st, job2 = host.post("/api/ndi/jobs", {"at": later, "actor": "erin", "commands": [
        {"device_id": "cam-1", "action": "stop", "params": {}}]})
    assert host.delete("/api/ndi/jobs/" + job2["id"])[0] == 200
    one(audit(host, "?kind=job&action=cancelled"), requested_by="erin")

    # A route (the NDI plugin's record, through oh_audit_record).
    st, body = host.put("/api/ndi/routes/cam-1", {"source": "CAM-R", "actor": "frank"})
    assert st == 200, body
    one(audit(host, "?kind=route"), action="route", actor="frank", device_id="cam-1", module="ndi")
    # A preset's put, apply and delete: kind route too, the preset named in
    # detail, no device (a preset names many).
    assert host.put("/api/ndi/presets/p1", {"routes": {"cam-1": {"source": "CAM-P"}},
                                            "actor": "frank"})[0] == 200
    assert host.post("/api/ndi/presets/p1/apply", {"actor": "frank"})[0] == 200
    assert host.delete("/api/ndi/presets/p1")[0] == 200
    presets = [r for r in audit(host, "?kind=route") if r.get("detail") == {"preset": "p1"}]
    assert [(r["action"], r.get("device_id")) for r in presets] == \
        [("preset_delete", None), ("apply_preset", None), ("preset_put", None)], presets
    assert [r["actor"] for r in presets[1:]] == ["frank", "frank"], presets

    # A device going offline; DELETE /api/devices/{id} forgetting it.
    announce(mqtt, "cam-1", online=False)
    wait_until(lambda: [r for r in audit(host, "?device_id=cam-1&action=offline")])
    assert host.delete("/api/devices/cam-1")[0] == 200
    forgot = one(audit(host, "?kind=device&action=forget"), device_id="cam-1")
    assert forgot["actor"] == "an unauthenticated client", forgot
    assert sorted(forgot["detail"]["cleared"]) == [ROOT + "/device/cam-1/" + t
                                                   for t in ("meta", "ndi/status", "status")]
    assert forgot["detail"]["why"] == "DELETE /api/devices/{id}"

    # Unloading the plugin.
    assert host.delete("/api/plugins/ndi")[0] in (200, 202)
    wait_until(lambda: [r for r in audit(host, "?kind=plugin&action=unload")])

    # Every record has a seq, newest first, and a time.
    recs = audit(host, "?limit=1000")
    seqs = [r["seq"] for r in recs]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
    assert all(r["ts"].endswith("Z") for r in recs)



def test_skipped_and_missed_runs_are_recorded(make_host, mqtt):
    # The two job runs test_each_kind_of_record does not reach: a command
    # refused at fire time (a device reserved by someone else) and a run
    # found past misfire_grace_s after a restart.
    host = make_host(ndi_config(misfire_grace_s=1))
    host.wait_connected()
    mqtt.subscribe(EVT)
    evt(mqtt, send(mqtt, "reserve", {"device_id": "cam-9", "lease_s": 60}, actor="bob"), "OK")
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
    st, job = host.post("/api/ndi/jobs", {"at": at, "actor": "erin", "commands": [
        {"device_id": "cam-9", "action": "stop", "params": {}}]})
    assert st == 201, job
    skipped = mqtt.wait_for(EVT, lambda m: m["payload"]["code"] == "SKIPPED", timeout=5)["payload"]
    rec = one(audit(host, "?kind=job&action=skipped"), actor="erin", req_id=skipped["req_id"])
    assert rec["detail"]["job_id"] == job["id"], rec

    due = int(time.time()) + 1
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(due))
    st, job = host.post("/api/ndi/jobs", {"at": at, "actor": "erin", "commands": [
        {"device_id": "cam-8", "action": "stop", "params": {}}]})
    assert st == 201, job
    host.stop()
    # A clock that must pass: beyond the due time by more than the grace.
    wait_until(lambda: time.time() >= due + 2.5, timeout=10)
    host.start()
    host.wait_connected()
    wait_until(lambda: audit(host, "?kind=job&action=missed"), timeout=10)
    rec = one(audit(host, "?kind=job&action=missed"), actor="erin")
    assert rec["detail"]["job_id"] == job["id"] and rec["detail"]["due"] == at, rec


def test_tokens_viewers_read_and_the_token_is_recorded(make_host, mqtt):
    tokens = {"vic": ("vic-token-1", "viewer"), "boss": ("boss-token-1", "admin")}
    host = make_host(ndi_config(http={"tokens": [
        {"name": n, "role": r, "sha256": hashlib.sha256(t.encode()).hexdigest()}
        for n, (t, r) in tokens.items()]}))
    host.wait_connected()
    auth = {n: {"Authorization": "Bearer " + t} for n, (t, _) in tokens.items()}
    announce(mqtt, "cam-5")
    wait_until(lambda: host.get("/api/devices/cam-5", headers=auth["vic"])[0] == 200)
    assert host.post("/api/ndi/reserve", {"device_id": "cam-5"}, headers=auth["boss"])[0] == 200
    assert host.delete("/api/devices/cam-5", headers=auth["boss"])[0] == 200

    assert host.get("/api/audit")[0] == 401
    st, body = host.get("/api/audit?device_id=cam-5", headers=auth["vic"])
    assert st == 200, body
    recs = body["records"]
    one(recs, kind="lease", action="take", actor="boss", token="boss")
    one(recs, kind="command", action="reserve", token="boss")
    one(recs, kind="lease", action="force_release", actor="boss", token="boss")
    one(recs, kind="device", action="forget", actor="boss", token="boss")
    # Who unloaded a plugin, though the unload runs on a later loop turn.
    assert host.delete("/api/plugins/ndi", headers=auth["boss"])[0] == 200
    one(host.get("/api/audit?kind=plugin&action=unload", headers=auth["vic"])[1]["records"],
        module="ndi", actor="boss")


def test_audit_config_is_checked_and_can_be_off(make_host, mqtt):
    for key, value in (("retention_days", -1), ("max_rows", "many"), ("enabled", 1), ("colour", 1)):
        host = make_host({"audit": {key: value}}, start=False)
        cp = host.run(["--config", host.config_path, "--check-config"])
        out = cp.stdout + cp.stderr
        assert cp.returncode == 1 and "audit." + key in out, (key, out)
    host = make_host(ndi_config(audit={"enabled": False}))
    host.wait_connected()
    mqtt.subscribe(EVT)
    r = send(mqtt, "reserve", {"device_id": "cam-6", "lease_s": 30})
    evt(mqtt, r, "OK")
    st, body = host.get("/api/audit")
    assert st == 200 and body["records"] == [] and body["enabled"] is False, body

def fill(db_path, n, t0, **cols):
    """n records straight into the store the host made (stopped), as the
    host writes them: what is under test is reading them back."""
    rows = [(t0 + i * 0.001, cols.get("kind", "command"), "act%d" % (i % 7), "user%d" % (i % 10),
             "dev-%d" % (i % 50), "ndi", "r%05d" % i, ("OK", "FAILED", "TIMEOUT")[i % 3], i % 13 * 1.5,
             None if i % 3 == 0 else "it, \"broke\"\nbadly", json.dumps({"i": i}))
            for i in range(n)]
    with sqlite3.connect(db_path) as db:
        db.executemany("INSERT INTO audit(ts, kind, action, actor, device_id, module, req_id, code,"
                       " latency_ms, error, detail) VALUES(?,?,?,?,?,?,?,?,?,?,?)", rows)


def stream(host, query, headers=None):
    req = urllib.request.Request(host.url("/api/audit" + query), headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.headers.get("Content-Type"), r.read().decode()


def test_filters_paging_exports_and_retention(make_host):
    host = make_host({"plugins": [], "audit": {"retention_days": 0, "max_rows": 0}})
    host.stop()
    now = time.time()
    db_path = os.path.join(host.state_dir, "state.db")
    fill(db_path, 10000, now - 3600)
    host.start()

    # Keyset paging: every record once, newest first, with limit=1000 pages.
    seen, cursor, pages = [], "", 0
    while True:
        st, body = host.get("/api/audit?kind=command&limit=1000" + ("&cursor=" + cursor if cursor else ""))
        assert st == 200, body
        seen += [r["req_id"] for r in body["records"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 10000 and len(set(seen)) == 10000 and pages in (10, 11)
    assert seen[0] == "r09999" and seen[-1] == "r00000"
    # The cursor continues right after the page it came with.
    first = host.get("/api/audit?kind=command&limit=100")[1]
    second = host.get("/api/audit?kind=command&limit=100&cursor=" + first["next_cursor"])[1]
    assert first["records"][-1]["req_id"] == "r09900" and second["records"][0]["req_id"] == "r09899"

    # Each filter, alone and together.
    assert {r["device_id"] for r in audit(host, "?device_id=dev-7&limit=1000")} == {"dev-7"}
    assert len(audit(host, "?device_id=dev-7&limit=1000")) == 200
    assert len(audit(host, "?actor=user3&code=FAILED&limit=1000")) == 10000 // 30 + 1 - 1
    assert {r["action"] for r in audit(host, "?action=act2&limit=1000")} == {"act2"}
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600 + 5))
    until = "%.3f" % (now - 3600 + 6)
    window = audit(host, "?kind=command&limit=1000&since=%s&until=%s" % (since, until))
    assert 900 <= len(window) <= 1000 and all(r["req_id"] >= "r04000" for r in window), len(window)
    assert audit(host, "?kind=plugin") == []
    # Bad parameters: 400 naming the parameter.
    for query, name in (("limit=0", "limit"), ("limit=x", "limit"), ("limit=1001", "limit"),
                        ("kind=nope", "kind"), ("since=yesterday", "since"), ("cursor=-1", "cursor"),
                        ("device_id=a/b", "device_id"), ("format=xml", "format"), ("colour=red", "colour")):
        st, body = host.get("/api/audit?" + query)
        assert st == 400 and body["error"]["code"] == "BAD_REQUEST", (query, body)
        assert body["error"]["message"].startswith(name + ":"), (query, body)

    # CSV (by format= and by Accept) and JSON Lines: everything, and parseable.
    ctype, text = stream(host, "?format=csv&kind=command")
    assert ctype.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 10000 and rows[0]["req_id"] == "r09999"
    assert rows[0]["error"] in ("", "it, \"broke\"\nbadly") and json.loads(rows[5]["detail"]) == {"i": 9994}
    ctype, text = stream(host, "?device_id=dev-3", headers={"Accept": "text/csv"})
    assert ctype.startswith("text/csv") and len(list(csv.DictReader(io.StringIO(text)))) == 200
    ctype, text = stream(host, "?format=jsonl&kind=command&limit=2500")
    lines = [json.loads(line) for line in text.splitlines()]
    assert ctype == "application/x-ndjson" and len(lines) == 2500
    assert [r["seq"] for r in lines] == sorted((r["seq"] for r in lines), reverse=True)

    # Retention: by age (a day here) and by max_rows, in small batches.
    host.stop()
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE audit SET ts = ts - 2 * 86400 WHERE req_id < 'r01000'")
    host.write_config(dict(host.config, audit={"retention_days": 1, "max_rows": 5000}))
    host.start()
    wait_until(lambda: len(audit(host, "?kind=command&limit=1000&cursor=5001")) == 0, timeout=10)
    left = audit(host, "?limit=1000")
    assert left and all(r["req_id"] is None or r["req_id"] >= "r05000" for r in left)


def test_kill9_mid_burst_loses_no_acknowledged_record(make_host, make_mqtt):
    host = make_host(ndi_config())
    host.wait_connected()
    app = make_mqtt()
    devs = ["k-%d" % i for i in range(8)]
    for d in devs:
        device_acks(make_mqtt, d, None)
        announce(app, d)
    wait_until(lambda: len(host.get("/api/registry")[1]["devices"]) == len(devs))
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))

    def command(i):
        d = devs[i % len(devs)]
        env = {"req_id": "b%05d" % i, "actor": "u%d" % (i % 5)}
        # Leases and jobs commit with their records (and with the records
        # waiting before them): mixed in first, then relays alone.
        if i < 100 and i % 4 == 1:
            env.update(action="schedule", params={"at": later, "commands": [
                {"device_id": d, "action": "stop", "params": {}}]})
        elif i < 100 and i % 4 == 3:
            env.update(action="reserve", params={"device_id": "lease-%d" % i, "lease_s": 600})
        else:
            env.update(action="start", params={"device_id": d, "source": "CAM"})
        return json.dumps(env)

    # A burst kept WINDOW commands deep: each outcome sends the next, so the
    # test sees acks as they leave the host, and the host is killed the
    # moment the KILL_AT-th arrives (on paho's thread).  What was
    # acknowledged just before the kill is what a late commit would lose.
    WINDOW, KILL_AT = 32, 600
    acked, sent, lock = [], [WINDOW], threading.Lock()

    def on_evt(client, userdata, msg):
        ack = json.loads(msg.payload)
        with lock:
            if ack["code"] == "DISPATCHED" or len(acked) >= KILL_AT:
                return
            acked.append(ack)
            if len(acked) == KILL_AT:
                host._current["killed_by_test"] = True
                os.kill(host.proc.pid, signal.SIGKILL)
                return
            client.publish(CMD, command(sent[0]), qos=1)
            sent[0] += 1
    app.client.message_callback_add(EVT, on_evt)
    app.subscribe(EVT)
    for i in range(WINDOW):
        app.client.publish(CMD, command(i), qos=1)
    wait_until(lambda: len(acked) >= KILL_AT, timeout=30)
    host.kill()

    with sqlite3.connect(os.path.join(host.state_dir, "state.db")) as db:
        commands = {r[0] for r in db.execute("SELECT req_id FROM audit WHERE kind = 'command'")}
        leases = {r[0] for r in db.execute("SELECT device_id FROM audit WHERE kind = 'lease' AND action = 'take'")}
        jobs = {json.loads(r[0])["job_id"] for r in db.execute(
            "SELECT detail FROM audit WHERE kind = 'job' AND action = 'scheduled'")}
    missing = [a["req_id"] for a in acked if a["req_id"] not in commands]
    assert not missing, "%d acknowledged commands without a record: %s" % (len(missing), missing[:10])
    missing = [a for a in acked if a["code"] == "SCHEDULED" and a["details"]["job_id"] not in jobs]
    assert not missing, missing[:5]
    missing = [a for a in acked if a["action"] == "reserve" and a["ok"]
               and a["details"]["device_id"] not in leases]
    assert not missing, missing[:5]
    assert any(a["code"] == "SCHEDULED" for a in acked) and any(a["action"] == "reserve" for a in acked)


def test_activity_page_and_ndi_acks_prefill(make_host, mqtt, browser):
    host = make_host(ndi_config())
    host.wait_connected()
    mqtt.subscribe(EVT)
    announce(mqtt, "cam-9")
    wait_until(lambda: host.get("/api/devices/cam-9")[0] == 200)
    r1 = send(mqtt, "reserve", {"device_id": "cam-9", "lease_s": 60}, actor="alice")
    evt(mqtt, r1, "OK")

    b = browser
    b.open(host.url("/ui/activity"))
    assert b.attr("nav a[href='/ui/activity']", "aria-current") == "page"
    rows = lambda: b.count("#activity tbody tr")
    b.wait_until(lambda: rows() >= 4, msg="the records so far")   # plugin, device x2, lease, command
    assert "alice" in b.texts("#activity tbody td[data-label='Actor']")

    # Live: a record made now appears without a reload.
    r2 = send(mqtt, "release", {"device_id": "cam-9"}, actor="alice")
    evt(mqtt, r2, "OK")
    b.wait_until(lambda: "release" in b.texts("#activity tbody td[data-label='Action']"), msg="live record")

    # Filters, and the export link carrying them.
    b.js("document.querySelector('#f-kind').value = 'lease';")
    b.type("#f-actor", "alice")
    b.click("#activity-filters button[type='submit']")
    b.wait_until(lambda: set(b.texts("#activity tbody td[data-label='Kind']")) == {"lease"}, msg="kind filter")
    assert sorted(b.texts("#activity tbody td[data-label='Action']")) == ["release", "take"]
    href = b.attr("#activity-csv", "href")
    assert "format=csv" in href and "kind=lease" in href and "actor=alice" in href, href
    exported = list(csv.DictReader(io.StringIO(stream(host, href[len("/api/audit"):])[1])))
    assert sorted(x["action"] for x in exported) == ["release", "take"]

    # At phone width nothing runs off the side.
    b.reset(width=390, height=844, mobile=True)
    b.open(host.url("/ui/activity"))
    b.wait_until(lambda: rows() >= 4, msg="rows on a phone")
    assert b.js("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
    b.reset()

    # The NDI page's acks table starts with the trail's last commands.
    b.open(host.url("/ui/ndi"))
    b.wait_until(lambda: b.count("#ndi-acks tr[data-req-id='%s']" % r1) == 1, msg="prefilled acks")
    assert b.count("#ndi-acks tr[data-req-id='%s']" % r2) == 1
    assert b.problems() == []
