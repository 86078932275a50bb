"""
Routes that hold (issue 18), black-box: the real C agent
(orchestrator-device, simulated or running `sleep` as its viewer), a real
mosquitto and the real host.

A route says what a device should show; the host keeps it so, with nobody
sending anything: after an agent kill and restart, after the viewer dies,
after someone else switches the input, and across a host restart.  A
refused command backs off (1 s, 2 s, 4 s ...), read from the ROUTE_STATE
events.  A preset applies all or nothing against a lease, also from a
scheduled job.  With API tokens the owner of a route is the token's name.
"""

import hashlib
import os
import signal
import time

import pytest


EVT = "/lab/orchestrator/ndi/evt"
CMD = "/lab/orchestrator/ndi/cmd"


def mod_status(dev):
    return "/lab/device/%s/ndi/status" % dev


def shows(source, recording=None):
    """A predicate on a device's module status message."""
    def ok(m):
        f = m["payload"]["fields"]
        return f["input"] == source and (recording is None or f["recording"] is recording)
    return ok


def route_state(dev, state):
    def ok(m):
        p = m["payload"]
        return (p["code"] == "ROUTE_STATE" and p["details"]["device_id"] == dev
                and p["details"]["state"] == state)
    return ok


def behind_its_back(lab, dev, action, **params):
    """Switches a device as an app may, straight on its command topic, and
    waits for its module status to show it; returns the mark before."""
    since = lab.mqtt.mark()
    params["device_id"] = dev
    lab.mqtt.publish("/lab/device/%s/ndi/cmd" % dev, {
        "req_id": "sneak-" + dev, "actor": "app", "action": action, "params": params})
    lab.mqtt.wait_for(mod_status(dev), shows(params.get("source")), since=since, timeout=10)
    return since


@pytest.fixture
def lab(make_host, make_mqtt, make_device):
    """A host, a client watching the evt topic and every module status, and
    a way to start agents."""
    host = make_host()
    mqtt = make_mqtt()
    mqtt.subscribe(EVT)
    mqtt.subscribe("/lab/device/+/ndi/status")
    mqtt.subscribe("/lab/device/+/ndi/cmd")

    class Lab:
        pass
    lab = Lab()
    lab.host, lab.mqtt = host, mqtt

    def simulated(prefix, n=1):
        return make_device({"heartbeat_interval_s": 60},
                           extra_args=["--simulate", str(n), "--id-prefix", prefix])

    def real(dev, **ndi):
        settings = {"start_cmd_template": "sleep 1000", "stop_grace_s": 1}
        settings.update(ndi)
        return make_device({"device_id": dev, "heartbeat_interval_s": 60, "modules": {"ndi": settings}})

    lab.simulated, lab.real = simulated, real
    return lab


def put_route(host, dev, body):
    status, reply = host.put("/api/ndi/routes/" + dev, body)
    assert status == 200, reply
    return reply


def routed(lab, prefix, dev):
    """Starts simulated agents named prefix*, and waits until dev's route
    to CAM-1 has converged."""
    lab.simulated(prefix)
    lab.mqtt.wait_for(mod_status(dev), timeout=10)
    since = lab.mqtt.mark()
    put_route(lab.host, dev, {"source": "CAM-1"})
    lab.mqtt.wait_for(EVT, route_state(dev, "converged"), since=since, timeout=10)


def test_route_survives_agent_kill_and_restart(lab):
    agent = lab.simulated("rk-")
    lab.mqtt.wait_for(mod_status("rk-01"), timeout=10)
    since = lab.mqtt.mark()
    reply = put_route(lab.host, "rk-01", {"source": "CAM-1", "actor": "alice"})
    assert reply["code"] == "OK" and reply["details"]["owner"] == "alice"
    lab.mqtt.wait_for(mod_status("rk-01"), shows("CAM-1"), since=since, timeout=10)
    lab.mqtt.wait_for(EVT, route_state("rk-01", "converged"), since=since, timeout=10)

    since = lab.mqtt.mark()
    agent.kill()
    # Its will says it is gone: nothing is sent to it meanwhile.
    lab.mqtt.wait_for(EVT, route_state("rk-01", "offline"), since=since, timeout=10)
    agent.start()
    since = lab.mqtt.mark()
    # The restarted agent shows nothing, then the host puts the route back.
    lab.mqtt.wait_for(mod_status("rk-01"), shows(None), since=since, timeout=10)
    lab.mqtt.wait_for(mod_status("rk-01"), shows("CAM-1"), since=since, timeout=10)
    lab.mqtt.wait_for(EVT, route_state("rk-01", "converged"), since=since, timeout=10)
    status, route = lab.host.get("/api/ndi/routes/rk-01")
    assert status == 200 and route["state"] == "converged", route
    # Sent as the deployed agents require, for the route's owner, once per
    # convergence: the first and the one after the restart.
    sent = [m["payload"] for m in lab.mqtt.messages("/lab/device/rk-01/ndi/cmd")]
    assert [(p["action"], p["actor"], p["requested_by"]) for p in sent] == \
        [("start", "orchestrator", "alice")] * 2, sent
    assert route["desired"] == {"source": "CAM-1", "recording": False}
    assert route["actual"] == {"source": "CAM-1", "recording": False}


