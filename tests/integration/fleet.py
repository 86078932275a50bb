"""
Many devices at once, for the registry tests against the brokers labs run
(test_registry_brokers.py: mosquitto with its default limits,
test_registry_rabbitmq.py: RabbitMQ 3.10): a Fleet publishing devices as the
deployed Python agents do, and waits on the host's device lists that say,
when they time out, which devices are missing where.
"""

import re
import threading
import time

import pytest

import harness
from harness import MqttClient, unique_name, wait_until

ROOT = "/lab"
REGISTRY = ROOT + "/orchestrator/registry"
EVT = ROOT + "/orchestrator/ndi/evt"
TS = "2026-11-28T10:00:00Z"
DEADLINE_S = 5.0          # the promise: everything within 5 s of connecting
# The host's warning about dots (src/core/broker_probe.c); matched loosely so
# a rewording does not break the test, but at warn level.
DOTS_RE = re.compile(r"\b(warn|error)\b.*(rewrites '\.'|'\.'.*\bid|dotted)", re.I)


def attach(request, proc):
    """Gets proc's log attached to the report if the test fails (conftest)."""
    procs = getattr(request.node, "_oh_processes", None)
    if procs is None:
        procs = request.node._oh_processes = []
    procs.append(proc)


def topic(dev, suffix):
    return "%s/device/%s/%s" % (ROOT, dev, suffix)


def meta_bytes(dev):
    # Formatted, not json.dumps'd: 10,000 of them must be quick to make.
    return ('{"device_id": "%s", "modules": ["ndi"], "capabilities": {"ndi": '
            '{"start_cmd_template": "ndi-viewer \'{source}\'"}}, "labels": ["bulk"], '
            '"feature": null, "version": "py-0.1.0", "ts": "%s"}' % (dev, TS)).encode()


def status_bytes(dev, online=True):
    return ('{"online": %s, "ts": "%s", "device_id": "%s"}'
            % ("true" if online else "false", TS, dev)).encode()


class Fleet:
    """Many devices published over one connection with an in-flight window
    of 1000, as the deployed Python agents publish: retained meta and status
    at QoS 1, and, with heartbeat(), the status again every interval.  It
    knows nothing of the host's birth message.  register() writes the
    packets itself (harness.bulk_publish: the same traffic as paho's, at a
    fraction of the CPU); the heartbeats go through a paho client, which
    reconnects after a broker restart as the agents do."""

    def __init__(self, broker, ids):
        self.ids = list(ids)
        self.broker = broker
        self.client_id = unique_name("fleet")
        self.client = None
        self._stop = threading.Event()
        self._thread = None

    def register(self, timeout=60):
        """Publishes every meta and status; returns once the broker acked all."""
        def messages():
            for dev in self.ids:
                yield topic(dev, "meta"), meta_bytes(dev)
                yield topic(dev, "status"), status_bytes(dev)
        harness.bulk_publish(self.broker.host, self.broker.port, messages(), qos=1, retain=True,
                             window=1000, timeout=timeout, client_id=self.client_id)

    def heartbeat(self, interval):
        self.client = MqttClient(self.broker.host, self.broker.port, client_id=self.client_id)

        def beat():
            while not self._stop.wait(interval):
                for dev in self.ids:
                    if self._stop.is_set():
                        return
                    self.client.publish(topic(dev, "status"), status_bytes(dev), qos=1,
                                        retain=True, wait=False)
        self._thread = threading.Thread(target=beat, daemon=True)
        self._thread.start()

    def close(self):
        self._stop.set()
        if self._thread:
            self._thread.join(10)
        if self.client:
            self.client.close()


@pytest.fixture
def make_fleet():
    """make_fleet(broker, ids) -> a Fleet, closed at teardown."""
    fleets = []

    def factory(broker, ids):
        f = Fleet(broker, ids)
        fleets.append(f)
        return f

    yield factory
    for f in fleets:
        f.close()


def ndi_devices(host):
    status, body = host.get("/api/ndi/devices", timeout=20)
    assert status == 200, (status, body)
    return {d["device_id"]: d for d in body["devices"]}


def registry_devices(host):
    status, body = host.get("/api/registry", timeout=20)
    assert status == 200, (status, body)
    return body["devices"]


