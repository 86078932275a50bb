"""
The registry on RabbitMQ 3.10 (issue "A registry that survives any
broker"; mosquitto is test_registry_brokers.py): every device with its
modules within 5 s of the host being connected.

RabbitMQ 3.10 (one node for the module; retained messages reach exact-topic
subscriptions only, '.' in topics becomes '/', MQTT 3.1.1 only), each test
with device ids of its own:
- 1,000 devices as the deployed Python agents publish them (retained meta and
  status at QoS 1, the status again every heartbeat_interval_s = 10 s, no
  birth handling; device-agent-protocol.md) plus C agents (--simulate 3):
  after a host restart and a broker restart, every device with its modules
  within 5 s;
- a host with no state of its own learns the Python devices from their
  heartbeats and fetches their meta;
- a device id with a dot: the host says once that such ids cannot work;
- relay and agent acks (MQTT and REST), a lease, an `at` job, a last will.

First, the node itself (rabbit.RabbitBroker, the harness's second broker):
private and on loopback only, publish/subscribe, retained messages on an
exact subscription.  Last, the host's presence and its fallback to MQTT
3.1.1 there (test_birth_message.py has them on mosquitto).  One node for
the file: a boot costs seconds of CPU.
"""

import ipaddress
import os
import time
import uuid

import paho.mqtt.client as paho
import pytest

from conftest import MqttClient, unique_name, wait_until
from fleet import (DEADLINE_S, EVT, attach, connected_at, dot_warnings_per_run,
                   ndi_devices, reconnects, topic, wait_listed, wait_reconnected,
                   wait_subscribed)
from fleet import make_fleet  # noqa: F401 - a fixture
from test_birth_message import (ANSWERED, CMD, DOTS_WARNING, FALLBACK, PROBE_REWRITTEN, STATUS,
                                V5, V5_CLOSED, dev_topic, online, relay_start, rid, simulated)
from test_ndi_commands import Ndi, ndi_config
import rabbit


# --------------------------------------------------------------------------
# RabbitMQ 3.10


@pytest.fixture(scope="module")
def rabbit_node(tmp_path_factory):
    reason = rabbit.available()
    if reason:
        pytest.skip(reason)
    rb = rabbit.RabbitBroker(str(tmp_path_factory.mktemp("rabbit")))
    try:
        rb.start()
        yield rb
    finally:
        rb.close()
    problems = rb.problems()
    assert not problems, "\n".join(problems) + "\n" + rb.log()[-4000:]


@pytest.fixture
def rb(rabbit_node, request):
    attach(request, rabbit_node)
    if not rabbit_node.running():   # a test before this one failed mid-restart
        rabbit_node.start()
    return rabbit_node


@pytest.fixture
def rabbit_host(make_host, rb):
    def factory(settings=None, **overrides):
        s = {"ack_timeout_s": 5}
        s.update(settings or {})
        host = make_host(ndi_config(s, **overrides), broker=rb)
        host.wait_connected()
        return host
    return factory


@pytest.fixture
def rabbit_agent(make_device, rb):
    """rabbit_agent(n) -> (Device, ids): orchestrator-device --simulate n."""
    def factory(n, heartbeat_s=10):
        prefix = unique_name("cag") + "-"
        d = make_device({"mqtt": {"host": rb.host, "port": rb.port}, "labels": ["c-agent"],
                         "heartbeat_interval_s": heartbeat_s},
                        extra_args=["--simulate", str(n), "--id-prefix", prefix])
        return d, [prefix + "%02d" % i for i in range(1, n + 1)]
    return factory


