"""
Who may command devices over MQTT, black-box.

HTTP tokens protect HTTP only; the MQTT plane is protected by the broker's
passwords and ACL, or by the host's `mqtt_commands` option
(docs/security.md).  The first tests run a real mosquitto with exactly the
shipped config/mosquitto/acl.example and the authentication directives of
mosquitto-secure.conf.example (the password file is made here with
mosquitto_passwd); the others run the host's option on an open broker.

Negative cases wait on events, not on time: after a forbidden publish the
test sends a permitted one on the same path, and once that one's answer has
arrived, the forbidden one would have produced its effect already.
"""

import os
import re
import subprocess
import uuid

import pytest

from conftest import wait_until
from exposition import check
from harness import SOURCE_DIR

CMD = "/lab/orchestrator/ndi/cmd"
EVT = "/lab/orchestrator/ndi/evt"
REGISTRY = "/lab/orchestrator/registry"
DEV_CMDS = "/lab/device/+/ndi/cmd"

ACL_FILE = os.path.join(SOURCE_DIR, "config", "mosquitto", "acl.example")
SECURE_CONF = os.path.join(SOURCE_DIR, "config", "mosquitto", "mosquitto-secure.conf.example")

PASSWORD = "pw-" + uuid.uuid4().hex
# alice is an operator in the shipped ACL, orchestrator the host; mallory is
# in the password file but not in the ACL; devices log in as their id.
USERS = ("orchestrator", "alice", "mallory", "rpi-01", "rpi-02")


def rid(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def dev_cmd(device_id):
    return "/lab/device/%s/ndi/cmd" % device_id


def envelope(action, params, actor="app", req_id=None):
    env = {"req_id": req_id or rid(action), "action": action, "params": params}
    if actor is not None:
        env["actor"] = actor
    return env


def meta(device_id, labels):
    return {"device_id": device_id, "modules": ["ndi"], "capabilities": {"ndi": {}},
            "labels": labels, "feature": None, "version": "test", "ts": "2026-11-28T10:00:00Z"}


def acks(client, req_id):
    return [m["payload"] for m in client.messages(EVT)
            if isinstance(m["payload"], dict) and m["payload"].get("req_id") == req_id]


def ack_of(client, req_id, timeout=5):
    return client.wait_for(EVT, lambda m: m["payload"]["req_id"] == req_id,
                           timeout=timeout)["payload"]


def probe_until_answered(client):
    """The host may still be subscribing after /healthz says connected:
    publishes a harmless command until one is answered; returns that ack."""
    for _ in range(20):
        env = envelope("release", {"device_id": "probe"})
        client.publish(CMD, env)
        try:
            return ack_of(client, env["req_id"], timeout=0.5)
        except AssertionError:
            continue
    raise AssertionError("the host never answered a command on %s" % CMD)


# ---- the shipped broker ACL -------------------------------------------------------


def secure_directives(passwd_path):
    """The authentication lines of the shipped mosquitto-secure.conf.example,
    with the password file made by the test and the shipped ACL file as is
    (the listeners are the harness's, on 127.0.0.1)."""
    wanted = {"allow_anonymous", "password_file", "acl_file"}
    lines = []
    with open(SECURE_CONF) as f:
        for line in f:
            words = line.split()
            if not words or words[0] not in wanted:
                continue
            if words[0] == "password_file":
                line = "password_file %s" % passwd_path
            elif words[0] == "acl_file":
                line = "acl_file %s" % ACL_FILE
            lines.append(line.strip())
            wanted.discard(words[0])
    assert not wanted, "%s lacks %s" % (SECURE_CONF, sorted(wanted))
    assert "allow_anonymous false" in lines
    return "\n".join(lines)


@pytest.fixture
def acl_broker(make_broker, tmp_path):
    passwd = tmp_path / "passwd"
    for i, user in enumerate(USERS):
        subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else [])
                       + [str(passwd), user, PASSWORD],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return make_broker(extra_conf=secure_directives(passwd))


def login(make_mqtt, broker, user):
    return make_mqtt(broker=broker, username=user, password=PASSWORD)


def snapshot_where(client, pred, timeout=5):
    return client.wait_for(REGISTRY, lambda m: pred(m["payload"]["devices"]),
                           timeout=timeout)["payload"]


