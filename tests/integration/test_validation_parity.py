"""
One command, one verdict: the same good and bad NDI commands sent over the
command topic (MQTT), the REST API and as a scheduled job must be judged
alike, because all three check them against the one actions table with the
one validator (include/oh/validate.h).

Each case is a command in the command topic's shape ({action, params}) and
the verdict it must get: "ok", or an ack code and the error text.  The test
sends it on each road, reads the verdict there (the ack, the HTTP error
body, the `schedule` ack) and writes the field the error names back in the
command topic's terms:

  MQTT     params.source         (as is)
  REST     source / device_id    (a lease body is the params; /send takes
           params.source          device_id beside its params)
  job      commands[0].params.source, commands[0].device_id,
           commands[0].action

so that one table pins every road.  Lease actions cannot be scheduled:
they run on the first two roads.  The contract is docs/plugins.md
("Validating JSON") and docs/protocol.md.
"""

import datetime
import re
import uuid

import pytest

from conftest import wait_until

CMD = "/lab/orchestrator/ndi/cmd"
EVT = "/lab/orchestrator/ndi/evt"
DEV = "rpi-01"
RULE = 'must be 1-64 of [A-Za-z0-9._-], not "." or ".."'
SOURCE_MISSING = "params.source: missing (expected a string of 1-1024 characters)"
RANGE = "is out of range: expected above 0 and at most 600 (max_lease_s)"

# (name, action, params, verdict): verdict "ok" or (code, error text).
RELAY_CASES = [
    ("start", "start", {"device_id": DEV, "source": "CAM-1"}, "ok"),
    ("start-extra-param-relayed", "set_input", {"device_id": DEV, "source": "CAM-2", "volume": 3},
     "ok"),
    ("record-start-source-null-is-absent", "record_start", {"device_id": DEV, "source": None}, "ok"),
    ("start-no-source", "start", {"device_id": DEV}, ("BAD_REQUEST", SOURCE_MISSING)),
    ("start-source-null", "start", {"device_id": DEV, "source": None},
     ("BAD_REQUEST", SOURCE_MISSING)),
    ("start-source-number", "start", {"device_id": DEV, "source": 5},
     ("BAD_REQUEST", "params.source: expected a string of 1-1024 characters")),
    ("start-source-empty", "start", {"device_id": DEV, "source": ""},
     ("BAD_REQUEST", "params.source: expected a string of 1-1024 characters")),
    ("no-device-id", "stop", {}, ("BAD_REQUEST", "params.device_id: missing (expected a string)")),
    ("device-id-slash", "stop", {"device_id": "a/b"}, ("BAD_REQUEST", "params.device_id: " + RULE)),
    ("device-id-number", "stop", {"device_id": 7},
     ("BAD_REQUEST", "params.device_id: expected a string")),
    ("unknown-action", "fly", {"device_id": DEV}, ("BAD_ACTION", 'action: unknown action "fly"')),
]

LEASE_CASES = [
    ("reserve", "reserve", {"device_id": DEV, "lease_s": 30}, "ok"),
    ("reserve-lease-null-is-default", "reserve", {"device_id": DEV, "lease_s": None}, "ok"),
    ("renew", "renew", {"device_id": DEV}, "ok"),
    ("reserve-typo-refused", "reserve", {"device_id": DEV, "lease": 30},
     ("BAD_REQUEST", "params.lease: unknown key")),
    ("release-extra-refused", "release", {"device_id": DEV, "lease_s": 5},
     ("BAD_REQUEST", "params.lease_s: unknown key")),
    ("reserve-lease-zero", "reserve", {"device_id": DEV, "lease_s": 0},
     ("BAD_REQUEST", "params.lease_s: 0 " + RANGE)),
    ("reserve-lease-over", "reserve", {"device_id": DEV, "lease_s": 601},
     ("BAD_REQUEST", "params.lease_s: 601 " + RANGE)),
    ("reserve-lease-string", "renew", {"device_id": DEV, "lease_s": "60"},
     ("BAD_REQUEST", "params.lease_s: expected a number")),
    ("reserve-no-device", "reserve", {"lease_s": 30},
     ("BAD_REQUEST", "params.device_id: missing (expected a string)")),
]

