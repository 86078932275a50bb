"""
Smoke test of rabbit.RabbitBroker: a private RabbitMQ 3.10 node with the MQTT
plugin, the second real broker the integration tests can run against.  One
node for the module (a first boot takes ~10 s here); each test uses its own
topics.
"""

import ipaddress
import os

import pytest

from harness import MqttClient, unique_name
import rabbit


@pytest.fixture(scope="module")
def rabbit_broker(tmp_path_factory):
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


@pytest.fixture(autouse=True)
def _attach_log(request, rabbit_broker):
    # conftest attaches the logs of these to a failing test's report.
    procs = getattr(request.node, "_oh_processes", None)
    if procs is None:
        procs = request.node._oh_processes = []
    procs.append(rabbit_broker)


@pytest.fixture
def clients(rabbit_broker):
    made = []

    def make(**kw):
        c = MqttClient(rabbit_broker.host, rabbit_broker.port, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def test_node_is_private_and_on_loopback(rabbit_broker):
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