def test_shipped_acl_host_works_and_only_listed_users_command(acl_broker, make_host, make_mqtt):
    # The host logs in with credentials from the environment.
    host = make_host(broker=acl_broker,
                     env={"OH_MQTT_USERNAME": "orchestrator", "OH_MQTT_PASSWORD": PASSWORD})
    host.wait_connected()

    alice = login(make_mqtt, acl_broker, "alice")
    alice.subscribe(REGISTRY)
    alice.subscribe(EVT)
    rpi1 = login(make_mqtt, acl_broker, "rpi-01")
    rpi1.subscribe(dev_cmd("rpi-01"))
    rpi2 = login(make_mqtt, acl_broker, "rpi-02")
    # Subscribed to every device's commands; the ACL lets only its own through.
    rpi2.subscribe(DEV_CMDS)

    # Devices register themselves; the host reads them and publishes the
    # snapshot, which an operator may read.
    rpi2.publish("/lab/device/rpi-02/meta", meta("rpi-02", ["real"]), retain=True)
    rpi1.publish("/lab/device/rpi-01/meta", meta("rpi-01", ["before"]), retain=True)
    snapshot_where(alice, lambda d: "rpi-01" in d and "rpi-02" in d)

    # A device cannot speak for another: rpi-01 forges rpi-02's meta and
    # invents rpi-99, then updates its own.  Its own update arrives after the
    # forgeries would have (one connection, one order).
    rpi1.publish("/lab/device/rpi-02/meta", meta("rpi-02", ["forged"]), retain=True)
    rpi1.publish("/lab/device/rpi-99/meta", meta("rpi-99", ["forged"]), retain=True)
    rpi1.publish("/lab/device/rpi-01/meta", meta("rpi-01", ["after"]), retain=True)
    snap = snapshot_where(alice, lambda d: d.get("rpi-01", {}).get("labels") == ["after"])
    assert snap["devices"]["rpi-02"]["labels"] == ["real"]
    assert "rpi-99" not in snap["devices"]

    # alice, a listed operator, reserves rpi-01.
    probe_until_answered(alice)
    reserve = envelope("reserve", {"device_id": "rpi-01", "lease_s": 300}, actor="alice")
    alice.publish(CMD, reserve)
    assert ack_of(alice, reserve["req_id"])["code"] == "OK"

    # mallory has a password but is not in the ACL: her commands, in an
    # admin's and in alice's name, never reach the host.
    mallory = login(make_mqtt, acl_broker, "mallory")
    forced = envelope("force_release", {"device_id": "rpi-01"}, actor="lab-admin")
    hijack = envelope("start", {"device_id": "rpi-01", "source": "EVIL"}, actor="alice")
    mallory.publish(CMD, forced)
    mallory.publish(CMD, hijack)

    # Then alice's own command: relayed, and the device sees it.
    start = envelope("start", {"device_id": "rpi-01", "source": "CAM-1"}, actor="alice")
    alice.publish(CMD, start)
    assert ack_of(alice, start["req_id"])["code"] == "DISPATCHED"
    assert rpi1.wait_for(dev_cmd("rpi-01"))["payload"]["req_id"] == start["req_id"]

    assert acks(alice, forced["req_id"]) == [] and acks(alice, hijack["req_id"]) == []
    assert [m["payload"]["req_id"] for m in rpi1.messages(DEV_CMDS)] == [start["req_id"]]
    status, body = host.get("/api/ndi/devices")
    assert status == 200
    holder = {d["device_id"]: d["holder"] for d in body["devices"]}
    assert holder["rpi-01"] == "alice", body

    # rpi-02 reads its own commands only: one to it arrives, rpi-01's
    # (relayed earlier on the same host connection) never did.
    other = envelope("start", {"device_id": "rpi-02", "source": "CAM-2"}, actor="alice")
    alice.publish(CMD, other)
    rpi2.wait_for(dev_cmd("rpi-02"), lambda m: m["payload"]["req_id"] == other["req_id"])
    assert [m["topic"] for m in rpi2.messages(DEV_CMDS)] == [dev_cmd("rpi-02")]


def test_shipped_acl_host_credentials_from_config(acl_broker, make_host, make_mqtt, tmp_path):
    pw = tmp_path / "mqtt-password"
    pw.write_text(PASSWORD + "\n")
    host = make_host({"mqtt": {"username": "orchestrator", "password_file": str(pw)}},
                     broker=acl_broker)
    host.wait_connected()
    alice = login(make_mqtt, acl_broker, "alice")
    alice.subscribe(EVT)
    ack = probe_until_answered(alice)
    assert ack["code"] == "NOT_HELD"


# ---- the host's option: mqtt_commands -----------------------------------------------