@pytest.fixture
def clients(rb):
    made = []

    def make(**kw):
        c = MqttClient(rb.host, rb.port, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


# --------------------------------------------------------------------------
# The node


def test_node_is_private_and_on_loopback(rb):
    rabbit_broker = rb
    assert rabbit_broker.running()
    env = rabbit_broker.env()
    assert env["RABBITMQ_NODENAME"] == rabbit_broker.nodename
    assert rabbit_broker.nodename.startswith("rabbit-")
    with open(env["RABBITMQ_ENABLED_PLUGINS_FILE"]) as f:
        assert f.read().strip() == "[rabbitmq_mqtt]."
    # Every listening TCP socket of the node (beam, epmd) is on loopback,
    # and the MQTT, distribution and epmd ports are among them.
    listening = _listening_sockets(rabbit_broker.pids())
    assert listening, "no listening sockets found for %s" % rabbit_broker.pids()
    assert all(addr in ("127.0.0.1", "::1") for addr, _ in listening), listening
    ports = {port for _, port in listening}
    assert {rabbit_broker.port, rabbit_broker.dist_port, rabbit_broker.epmd_port} <= ports, listening


def test_publish_subscribe(clients):
    topic = "/lab/smoke/%s/event" % unique_name("t")
    sub = clients()
    sub.subscribe(topic, qos=1)
    pub = clients()
    pub.publish(topic, {"n": 1}, qos=1)
    pub.publish(topic, b"raw", qos=0)
    m = sub.wait_for(topic, lambda m: m["payload"] == {"n": 1}, timeout=5)
    assert m["topic"] == topic and not m["retain"]
    sub.wait_for(topic, lambda m: m["raw"] == b"raw", timeout=5)


def test_retained_on_exact_subscription(clients):
    topic = "/lab/device/%s/meta" % unique_name("dev")
    pub = clients()
    pub.publish(topic, {"model": "smoke"}, qos=1, retain=True)
    late = clients()
    late.subscribe(topic, qos=1)
    m = late.wait_for(topic, timeout=5)
    assert m["payload"] == {"model": "smoke"} and m["retain"], m
    # An empty retained message clears it.
    pub.publish(topic, b"", qos=1, retain=True)
    later = clients()
    mark = later.mark()
    later.subscribe(topic, qos=1)
    # A live message after the subscription: whatever came before it would
    # have been the retained one.
    pub.publish(topic, b"live", qos=1)
    later.wait_for(topic, lambda m: m["raw"] == b"live", timeout=5)
    assert [m["raw"] for m in later.messages(topic, since=mark)] == [b"live"]


def _listening_sockets(pids):
    """(address, port) of the TCP sockets in LISTEN state held by pids."""
    inodes = set()
    for pid in pids:
        fd_dir = "/proc/%d/fd" % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10 or fields[3] != "0A" or fields[9] not in inodes:
                continue
            hexaddr, hexport = fields[1].split(":")
            out.append((_addr(hexaddr, v6), int(hexport, 16)))
    return out


def _addr(hexaddr, v6):
    raw = bytes.fromhex(hexaddr)
    # /proc/net stores each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    addr = ipaddress.ip_address(words)
    if v6 and addr.ipv4_mapped:
        return str(addr.ipv4_mapped)
    return str(addr)


# --------------------------------------------------------------------------
# The registry


def wait_published(broker, ids, suffix="meta", timeout=10):
    """Until each id has published on its topic: retained messages are read
    through exact-topic subscriptions (the only kind RabbitMQ serves them
    to), or the message arrives live."""
    c = MqttClient(broker.host, broker.port)
    try:
        for dev in ids:
            c.subscribe(topic(dev, suffix))
        for dev in ids:
            c.wait_for(topic(dev, suffix), timeout=timeout)
    finally:
        c.close()


def test_rabbitmq_python_and_c_agents_survive_host_and_broker_restarts(rb, rabbit_host,
                                                                       rabbit_agent, make_fleet):
    host = rabbit_host()
    wait_subscribed(host, rb)
    py_ids = [unique_name("py") for _ in range(1000)]
    fleet = make_fleet(rb, py_ids)
    fleet.register()
    fleet.heartbeat(10)          # the deployed agents' default heartbeat_interval_s
    agent, c_ids = rabbit_agent(3)
    wait_published(rb, c_ids)
    ids = py_ids + c_ids
    # Registered while the host ran: it heard them live.
    wait_listed(host, ids, "1000 Python and 3 C agents registered while the host ran")

    host.restart(wait=True)
    wait_listed(host, ids, "RabbitMQ, after a host restart", since=connected_at(host))

    before = reconnects(host)
    rb.restart()
    wait_listed(host, ids, "RabbitMQ, after a broker restart",
                since=wait_reconnected(host, before, timeout=30))
    assert all(len(run) <= 1 for run in dot_warnings_per_run(host)), \
        "the dots warning more than once in a run:\n%s" % dot_warnings_per_run(host)


def test_rabbitmq_host_without_state_learns_devices_from_heartbeats(rb, rabbit_host, make_fleet):
    """A host that never saw these devices, on a broker that sends it none of
    their retained messages: the heartbeats name them, and their meta must be
    fetched (exact-topic subscriptions), else they have no modules.  The
    fetches are paced (a bounded number open at once), so this gets 10 s
    after the first heartbeat rather than the 5 s of a restart."""
    ids = [unique_name("hb") for _ in range(500)]
    fleet = make_fleet(rb, ids)
    fleet.register()
    host = rabbit_host()
    t0 = time.monotonic()
    fleet.heartbeat(2)
    wait_listed(host, ids, "a fresh host on RabbitMQ, heartbeats every 2 s (clock from the "
                "host being connected)", timeout=2 + 10, since=t0)


def test_rabbitmq_dotted_device_id_is_reported_once(rb, rabbit_host, make_fleet):
    host = rabbit_host()
    dev = "rpi.%s" % uuid.uuid4().hex[:8]
    fleet = make_fleet(rb, [dev])
    fleet.register()
    # RabbitMQ delivers it as /lab/device/rpi/xxxxxxxx/meta.
    wait_until(lambda: any(dot_warnings_per_run(host)), 8, 0.1,
               "the host to say that ids with a '.' cannot work on this broker")
    fleet.register()
    # A plain device registered after it (once the broker acked the above):
    # listed means the host has read the dotted id's second meta too.
    marker = "plain-%s" % uuid.uuid4().hex[:8]
    make_fleet(rb, [marker]).register()
    wait_listed(host, [marker], "a plain device after the dotted one")
    lines = dot_warnings_per_run(host)[-1]
    assert len(lines) == 1, "said %d times, not once:\n%s" % (len(lines), "\n".join(lines))


def test_rabbitmq_relay_and_agent_acks(rb, rabbit_host, rabbit_agent, make_mqtt):
    host = rabbit_host()
    agent, (dev,) = rabbit_agent(1)
    wait_listed(host, [dev], "the C agent on RabbitMQ")
    ndi = Ndi(host, make_mqtt(broker=rb))
    env = ndi.send("start", {"device_id": dev, "source": "CAM-1"}, actor="app")
    assert ndi.event(env["req_id"], "DISPATCHED")["ok"]
    done = ndi.event(env["req_id"], "COMPLETED")
    assert done["ok"] is True and done["details"]["device_id"] == dev, done
    status, body = host.post("/api/ndi/send?wait=1", {"device_id": dev, "action": "stop"})
    assert status == 200 and body["code"] == "COMPLETED", (status, body)


def test_rabbitmq_lease(rb, rabbit_host, make_mqtt):
    host = rabbit_host()
    dev = unique_name("lease")
    ndi = Ndi(host, make_mqtt(broker=rb))
    ok = ndi.do("reserve", {"device_id": dev, "lease_s": 60}, actor="user")
    assert ok["code"] == "OK" and ok["details"]["holder"] == "user", ok
    denied = ndi.do("start", {"device_id": dev, "source": "CAM-1"}, actor="app")
    assert denied["code"] == "DENIED" and denied["details"]["holder"] == "user", denied
    taken = ndi.do("reserve", {"device_id": dev, "lease_s": 60}, actor="app")
    assert taken["code"] == "IN_USE", taken
    assert ndi.do("release", {"device_id": dev}, actor="user")["code"] == "OK"
    assert ndi.do("reserve", {"device_id": dev, "lease_s": 60}, actor="app")["code"] == "OK"


def test_rabbitmq_scheduled_at_job_fires(rb, rabbit_host, make_mqtt):
    host = rabbit_host()
    dev = unique_name("sched")
    device = make_mqtt(broker=rb)
    device.subscribe(topic(dev, "ndi/cmd"))
    ndi = Ndi(host, make_mqtt(broker=rb))
    due = int(time.time()) + 2
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(due))
    ack = ndi.do("schedule", {"at": when, "commands": [
        {"device_id": dev, "action": "start", "params": {"source": "CAM-1"}}]}, actor="alice")
    assert ack["code"] == "SCHEDULED", ack
    m = device.wait_for(topic(dev, "ndi/cmd"), timeout=due - time.time() + 5)
    env = m["payload"]
    assert env["actor"] == "orchestrator" and env["requested_by"] == "alice", env
    late = time.time() - (time.monotonic() - m["time"]) - due
    assert -0.05 <= late < 1.0, "fired %.3f s after its due time" % late
    fired = ndi.mqtt.wait_for(EVT, lambda m: m["payload"]["code"] == "FIRED"
                              and m["payload"]["details"]["job_id"] == ack["details"]["job_id"])
    assert fired["payload"]["details"]["dispatched"][0]["device_id"] == dev