def test_reported_other_input_is_corrected(lab):
    routed(lab, "ri-", "ri-01")
    since = behind_its_back(lab, "ri-01", "set_input", source="CAM-9")
    lab.mqtt.wait_for(mod_status("ri-01"), shows("CAM-1"), since=since, timeout=10)
    lab.mqtt.wait_for(EVT, route_state("ri-01", "converged"), since=since, timeout=10)


def test_correction_held_back_by_the_send_rate_shows_drift(lab):
    # A converged route whose device switches while the reconciler's send
    # rate is spent (here by a preset of devices that never answer, as
    # after a site restart) waits its turn: meanwhile it is in drift, not
    # converged as before.
    routed(lab, "rd-", "rd-01")
    ghosts = {"rd-ghost-%04d" % i: {"source": "CAM-G"} for i in range(1500)}
    assert lab.host.put("/api/ndi/presets/flood", {"routes": ghosts})[0] == 200
    since = lab.mqtt.mark()
    assert lab.host.post("/api/ndi/presets/flood/apply", {})[0] == 200
    # At most 500 commands/s: the ghosts' take about 3 s from the first
    # (held back until 3 s after the host's start for devices unheard of).
    lab.mqtt.wait_for(EVT, lambda m: m["payload"]["code"] == "ROUTE_STATE" and
                      m["payload"]["details"]["device_id"].startswith("rd-ghost-"),
                      since=since, timeout=10)
    since = behind_its_back(lab, "rd-01", "set_input", source="CAM-9")
    route = lab.host.get("/api/ndi/routes/rd-01")[1]
    assert route["actual"]["source"] == "CAM-9", route
    assert route["state"] == "drift", route
    lab.mqtt.wait_for(mod_status("rd-01"), shows("CAM-1"), since=since, timeout=15)


def test_killed_viewer_comes_back(lab):
    lab.real("rv-1")
    lab.mqtt.wait_for(mod_status("rv-1"), timeout=10)
    since = lab.mqtt.mark()
    put_route(lab.host, "rv-1", {"source": "CAM-1"})
    first = lab.mqtt.wait_for(mod_status("rv-1"), shows("CAM-1"), since=since, timeout=10)
    pid = first["payload"]["fields"]["pid"]
    assert isinstance(pid, int) and pid > 0
    since = lab.mqtt.mark()
    os.kill(pid, signal.SIGKILL)
    again = lab.mqtt.wait_for(
        mod_status("rv-1"),
        lambda m: shows("CAM-1")(m) and m["payload"]["fields"]["pid"] not in (None, pid),
        since=since, timeout=10)
    assert again["payload"]["fields"]["pid"] != pid


def test_refused_command_backs_off(lab):
    # No record_start_cmd_template: the agent refuses record_start.
    lab.real("rb-1")
    lab.mqtt.wait_for(mod_status("rb-1"), timeout=10)
    since = lab.mqtt.mark()
    put_route(lab.host, "rb-1", {"source": "CAM-1", "recording": True})
    fails = []
    index = since
    while len(fails) < 3:
        m = lab.mqtt.wait_for(EVT, route_state("rb-1", "failed"), since=index, timeout=15)
        index = lab.mqtt.messages().index(m) + 1
        fails.append(m)
    details = [m["payload"]["details"] for m in fails]
    assert [d["retry_in_s"] for d in details] == [1, 2, 4], details
    assert [d["attempts"] for d in details] == [1, 2, 3], details
    assert "record_start" in details[0]["error"], details[0]
    # The retries came no sooner than the backoff said (event times).
    for i in range(2):
        gap = fails[i + 1]["time"] - fails[i]["time"]
        assert gap >= details[i]["retry_in_s"] * 0.9, (i, gap, details)
    # The viewer part of the route was done, once: no storm of starts.
    commands = [m for m in lab.mqtt.messages(EVT, since=since)
                if m["payload"].get("code") == "COMPLETED"
                and m["payload"].get("action") == "start"]
    assert len(commands) == 1, commands