# Routes (issue 18): MQTT `route`, REST PUT /api/ndi/routes/{device_id}, a job.
ROUTE_CASES = [
    ("route", "route", {"device_id": DEV, "source": "CAM-1"}, "ok"),
    ("route-source-null", "route", {"device_id": DEV, "source": None, "recording": False}, "ok"),
    ("route-typo", "route", {"device_id": DEV, "sorce": "CAM-1"},
     ("BAD_REQUEST", "params.sorce: unknown key")),
    ("route-source-empty", "route", {"device_id": DEV, "source": ""},
     ("BAD_REQUEST", "params.source: expected a string of 1-1024 characters or null")),
    ("route-recording-string", "route", {"device_id": DEV, "source": "CAM-1", "recording": "yes"},
     ("BAD_REQUEST", "params.recording: expected true or false")),
    ("route-recording-without-source", "route", {"device_id": DEV, "recording": True},
     ("BAD_REQUEST", "params.recording: true needs a source to record")),
]


@pytest.fixture
def lab(make_host, make_mqtt):
    host = make_host({"plugins": [{"module": "ndi", "path": "builtin:ndi",
                                   "settings": {"mdns": False, "max_lease_s": 600,
                                                "ack_timeout_s": 30}}]})
    host.wait_connected()
    dev = make_mqtt()
    dev.publish("/lab/device/%s/meta" % DEV, {"device_id": DEV, "modules": ["ndi"]}, retain=True)
    dev.publish("/lab/device/%s/status" % DEV, {"device_id": DEV, "online": True}, retain=True)
    wait_until(lambda: host.get("/api/devices/%s" % DEV)[0] == 200, 5, msg="the device registered")
    app = make_mqtt()
    app.subscribe(EVT)
    return host, app


def via_mqtt(app, action, params):
    rid = uuid.uuid4().hex
    mark = app.mark()
    app.publish(CMD, {"req_id": rid, "action": action, "actor": "alice", "params": params})
    ack = app.wait_for(EVT, lambda m: m["payload"]["req_id"] == rid, 5, since=mark)["payload"]
    if ack["ok"]:
        assert ack["code"] in ("DISPATCHED", "OK"), ack
        return "ok"
    return ack["code"], ack["error"]


def rest_verdict(resp, ok_status):
    status, body = resp
    if status in ok_status:
        assert body["ok"] is True, body
        return "ok"
    assert status == 400, resp
    return body["error"]["code"], body["error"]["message"]


def via_rest_send(host, action, params):
    body = {"action": action, "actor": "alice"}
    rest = dict(params)
    if "device_id" in rest:
        body["device_id"] = rest.pop("device_id")
    if rest:
        body["params"] = rest
    verdict = rest_verdict(host.post("/api/ndi/send", body), (202,))
    # /send takes device_id beside its params: the command topic's name.
    if verdict != "ok":
        verdict = (verdict[0], re.sub(r"^device_id:", "params.device_id:", verdict[1]))
    return verdict


def via_rest_lease(host, action, params):
    body = dict(params, actor="alice")
    verdict = rest_verdict(host.post("/api/ndi/" + action, body), (200,))
    # A lease body is the params themselves.
    if verdict != "ok":
        verdict = (verdict[0], "params." + verdict[1])
    return verdict


def via_rest_route(host, params):
    body = dict(params, actor="alice")
    dev = body.pop("device_id")
    verdict = rest_verdict(host.put("/api/ndi/routes/" + dev, body), (200,))
    # The body is the params but device_id, which is in the path.
    if verdict != "ok":
        verdict = (verdict[0], "params." + verdict[1])
    return verdict


def via_job(app, action, params):
    command = {"action": action}
    rest = dict(params)
    if "device_id" in rest:
        command["device_id"] = rest.pop("device_id")
    if rest:
        command["params"] = rest
    at = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    rid = uuid.uuid4().hex
    mark = app.mark()
    app.publish(CMD, {"req_id": rid, "action": "schedule", "actor": "alice",
                      "params": {"at": at, "commands": [command]}})
    ack = app.wait_for(EVT, lambda m: m["payload"]["req_id"] == rid, 5, since=mark)["payload"]
    if ack["ok"]:
        assert ack["code"] == "SCHEDULED", ack
        return "ok"
    # A job names its command's fields from the schedule params down.
    text = re.sub(r"^commands\[0\]\.(device_id:)", r"params.\1", ack["error"])
    text = re.sub(r"^commands\[0\]\.", "", text)
    return ack["code"], text


@pytest.mark.parametrize("case", RELAY_CASES, ids=[c[0] for c in RELAY_CASES])
def test_relayed_commands_get_one_verdict_on_every_road(lab, case):
    host, app = lab
    _, action, params, want = case
    got = {"mqtt": via_mqtt(app, action, params),
           "rest": via_rest_send(host, action, params),
           "job": via_job(app, action, params)}
    assert got == {"mqtt": want, "rest": want, "job": want}, got