def registry_size(host):
    """The oh_devices gauge of GET /metrics."""
    status, text = host.get("/metrics")
    m = re.search(r"^oh_devices(?:\{\})? (\d+)", text, re.M)
    assert status == 200 and m, (status, text[-2000:])
    return int(m.group(1))


def sample(items, n=5):
    items = sorted(items)
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def describe(host, ids, what, waited):
    """Which devices are missing where, for a failure message."""
    ids = set(ids)
    try:
        listed = set(ndi_devices(host)) & ids
        reg = registry_devices(host)
    except Exception as exc:  # noqa: BLE001 - this is already the failure path
        return "%s: not all %d devices listed after %.1f s, and the API failed: %r" % (
            what, len(ids), waited, exc)
    absent = [d for d in ids if d not in reg]
    no_modules = [d for d in ids if d in reg and reg[d].get("modules") is None]
    other = [d for d in ids if d in reg and reg[d].get("modules") not in (None, ["ndi"])]
    missing = ids - listed
    text = ("%s: %.1f s after the host connected, /api/ndi/devices lists %d of %d devices "
            "(%d missing, e.g. %s); /api/registry has %d of them, %d without modules (e.g. %s), "
            "%d absent (e.g. %s)" % (what, waited, len(listed), len(ids), len(missing),
                                     sample(missing), len(ids) - len(absent), len(no_modules),
                                     sample(no_modules), len(absent), sample(absent)))
    if other:
        text += ", %d with other modules (e.g. %s)" % (len(other), sample(other))
    return text


def wait_listed(host, ids, what, timeout=DEADLINE_S, since=None):
    """Until /api/ndi/devices lists every id and /api/registry shows each with
    modules ["ndi"]; the clock starts at since (monotonic; default now).
    Returns the seconds it took."""
    ids = set(ids)
    t0 = time.monotonic() if since is None else since
    deadline = t0 + timeout
    while True:
        try:
            # The device count first: two 10,000-device documents are not
            # worth fetching (and parsing) before it is even reached.
            if registry_size(host) >= len(ids) and ids <= set(ndi_devices(host)):
                reg = registry_devices(host)
                if all(d in reg and reg[d].get("modules") == ["ndi"] for d in ids):
                    took = time.monotonic() - t0
                    print("%s: all %d listed after %.2f s" % (what, len(ids), took))
                    return took
        except (OSError, ValueError, AssertionError):
            host._check_alive()
        if time.monotonic() >= deadline:
            raise AssertionError(describe(host, ids, what, time.monotonic() - t0))
        time.sleep(0.1)    # the poll interval of this wait


def wait_subscribed(host, broker):
    """Until the host hears devices: a sentinel device's status, published
    again and again, shows up in its registry.  /healthz says "connected"
    before the broker has the host's subscriptions, and on RabbitMQ a device
    registered in that gap is heard of only at its next heartbeat."""
    dev = unique_name("sentinel")
    c = MqttClient(broker.host, broker.port)
    try:
        def heard():
            c.publish(topic(dev, "status"), status_bytes(dev), qos=1)
            return dev in registry_devices(host)
        wait_until(heard, 10, 0.2, "the host to hear a device (its subscriptions)")
    finally:
        c.close()


def reconnects(host):
    status, text = host.get("/metrics")
    m = re.search(r"^oh_mqtt_reconnects_total(?:\{\})? (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def connected_at(host, timeout=10):
    """wait_connected, and the monotonic time it saw the host connected."""
    host.wait_connected(timeout)
    return time.monotonic()


def wait_reconnected(host, before, timeout=20):
    """After a broker restart: until the host counts a reconnect and is
    connected again.  Returns the monotonic time it was seen connected."""
    wait_until(lambda: reconnects(host) > before and host.health()[1].get("mqtt") == "connected",
               timeout, 0.05, "the host to reconnect to the restarted broker")
    return time.monotonic()


def dot_warnings_per_run(host):
    """The dots warning lines in each run of the host (harness logs a '=== '
    line at every start)."""
    runs, current = [], None
    for line in host.log().splitlines():
        if line.startswith("=== ") and not line.startswith("=== run "):
            current = []
            runs.append(current)
        elif current is not None and DOTS_RE.search(line):
            current.append(line)
    return runs