def test_one_devices_failures_do_not_delay_another(lab):
    # A route failing in its backoff (next try in 2 s) holds back nobody
    # else's: a route set meanwhile on another device converges at once.
    lab.real("rn-1")
    lab.simulated("rm-")
    lab.mqtt.wait_for(mod_status("rn-1"), timeout=10)
    lab.mqtt.wait_for(mod_status("rm-01"), timeout=10)
    since = lab.mqtt.mark()
    put_route(lab.host, "rn-1", {"source": "CAM-1", "recording": True})
    first = lab.mqtt.wait_for(EVT, route_state("rn-1", "failed"), since=since, timeout=10)
    second = lab.mqtt.wait_for(EVT, route_state("rn-1", "failed"),
                               since=lab.mqtt.messages().index(first) + 1, timeout=10)
    assert second["payload"]["details"]["retry_in_s"] == 2, second
    since = lab.mqtt.mark()
    put_route(lab.host, "rm-01", {"source": "CAM-2"})
    lab.mqtt.wait_for(EVT, route_state("rm-01", "converged"), since=since, timeout=1.5)
    # Still inside rn-1's backoff: it has not failed a third time yet.
    assert not [m for m in lab.mqtt.messages(EVT, since=since) if route_state("rn-1", "failed")(m)]


def test_viewer_that_dies_at_once_backs_off(lab):
    # Each start is acked and shown, then the viewer is gone: sent again as
    # fast as the device dropped it, that was hundreds of starts a second.
    lab.real("rc-1", start_cmd_template="true")
    lab.mqtt.wait_for(mod_status("rc-1"), timeout=10)
    since = lab.mqtt.mark()
    put_route(lab.host, "rc-1", {"source": "CAM-1"})
    first = lab.mqtt.wait_for(EVT, route_state("rc-1", "failed"), since=since, timeout=10)
    second = lab.mqtt.wait_for(EVT, route_state("rc-1", "failed"),
                               since=lab.mqtt.messages().index(first) + 1, timeout=10)
    details = [m["payload"]["details"] for m in (first, second)]
    assert [d["retry_in_s"] for d in details] == [1, 2], details
    assert "left the route" in details[0]["error"], details[0]
    # The first loss put right at once, then one start per backoff.
    starts = lab.mqtt.messages("/lab/device/rc-1/ndi/cmd", since=since)
    assert len(starts) == 3, [m["payload"]["action"] for m in starts]


def test_preset_applies_all_or_nothing_against_a_lease(lab):
    host = lab.host
    lab.simulated("rp-", 2)
    for dev in ("rp-01", "rp-02"):
        lab.mqtt.wait_for(mod_status(dev), timeout=10)
    status, reply = host.put("/api/ndi/presets/lecture", {
        "routes": {"rp-01": {"source": "CAM-1"}, "rp-02": {"source": "CAM-2", "recording": True}},
        "actor": "alice"})
    assert status == 200, reply
    status, reply = host.put("/api/ndi/presets/bad", {"routes": {"rp-01": {"sorce": "x"}}})
    assert status == 400 and reply["error"]["message"] == "routes.rp-01.sorce: unknown key", reply
    status, reply = host.post("/api/ndi/reserve", {"device_id": "rp-02", "actor": "bob"})
    assert status == 200, reply

    status, reply = host.post("/api/ndi/presets/lecture/apply", {"actor": "alice"})
    assert status == 409 and reply["error"]["code"] == "IN_USE", reply
    assert reply["error"]["details"]["devices"] == [{"device_id": "rp-02", "holder": "bob"}]
    assert host.get("/api/ndi/routes")[1] == {"routes": []}
    # The same verdict over MQTT.
    lab.mqtt.publish(CMD, {"req_id": "ap-1", "actor": "alice", "action": "apply_preset",
                           "params": {"name": "lecture"}})
    ack = lab.mqtt.wait_for(EVT, lambda m: m["payload"]["req_id"] == "ap-1")
    assert ack["payload"]["code"] == "IN_USE", ack
    assert host.get("/api/ndi/routes")[1] == {"routes": []}

    since = lab.mqtt.mark()
    status, reply = host.post("/api/ndi/presets/lecture/apply", {"actor": "bob"})
    assert status == 200 and reply["code"] == "OK", reply
    routes = host.get("/api/ndi/routes")[1]["routes"]
    assert [(r["device_id"], r["owner"]) for r in routes] == [("rp-01", "bob"), ("rp-02", "bob")]
    lab.mqtt.wait_for(mod_status("rp-02"), shows("CAM-2", True), since=since, timeout=10)
    lab.mqtt.wait_for(mod_status("rp-01"), shows("CAM-1"), since=since, timeout=10)
    # Routing a device reserved by someone else: IN_USE, as for commands.
    status, reply = host.put("/api/ndi/routes/rp-02", {"source": "CAM-3", "actor": "alice"})
    assert status == 409 and reply["error"]["code"] == "IN_USE", reply
    # A route is kept when its lease ends.
    assert host.post("/api/ndi/release", {"device_id": "rp-02", "actor": "bob"})[0] == 200
    assert host.get("/api/ndi/routes/rp-02")[1]["desired"]["source"] == "CAM-2"