@pytest.mark.parametrize("case", LEASE_CASES, ids=[c[0] for c in LEASE_CASES])
def test_lease_commands_get_one_verdict_on_mqtt_and_rest(lab, case):
    host, app = lab
    _, action, params, want = case
    if action == "renew":
        # Something to renew, on either road.
        assert via_mqtt(app, "reserve", {"device_id": DEV}) == "ok"
    got = {"mqtt": via_mqtt(app, action, params), "rest": via_rest_lease(host, action, params)}
    assert got == {"mqtt": want, "rest": want}, got


@pytest.mark.parametrize("case", ROUTE_CASES, ids=[c[0] for c in ROUTE_CASES])
def test_route_commands_get_one_verdict_on_every_road(lab, case):
    host, app = lab
    _, action, params, want = case
    got = {"mqtt": via_mqtt(app, action, params), "rest": via_rest_route(host, params),
           "job": via_job(app, action, params)}
    assert got == {"mqtt": want, "rest": want, "job": want}, got


def test_a_lease_action_cannot_be_scheduled(lab):
    host, app = lab
    code, text = via_job(app, "reserve", {"device_id": DEV})
    assert code == "BAD_REQUEST" and text.startswith('action: "reserve" cannot be scheduled'), text


# ---- a device this host's registry does not know --------------------------------------

GHOST = "ghost-01"  # an agent that may be alive, but whose meta this host has not heard
NOT_IN_REGISTRY = "device_id: device %s is not in the registry" % GHOST


def relay_verdict(ack):
    """What a relayed command's DISPATCHED ack says, road-independent."""
    return ack["code"], ack["ok"], ack["action"], ack.get("warnings")


def test_a_device_not_in_the_registry_gets_one_verdict_on_every_road(lab):
    """The registry may be cold after a restart, or a broker ACL may hide an
    agent's meta: the command is relayed on every road, its DISPATCHED ack
    warning that the registry does not know the device (docs/protocol.md,
    "warnings").  REST used to answer 404 where MQTT relayed."""
    host, app = lab
    assert host.get("/api/devices/" + GHOST)[0] == 404
    dev_topic = "/lab/device/%s/ndi/cmd" % GHOST
    app.subscribe(dev_topic)
    params = {"device_id": GHOST, "source": "CAM-1"}
    verdicts, relayed = {}, {}

    # MQTT: the ack on the evt topic.
    rid = uuid.uuid4().hex
    mark = app.mark()
    app.publish(CMD, {"req_id": rid, "action": "start", "actor": "alice", "params": params})
    verdicts["mqtt"] = relay_verdict(
        app.wait_for(EVT, lambda m: m["payload"]["req_id"] == rid, 5, since=mark)["payload"])
    relayed["mqtt"] = app.wait_for(dev_topic, lambda m: m["payload"]["req_id"] == rid, 5,
                                   since=mark)["payload"]

    # REST: the reply is the DISPATCHED ack.
    rid = uuid.uuid4().hex
    mark = app.mark()
    status, ack = host.post("/api/ndi/send", {"device_id": GHOST, "source": "CAM-1",
                                              "actor": "alice", "req_id": rid})
    assert status == 202, (status, ack)
    verdicts["rest"] = relay_verdict(ack)
    relayed["rest"] = app.wait_for(dev_topic, lambda m: m["payload"]["req_id"] == rid, 5,
                                   since=mark)["payload"]

    # A job: scheduled, then fired through the same relay.
    at = (datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) +
          datetime.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rid = uuid.uuid4().hex
    mark = app.mark()
    app.publish(CMD, {"req_id": rid, "action": "schedule", "actor": "alice", "params": {
        "at": at, "commands": [{"device_id": GHOST, "action": "start",
                                "params": {"source": "CAM-1"}}]}})
    ack = app.wait_for(EVT, lambda m: m["payload"]["req_id"] == rid, 5, since=mark)["payload"]
    assert ack["code"] == "SCHEDULED", ack
    relayed["job"] = app.wait_for(dev_topic, timeout=10, since=mark)["payload"]
    verdicts["job"] = relay_verdict(app.wait_for(
        EVT, lambda m: m["payload"]["req_id"] == relayed["job"]["req_id"], 5,
        since=mark)["payload"])

    want = ("DISPATCHED", True, "start", verdicts["mqtt"][3])
    assert verdicts == {"mqtt": want, "rest": want, "job": want}, verdicts
    # One entry per thing relayed anyway: the device, and the source no
    # discovery of this host has seen.
    warnings = want[3]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith(NOT_IN_REGISTRY), warnings
    assert warnings[1].startswith('params.source: the host\'s discovery has not seen NDI source "CAM-1"'), warnings
    for road, env in relayed.items():
        assert env["action"] == "start" and env["params"] == params, (road, env)