def test_commands_disabled_get_forbidden_and_rest_still_works(make_host, make_mqtt):
    host = make_host({"mqtt_commands": {"enabled": False}})
    host.wait_connected()
    assert "mqtt_commands.enabled is false" in host.log()
    # One client sees both the host's answers and its relays: a relay would
    # come before the ack that follows it.
    app = make_mqtt()
    app.subscribe(DEV_CMDS)
    app.subscribe(EVT)

    # Probing with a real command: each try that the host heard is refused.
    for _ in range(20):
        start = envelope("start", {"device_id": "rpi-01", "source": "CAM-1"}, actor="alice")
        app.publish(CMD, start)
        try:
            ack = ack_of(app, start["req_id"], timeout=0.5)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError("no answer to a command")
    assert ack["ok"] is False and ack["code"] == "FORBIDDEN", ack
    assert ack["action"] == "start" and ack["actor"] == "alice"
    assert "mqtt_commands.enabled" in ack["error"]
    assert ack["details"] == {"setting": "mqtt_commands.enabled", "device_id": "rpi-01"}

    # Every action, admin or not, and even a bad envelope: refused, not run.
    for env in (envelope("reserve", {"device_id": "rpi-01"}, actor="alice"),
                envelope("force_release", {"device_id": "rpi-01"}, actor=None),
                envelope("schedule", {"at": "2030-01-01T00:00:00Z", "commands": []}),
                {"req_id": rid("bad"), "action": 5}):
        app.publish(CMD, env)
        ack = ack_of(app, env["req_id"])
        assert ack["code"] == "FORBIDDEN", ack
    assert ack["action"] is None
    assert app.messages(DEV_CMDS) == []
    assert len(acks(app, env["req_id"])) == 1
    status, jobs = host.get("/api/ndi/jobs")
    assert status == 200 and jobs["count"] == 0, jobs

    # REST is another plane: it relays, reserves and force-releases as before.
    app.subscribe(REGISTRY)
    app.publish("/lab/device/rpi-01/meta", meta("rpi-01", []), retain=True)
    snapshot_where(app, lambda d: "rpi-01" in d)
    mark = app.mark()
    status, body = host.post("/api/ndi/send", {"device_id": "rpi-01", "source": "CAM-1",
                                               "actor": "alice"})
    assert status == 202 and body["code"] == "DISPATCHED", body
    relayed = app.wait_for(DEV_CMDS, since=mark)["payload"]
    assert relayed["req_id"] == body["req_id"] and relayed["requested_by"] == "alice"
    status, body = host.post("/api/ndi/reserve", {"device_id": "rpi-01", "actor": "alice"})
    assert status == 200, body
    status, body = host.post("/api/ndi/force_release", {"device_id": "rpi-01", "actor": "bob"})
    assert status == 200 and body["details"]["previous_holder"] == "alice", body

    status, text = host.get("/metrics")
    assert re.search(r'^oh_ndi_commands_total\{code="FORBIDDEN"\} [1-9]', text, re.M), text


def test_admin_actors_limit_admin_actions_over_mqtt(make_host, make_mqtt):
    host = make_host({"mqtt_commands": {"admin_actors": ["lab-admin"]}})
    host.wait_connected()
    assert "limited to the 1 actor(s) in mqtt_commands.admin_actors" in host.log()
    app = make_mqtt()
    app.subscribe(EVT)
    probe_until_answered(app)

    def do(action, actor, device_id="rpi-01"):
        env = envelope(action, {"device_id": device_id}, actor=actor)
        app.publish(CMD, env)
        return ack_of(app, env["req_id"])

    assert do("reserve", "bob")["code"] == "OK"

    # Not listed: refused by the host with the reason, before the plugin.
    ack = do("force_release", "carol")
    assert ack["ok"] is False and ack["code"] == "FORBIDDEN", ack
    assert ack["actor"] == "carol" and ack["action"] == "force_release"
    assert "force_release is an admin action" in ack["error"] and "carol" in ack["error"]
    assert ack["details"] == {"setting": "mqtt_commands.admin_actors", "device_id": "rpi-01"}
    ack = do("force_release", None)
    assert ack["code"] == "FORBIDDEN" and ack["actor"] == "anonymous", ack
    assert "force_release" in host.log() and "not in mqtt_commands.admin_actors" in host.log()

    # Other actions are not admin ones: they reach the plugin as before.
    ack = do("reserve", "carol")
    assert ack["code"] == "IN_USE" and ack["details"]["holder"] == "bob", ack
    assert do("release", "carol")["code"] == "NOT_OWNER"

    # A listed actor may.
    ack = do("force_release", "lab-admin")
    assert ack["ok"] is True and ack["code"] == "OK", ack
    assert ack["details"]["previous_holder"] == "bob"
    assert ack["details"]["released_by"] == "lab-admin"

    # REST is unaffected: without tokens every caller is an admin there.
    status, body = host.post("/api/ndi/reserve", {"device_id": "rpi-02", "actor": "bob"})
    assert status == 200, body
    status, body = host.post("/api/ndi/force_release", {"device_id": "rpi-02", "actor": "carol"})
    assert status == 200 and body["details"]["previous_holder"] == "bob", body


