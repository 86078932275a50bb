"""
MQTT 5 by default, and the message expiry of relayed commands (issue 18,
"Stale commands"; docs/protocol.md, "MQTT 5 and 3.1.1"), against a real
mosquitto 2.0:
- the host speaks v5 (the broker's own log says "p5"; /healthz says "5"),
  and a command it relays, over MQTT or REST, reaches a v5 subscriber with
  a MessageExpiryInterval of command_expiry_s, and so does a scheduled
  one, while its own acks and its retained birth carry none;
- a command relayed while a device with a persistent session is away, and
  left queued longer than command_expiry_s, is dropped by the broker: the
  device, back, gets only the command relayed after its return.  The
  device is a paho 3.1.1 client with clean_session=False standing in for a
  deployed agent: orchestrator-device holds a clean session, so the broker
  queues nothing for it;
- mqtt.protocol "3.1.1" speaks 3.1.1 ("p2") and sends no expiry; "5"
  against a broker that refuses v5 does not fall back and says why.
The keys' validation is tests/unit/test_config.c's; the fallback to 3.1.1
on RabbitMQ is test_registry_rabbitmq.py's.
"""

import threading
import time

import paho.mqtt.client as paho

from conftest import unique_name, wait_until
from test_birth_message import ScriptedBroker
from test_ndi_commands import EVT, Ndi, dev_cmd, ndi_config, rid

STATUS = "/lab/orchestrator/status"


class V5Watcher:
    """A paho MQTT 5 subscriber that keeps each message's properties."""

    def __init__(self, broker):
        self._cond = threading.Condition()
        self.messages = []
        self.c = paho.Client(client_id=unique_name("v5-watch"), protocol=paho.MQTTv5)
        self.c.on_message = self._on_message
        self.c.connect(broker.host, broker.port, keepalive=30)
        self.c.loop_start()

    def _on_message(self, client, userdata, msg):
        props = getattr(msg, "properties", None)
        expiry = getattr(props, "MessageExpiryInterval", None) if props else None
        with self._cond:
            self.messages.append({"topic": msg.topic, "payload": msg.payload, "retain": msg.retain,
                                  "expiry": expiry})
            self._cond.notify_all()

    def subscribe(self, *filters):
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe([(f, paho.SubscribeOptions(qos=1)) for f in filters])
        assert done.wait(5), "no SUBACK"

    def wait_for(self, topic, needle, timeout=5):
        def find():
            return next((m for m in self.messages
                         if m["topic"] == topic and needle.encode() in m["payload"]), None)
        with self._cond:
            assert self._cond.wait_for(find, timeout), (topic, needle, self.messages)
            return find()

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def connected_as(broker, client_id):
    """The protocol mosquitto logged for client_id's last connect: "p5"
    (MQTT 5) or "p2" (3.1.1)."""
    lines = [l for l in broker.log().splitlines() if "New client connected" in l and
             " as %s " % client_id in l]
    return lines[-1].split("(")[-1].split(",")[0] if lines else None


def test_v5_relays_commands_with_expiry(make_host, make_mqtt, broker):
    host = make_host(ndi_config(command_expiry_s=30))
    assert host.wait_connected()["mqtt_protocol"] == "5"
    assert connected_as(broker, host.config["mqtt"]["client_id"]) == "p5", broker.log()
    w = V5Watcher(broker)
    try:
        w.subscribe(dev_cmd("+"), EVT, STATUS)
        app = Ndi(host, make_mqtt())
        # A scheduled command, due at the next whole second.
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(time.time()) + 1))
        status, job = host.post("/api/ndi/jobs", {"actor": "alice", "at": when, "commands": [
            {"device_id": "rpi-03", "action": "start", "params": {"source": "CAM-3"}}]})
        assert status == 201, job
        mqtt_req = app.send("start", {"device_id": "rpi-01", "source": "CAM-1"})["req_id"]
        assert app.event(mqtt_req)["code"] == "DISPATCHED"
        rest_req = "rest-" + rid()
        status, body = host.post("/api/ndi/send", {"req_id": rest_req, "action": "stop",
                                                   "device_id": "rpi-02"})
        assert status == 202, body
        for dev, needle in (("rpi-01", mqtt_req), ("rpi-02", rest_req), ("rpi-03", "alice")):
            m = w.wait_for(dev_cmd(dev), needle)
            # Forwarded at once: the broker passes the interval on whole.
            assert m["expiry"] in (29, 30), m
        # Acks, events and retained state do not expire.
        assert w.wait_for(EVT, mqtt_req)["expiry"] is None
        birth = w.wait_for(STATUS, host.config["mqtt"]["client_id"])
        assert birth["retain"] and birth["expiry"] is None, birth
    finally:
        w.close()