def test_rabbitmq_last_will_marks_device_offline(rb, rabbit_host, rabbit_agent):
    host = rabbit_host()
    agent, (dev,) = rabbit_agent(1)
    wait_until(lambda: ndi_devices(host).get(dev, {}).get("online") is True, 10, 0.1,
               "the C agent listed online")
    agent.kill()
    wait_until(lambda: ndi_devices(host).get(dev, {}).get("online") is False, DEADLINE_S, 0.1,
               "the agent's last will (online false) to reach the registry")


# --------------------------------------------------------------------------
# Host presence and MQTT 3.1.1 (test_birth_message.py has the same on mosquitto)


@pytest.fixture
def on_rabbit(rb):
    made = []

    def client():
        c = MqttClient(rb.host, rb.port)
        made.append(c)
        return c

    yield client
    for c in made:
        c.close()


def kick(broker, client_id):
    """Takes client_id's session over and leaves: the broker drops the
    holder, which then reconnects by itself."""
    c = paho.Client(client_id=client_id, clean_session=True, protocol=paho.MQTTv311)
    c.connect(broker.host, broker.port, keepalive=30)
    c.loop_start()
    wait_until(c.is_connected, 5, msg="the kicking client to connect")
    c.disconnect()
    c.loop_stop()


def test_rabbitmq_fallback_probe_and_relay(rb, on_rabbit, make_host, make_device):
    watcher = on_rabbit()
    watcher.subscribe(STATUS)   # RabbitMQ: retained only on exact topics
    started = time.monotonic()
    host = make_host(ndi_config({"ack_timeout_s": 10}, log_level="debug"), broker=rb)
    # /healthz names the version; relays below go out without an expiry
    # (command_expiry_s is 60 by default), as 3.1.1 has none.
    assert host.wait_connected()["mqtt_protocol"] == "3.1.1"
    print("\nconnected to RabbitMQ through the fallback in %.3f s" % (time.monotonic() - started))
    assert watcher.wait_for(STATUS, online(True))["payload"]["node"] == host.config["mqtt"]["client_id"]
    wait_until(lambda: DOTS_WARNING in host.log(), 5, msg="the dot warning")
    log = host.log()
    assert log.count(FALLBACK) == 1 and log.count(V5_CLOSED) == 1 and V5 not in log, log

    prefix = unique_name("rb") + "-"
    dev = prefix + "01"
    app_client = on_rabbit()
    app_client.subscribe(dev_topic(dev, "status"))
    app_client.subscribe(dev_topic(dev, "meta"))
    agent = simulated(make_device, prefix, 1, host=rb.host, port=rb.port)
    app_client.wait_for(dev_topic(dev, "status"), online(True), timeout=10)
    app = Ndi(host, app_client)
    relay_start(app, dev)
    assert "MQTT 5" not in agent.log() and "3.1.1" not in agent.log()

    # A reconnect keeps 3.1.1 without trying v5 again, and says nothing new.
    kick(rb, host.config["mqtt"]["client_id"])
    wait_until(lambda: host.log().count(PROBE_REWRITTEN) == 2, 15,
               msg="the host to reconnect and probe again")
    host.wait_connected()
    log = host.log()
    assert log.count(FALLBACK) == 1 and log.count(V5_CLOSED) == 1, log
    assert log.count(DOTS_WARNING) == 1, log
    relay_start(app, dev)

    # The agent answers a host restart on RabbitMQ too.
    mark = app_client.mark()
    host.restart()
    app_client.wait_for(dev_topic(dev, "meta"), since=mark, timeout=10)
    assert ANSWERED in agent.log()
    assert host.log().count(FALLBACK) == 2   # one per run


def test_rabbitmq_clears_the_retain_flag_of_live_messages(rb, on_rabbit, make_host):
    # 3.1.1: a retained command published while the host is connected
    # arrives unflagged and is run like any other (docs/protocol.md).
    host = make_host(ndi_config(), broker=rb)
    host.wait_connected()
    app = Ndi(host, on_rabbit())
    req_id = "live-retained-" + rid()
    app.mqtt.publish(CMD, {"req_id": req_id, "actor": "app", "action": "stop",
                           "params": {"device_id": "rpi-01"}}, retain=True)
    try:
        assert app.event(req_id)["code"] == "DISPATCHED"
    finally:
        app.mqtt.publish(CMD, b"", retain=True)