def command_parses(host):
    """oh_mqtt_command_parses_total from /metrics."""
    status, _, text = host.request("GET", "/metrics")
    assert status == 200
    samples = check(text)[0]
    return samples[("oh_mqtt_command_parses_total", frozenset())]


def test_a_command_is_parsed_once_behind_the_admin_gate(make_host, make_mqtt):
    """With admin_actors the gate reads each command's envelope before the
    plugin does; the plugin gets that parse (oh_command_parse on the message
    being delivered), so the envelope is parsed and validated once, whether
    the gate lets it through, refuses it, or finds it malformed."""
    host = make_host({"mqtt_commands": {"admin_actors": ["lab-admin"]}})
    host.wait_connected()
    app = make_mqtt()
    app.subscribe(EVT)
    probe_until_answered(app)
    before = command_parses(host)

    sent = [envelope("reserve", {"device_id": "rpi-01"}, actor="bob"),      # through, OK
            envelope("force_release", {"device_id": "rpi-01"}, actor="carol"),  # refused
            envelope("force_release", {"device_id": "rpi-01"}, actor="lab-admin"),
            envelope("reserve", {"device_id": "rpi-01", "lease": 5}),        # bad params
            envelope("reserve", "not an object"),                            # bad envelope
            envelope("start", {"device_id": "rpi-01", "source": "CAM-1"})]   # relayed
    codes = []
    for env in sent:
        app.publish(CMD, env)
        codes.append(ack_of(app, env["req_id"])["code"])
    assert codes == ["OK", "FORBIDDEN", "OK", "BAD_REQUEST", "BAD_REQUEST", "DISPATCHED"], codes
    # The bad envelope's ack still carries its req_id: the one parse kept it.
    assert command_parses(host) - before == len(sent)


def test_tokens_with_open_command_topics_warn(make_host):
    host = make_host({"http": {"tokens": [{"name": "ops", "role": "admin",
                                           "sha256": "0" * 64}]}})
    host.wait_connected()
    wait_until(lambda: "HTTP tokens protect HTTP only" in host.log(), 5,
               msg="the startup warning about the MQTT plane")
    line = next(l for l in host.log().splitlines() if "HTTP tokens protect HTTP only" in l)
    assert "warn" in line and "config/mosquitto/acl.example" in line and "mqtt_commands" in line


@pytest.mark.parametrize("value,needle", [
    ({"enabled": "no"}, "mqtt_commands.enabled: expected true or false"),
    ({"admin_actors": "alice"}, "mqtt_commands.admin_actors: expected an array of actor names"),
    ({"admin_actors": ["alice", ""]}, "mqtt_commands.admin_actors[1]: expected an actor name"),
    ({"admin_actors": ["alice", 7]}, "mqtt_commands.admin_actors[1]: expected an actor name"),
    ({"admin_actors": ["alice", "alice"]}, "mqtt_commands.admin_actors[1]: \"alice\" is listed twice"),
    ({"admins": []}, "mqtt_commands.admins: unknown key"),
    ([], "mqtt_commands: expected an object"),
])
def test_config_errors_name_the_key(make_host, value, needle):
    host = make_host({"mqtt_commands": value}, start=False)
    cp = host.run(["--config", host.config_path, "--check-config"])
    assert cp.returncode != 0 and needle in cp.stderr, cp.stderr


def test_config_accepts_the_documented_forms(make_host):
    for value in ({"enabled": True, "admin_actors": None}, {"admin_actors": []},
                  {"enabled": False, "admin_actors": ["lab-admin", "alice"]}):
        host = make_host({"mqtt_commands": value}, start=False)
        cp = host.run(["--config", host.config_path, "--check-config"])
        assert cp.returncode == 0, (value, cp.stderr)
