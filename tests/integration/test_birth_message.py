"""
The host's presence on /lab/orchestrator/status (docs/protocol.md, "Host
presence"), MQTT 5 with its fallback to 3.1.1, and the dot probe, against
the two real brokers the host must survive.

mosquitto 2.0 (a fresh one per test; speaks v5):
- the host speaks v5; its birth is retained with node and ts; kill -9
  makes the broker publish the will (online false, ts null); a clean stop
  publishes the same itself;
- the C agent (--simulate 2) publishes its meta and status again for each
  new birth: at host start, clean restart, and restart after kill -9; a
  birth it has answered, sent again, is not answered;
- a retained command published while the host is connected reaches it
  flagged retained (retain-as-published) and is ignored;
- the dot probe goes out as .../probe/{client id, sanitised}.dot and comes
  back unchanged: no warning.

A scripted broker (a socket in the test) for what neither of them does:
refusing v5 with a 3.1.1 CONNACK, and ending a v5 connection with a
DISCONNECT that names its reason.

RabbitMQ 3.10 (3.1.1 only, rewrites '.' to '/'): the same, on the node of
test_registry_rabbitmq.py (a node boot costs seconds of CPU): the host falls
back to 3.1.1 and says so once; the dot warning is logged exactly once, also
after a reconnect; the agent (3.1.1 only) connects without a fallback; a
command is relayed to the agent and completed, before and after the
reconnect; the agent answers a host restart there too; and a retained
command published live loses its flag (3.1.1).
"""

import re
import socket
import threading
import time
import uuid

from conftest import LOCALHOST, MqttClient, unique_name, wait_until
from test_ndi_commands import Ndi, ndi_config

ROOT = "/lab"
STATUS = ROOT + "/orchestrator/status"
PROBE = ROOT + "/orchestrator/probe/#"
CMD = ROOT + "/orchestrator/ndi/cmd"
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

V5 = "speaking MQTT 5"
FALLBACK = "does not speak MQTT 5: using MQTT 3.1.1"
V5_CLOSED = "closed the connection before answering an MQTT 5 CONNECT"
DOTS_WARNING = ("this broker rewrites '.' in topics to '/' (RabbitMQ does): devices whose id "
                "contains '.' cannot be reached; rename them")
PROBE_KEPT = "topic probe: the broker keeps '.' in topics"
PROBE_REWRITTEN = "topic probe: the broker rewrites '.' to '/'"
ANSWERED = "the orchestrator came online: publishing meta and status again"


def dev_topic(dev, suffix):
    return "%s/device/%s/%s" % (ROOT, dev, suffix)


def rid():
    return uuid.uuid4().hex[:12]


def online(value):
    return lambda m: m["payload"]["online"] is value


def retained_now(broker, topic):
    """The retained message on topic, as a new subscriber gets it."""
    late = MqttClient(broker.host, broker.port)
    try:
        late.subscribe(topic)
        m = late.wait_for(topic)
        assert m["retain"], m
        return m["payload"]
    finally:
        late.close()


def simulated(make_device, prefix, n, **mqtt):
    cfg = {"heartbeat_interval_s": 60}
    if mqtt:
        cfg["mqtt"] = mqtt
    return make_device(cfg, extra_args=["--simulate", str(n), "--id-prefix", prefix])


def wait_announced(mqtt, ids, since, timeout=10):
    """Every device published its meta and an online status after since."""
    for dev in ids:
        mqtt.wait_for(dev_topic(dev, "meta"), since=since, timeout=timeout)
        mqtt.wait_for(dev_topic(dev, "status"), online(True), since=since, timeout=timeout)


def ping(mqtt, dev):
    """A device-level ping, answered in order after everything sent before it."""
    req_id = rid()
    mqtt.publish(dev_topic(dev, "cmd"), {"req_id": req_id, "actor": "test", "action": "ping"})
    return mqtt.wait_for(dev_topic(dev, "evt"), lambda m: m["payload"]["req_id"] == req_id,
                         timeout=5)["payload"]


def relay_start(app, dev):
    env = app.send("start", {"device_id": dev, "source": "CAM-1"})
    assert app.event(env["req_id"])["code"] == "DISPATCHED"
    done = app.event(env["req_id"], code="COMPLETED", timeout=10)
    assert done["details"]["input"] == "CAM-1", done


# ------------------------------------------------------------------ mosquitto


def test_birth_will_and_clean_stop(broker, make_host, make_mqtt):
    watcher = make_mqtt()
    watcher.subscribe(STATUS)
    host = make_host()
    host.wait_connected()
    node = host.config["mqtt"]["client_id"]

    birth = watcher.wait_for(STATUS, online(True))["payload"]
    assert set(birth) == {"online", "node", "ts"} and birth["node"] == node, birth
    assert TS_RE.match(birth["ts"]), birth
    assert retained_now(broker, STATUS) == birth
    assert host.log().count(V5) == 1

    # A crash: the broker publishes the will, retained.
    mark = watcher.mark()
    host.kill()
    will = watcher.wait_for(STATUS, online(False), since=mark)["payload"]
    assert will == {"online": False, "node": node, "ts": None}
    assert retained_now(broker, STATUS) == will

    # Back: a new birth.  A clean stop: the host says offline itself.
    mark = watcher.mark()
    host.start()
    host.wait_connected()
    watcher.wait_for(STATUS, online(True), since=mark)
    mark = watcher.mark()
    assert host.stop() == 0
    off = watcher.wait_for(STATUS, online(False), since=mark)["payload"]
    assert off == {"online": False, "node": node, "ts": None}
    assert retained_now(broker, STATUS) == off