def test_command_queued_past_expiry_is_not_run(make_host, make_mqtt, broker):
    expiry = 2
    host = make_host(ndi_config(command_expiry_s=expiry))
    host.wait_connected()
    app = Ndi(host, make_mqtt())
    dev_id = unique_name("away")
    agent_id = "device-" + dev_id
    # A deployed agent's session outlives its connection.
    agent = make_mqtt(client_id=agent_id, clean_session=False)
    agent.subscribe(dev_cmd(dev_id))
    agent.close()
    wait_until(lambda: connected_as(broker, agent_id) and
               "Client %s disconnected" % agent_id in broker.log(), 5,
               msg="the broker to see the agent go")

    stale = app.send("start", {"device_id": dev_id, "source": "OLD"})["req_id"]
    assert app.event(stale)["code"] == "DISPATCHED"
    # mosquitto keeps expiry in whole seconds of its clock and drops a
    # queued message at delivery once past it; nothing on the broker shows
    # the moment, so the condition is the clock: received (before the ack)
    # in second s, gone from s + expiry + 1 on (mosquitto 2.0 reads its
    # clock, time(), as each poll returns); one second more of margin.
    gone_at = int(time.time()) + expiry + 2
    wait_until(lambda: time.time() >= gone_at, expiry + 3, 0.05, "the stale command's expiry")
    # Back, on the session's subscription (never renewed): the broker
    # sends what it still holds for it at the connect.  The command after
    # it goes out live, so no stall of a loaded machine between the two
    # can expire it too (one queued within the interval and fetched by a
    # reconnect over 2 s late was lost that way).
    back = make_mqtt(client_id=agent_id, clean_session=False)
    fresh = app.send("start", {"device_id": dev_id, "source": "NEW"})["req_id"]
    assert app.event(fresh)["code"] == "DISPATCHED"
    got = back.wait_for(dev_cmd(dev_id), lambda m: m["payload"]["req_id"] == fresh, timeout=5)
    assert got["payload"]["params"]["source"] == "NEW"
    # The stale one, had it been kept, came at the connect, before.
    assert [m["payload"]["req_id"] for m in back.messages(dev_cmd(dev_id))] == [fresh]


def test_forced_311_sends_no_expiry(make_host, make_mqtt, broker):
    host = make_host(ndi_config(mqtt={"protocol": "3.1.1"}, command_expiry_s=30))
    assert host.wait_connected()["mqtt_protocol"] == "3.1.1"
    assert connected_as(broker, host.config["mqtt"]["client_id"]) == "p2", broker.log()
    w = V5Watcher(broker)
    try:
        w.subscribe(dev_cmd("+"))
        app = Ndi(host, make_mqtt())
        req = app.send("stop", {"device_id": "rpi-01"})["req_id"]
        assert w.wait_for(dev_cmd("rpi-01"), req)["expiry"] is None
    finally:
        w.close()


def test_forced_v5_against_a_311_broker_says_why(make_host):
    fake = ScriptedBroker("refuse_v5")
    try:
        host = make_host({"mqtt": {"protocol": "5"}}, broker=fake)
        wait_until(lambda: len(fake.levels) >= 2, 10, msg="a second attempt")
        assert set(fake.levels) == {5}, fake.levels
        status, body = host.health()
        assert status == 503 and 'mqtt.protocol is "5"' in body["mqtt_error"], body
        assert "MQTT 5" in body["mqtt_error"] and "3.1.1" not in host.log(), body
    finally:
        fake.stop()