def test_scheduled_preset_fires_and_routes_survive_a_host_restart(lab):
    host = lab.host
    lab.simulated("rs-")
    lab.mqtt.wait_for(mod_status("rs-01"), timeout=10)
    assert host.put("/api/ndi/presets/evening", {"routes": {"rs-01": {"source": "CAM-E"}}})[0] == 200
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    since = lab.mqtt.mark()
    status, job = host.post("/api/ndi/jobs", {
        "at": at, "name": "evening layout", "actor": "carol",
        "commands": [{"action": "apply_preset", "params": {"name": "evening"}}]})
    assert status in (200, 201), job
    fired = lab.mqtt.wait_for(EVT, lambda m: m["payload"]["code"] == "FIRED", since=since, timeout=10)
    assert fired["payload"]["details"]["skipped"] == [], fired
    lab.mqtt.wait_for(mod_status("rs-01"), shows("CAM-E"), since=since, timeout=10)
    route = host.get("/api/ndi/routes/rs-01")[1]
    assert route["owner"] == "carol" and route["desired"]["source"] == "CAM-E", route
    # A job's command is checked like the command topic's.
    status, reply = host.post("/api/ndi/jobs", {
        "cron": "0 8 * * 1-5", "commands": [{"action": "route", "params": {"recording": True}}]})
    assert status == 400 and "commands[0].device_id: missing" in reply["error"]["message"], reply

    host.restart()
    host.wait_connected()
    assert host.get("/api/ndi/routes/rs-01")[1]["desired"] == {"source": "CAM-E", "recording": False}
    assert [p["name"] for p in host.get("/api/ndi/presets")[1]["presets"]] == ["evening"]
    # Still kept after the restart: a switch behind its back is undone.
    since = behind_its_back(lab, "rs-01", "stop")
    lab.mqtt.wait_for(mod_status("rs-01"), shows("CAM-E"), since=since, timeout=10)
    assert host.delete("/api/ndi/routes/rs-01")[0] == 200
    assert host.get("/api/ndi/routes/rs-01")[0] == 404


def test_with_tokens_the_owner_is_the_tokens_name(make_host):
    secrets = {"carol": ("operator", "c" * 32), "vic": ("viewer", "v" * 32)}
    host = make_host({"http": {"tokens": [
        {"name": name, "role": role, "sha256": hashlib.sha256(secret.encode()).hexdigest()}
        for name, (role, secret) in secrets.items()]}})

    def auth(name):
        return {"Authorization": "Bearer " + secrets[name][1]}

    status, reply = host.put("/api/ndi/routes/rt-1", {"source": "CAM-1", "actor": "mallory"},
                             headers=auth("carol"))
    assert status == 200 and reply["details"]["owner"] == "carol", reply
    status, reply = host.put("/api/ndi/routes/rt-1", {"source": "CAM-2"}, headers=auth("vic"))
    assert status == 403, reply
    status, route = host.get("/api/ndi/routes/rt-1", headers=auth("vic"))
    assert status == 200 and route["desired"]["source"] == "CAM-1", route