def test_agent_answers_each_new_birth(make_host, make_device, mqtt):
    prefix = unique_name("sim") + "-"
    ids = [prefix + "01", prefix + "02"]
    for suffix in ("meta", "status", "evt"):
        mqtt.subscribe(dev_topic("+", suffix))
    mqtt.subscribe(STATUS)
    agent = simulated(make_device, prefix, 2)
    wait_announced(mqtt, ids, since=0)

    # The host starts, restarts cleanly, and comes back after kill -9.
    mark = mqtt.mark()
    host = make_host()
    wait_announced(mqtt, ids, since=mark)
    mark = mqtt.mark()
    host.restart()
    wait_announced(mqtt, ids, since=mark)
    mark = mqtt.mark()
    host.kill()
    host.start()
    wait_announced(mqtt, ids, since=mark)
    assert agent.log().count(ANSWERED) == 3 * len(ids)

    # The same birth again is not answered: the ping behind it comes back
    # with no meta before it.
    birth = [m for m in mqtt.messages(STATUS) if m["payload"]["online"]][-1]["payload"]
    mark = mqtt.mark()
    mqtt.publish(STATUS, birth)
    assert ping(mqtt, ids[0])["ok"]
    assert mqtt.messages(dev_topic(ids[0], "meta"), since=mark) == []
    assert agent.log().count(ANSWERED) == 3 * len(ids)


def test_retained_command_published_live_is_seen_retained(make_host, mqtt):
    host = make_host(ndi_config())
    host.wait_connected()
    app = Ndi(host, mqtt)
    # Live, but retained: on v5 the host gets the publisher's flag.
    mqtt.publish(CMD, {"req_id": "kept-1", "actor": "app", "action": "stop",
                       "params": {"device_id": "rpi-01"}}, retain=True)
    try:
        later = app.send("stop", {"device_id": "rpi-01"})
        assert app.event(later["req_id"])["code"] == "DISPATCHED"
        assert app.events("kept-1") == []
        assert "ignoring a retained command on %s" % CMD in host.log()
    finally:
        mqtt.publish(CMD, b"", retain=True)


def test_probe_on_mosquitto_keeps_dots(make_host, mqtt):
    mqtt.subscribe(PROBE)
    client_id = unique_name("oh.host")
    host = make_host({"log_level": "debug", "mqtt": {"client_id": client_id}})
    sent = mqtt.wait_for(PROBE)
    assert sent["topic"] == "%s/orchestrator/probe/from-%s/check.dot" % (
        ROOT, client_id.replace(".", "_"))
    assert not sent["retain"] and sent["qos"] == 1, sent
    wait_until(lambda: PROBE_KEPT in host.log(), 5, msg="the probe's answer")
    assert DOTS_WARNING not in host.log()


# ----------------------------------------------------------- scripted broker


class ScriptedBroker:
    """Accepts MQTT connections on 127.0.0.1 and answers CONNECT by script:
    refuse_v5 answers a v5 CONNECT the way a 3.1.1 broker does (a 3.1.1
    CONNACK "unacceptable protocol version") and accepts 3.1.1;
    disconnect_v5 accepts v5, then sends DISCONNECT "session taken over"
    (0x8E) after a moment.  Other packets are read and dropped, except
    PINGREQ.  levels lists the protocol level of every CONNECT."""

    def __init__(self, mode):
        self.mode = mode
        self.levels = []
        self.sock = socket.socket()
        self.sock.bind((LOCALHOST, 0))
        self.sock.listen(8)
        self.host, self.port = LOCALHOST, self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_packet(conn):
        def byte():
            b = conn.recv(1)
            if not b:
                raise EOFError
            return b[0]
        kind = byte()
        length, shift = 0, 0
        while True:
            b = byte()
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        body = b""
        while len(body) < length:
            chunk = conn.recv(length - len(body))
            if not chunk:
                raise EOFError
            body += chunk
        return kind, body

    def _serve(self, conn):
        with conn:
            try:
                kind, body = self._read_packet(conn)
                level = body[6]     # after the protocol name "MQTT"
                self.levels.append(level)
                if level == 5 and self.mode == "refuse_v5":
                    conn.sendall(bytes([0x20, 2, 0, 1]))
                    return
                conn.sendall(bytes([0x20, 3, 0, 0, 0]) if level == 5 else bytes([0x20, 2, 0, 0]))
                if level == 5 and self.mode == "disconnect_v5":
                    time.sleep(0.3)    # the fake broker's behaviour: drop the client a moment later
                    conn.sendall(bytes([0xE0, 1, 0x8E]))
                    return
                while True:
                    kind, body = self._read_packet(conn)
                    if kind == 0xC0:
                        conn.sendall(bytes([0xD0, 0]))
            except (EOFError, OSError, IndexError):
                return

    def stop(self):
        self.closed = True
        self.sock.close()


def test_v5_refused_by_connack_falls_back_at_once(make_host):
    fake = ScriptedBroker("refuse_v5")
    try:
        host = make_host({"log_level": "debug"}, broker=fake)
        host.wait_connected()
        assert fake.levels[:2] == [5, 4], fake.levels
        log = host.log()
        assert "refused MQTT 5; trying MQTT 3.1.1" in log and log.count(FALLBACK) == 1, log
        assert "cannot connect" not in log, log
    finally:
        fake.stop()


def test_v5_disconnect_reason_is_reported(make_host):
    fake = ScriptedBroker("disconnect_v5")
    try:
        host = make_host(broker=fake)
        wait_until(lambda: "lost: the broker disconnected us: Session taken over" in host.log(),
                   5, msg="the DISCONNECT's reason in the log")
        # Still v5, and connecting again.
        wait_until(lambda: len(fake.levels) >= 2, 5, msg="a reconnect")
        assert set(fake.levels) == {5}, fake.levels
    finally:
        fake.stop()
