"""
The registry against the brokers labs really run (issue "A registry that
survives any broker"): every device with its modules, within 5 s of the host
being connected, after a host restart, a broker restart, or both.  This file:
mosquitto; RabbitMQ is test_registry_rabbitmq.py (the two run side by side).

mosquitto with its defaults (harness.Broker(stock=True): 1000 queued and 20
in-flight messages per client, persistence on so that retained messages
survive a restart):
- 10,000 devices, retained meta + status each, published at QoS 1 over one
  connection with a wide in-flight window (as the agents publish them, not
  10,000 agent processes): after a host restart, a broker restart under a
  running host, and both at once (a power cut), /api/ndi/devices and
  /api/registry list every device with its modules;
- 600 devices, the host restarted three times;
- 10,000 devices registered while the host runs;
- the retained snapshot on /lab/orchestrator/registry never shrinks at
  start-up: a subscriber sees no snapshot with fewer devices than the last
  good one, after a host restart or a power cut.
"""

import pytest

import harness
from fleet import (DEADLINE_S, REGISTRY, Fleet, attach, connected_at, dot_warnings_per_run,
                   reconnects, wait_listed, wait_reconnected, wait_subscribed)
from fleet import make_fleet  # noqa: F401 - a fixture
from harness import unique_name, wait_until


# --------------------------------------------------------------------------
# mosquitto with its default limits


def stock_broker(workdir, persistence=True):
    return harness.Broker(workdir=str(workdir), stock=True, persistence=persistence)


@pytest.fixture
def make_stock(tmp_path, request):
    """make_stock(persistence=True) -> a stock mosquitto, stopped at teardown."""
    made = []

    def factory(persistence=True):
        b = stock_broker(tmp_path / ("stock%d" % len(made)), persistence)
        made.append(b)
        attach(request, b)
        return b

    yield factory
    for b in made:
        b.stop()


@pytest.fixture(scope="module")
def stock10k(tmp_path_factory):
    """A stock mosquitto (persistence on) holding 10,000 devices' retained
    meta and status, published once for the tests that only read them."""
    b = stock_broker(tmp_path_factory.mktemp("stock10k"))
    ids = ["m10k-%05d" % i for i in range(10000)]
    f = Fleet(b, ids)
    try:
        f.register()
    finally:
        f.close()
    yield b, ids
    b.stop()


def test_stock_config_has_no_limits_of_ours(make_stock):
    with open(make_stock().conf_path) as f:
        conf = f.read()
    for word in ("max_queued_messages", "max_inflight", "set_tcp_nodelay", "autosave"):
        assert word not in conf, conf


def test_stock_mosquitto_10k_devices_survive_host_and_broker_restarts(stock10k, make_host, request):
    b, ids = stock10k
    attach(request, b)
    host = make_host({"snapshot_interval_ms": 200}, broker=b)
    # A first start, with no state of its own: a precondition here, so with
    # more time than the restarts below get.
    wait_listed(host, ids, "stock mosquitto, 10,000 devices, first start",
                timeout=2 * DEADLINE_S, since=connected_at(host))

    host.restart(wait=True)
    wait_listed(host, ids, "stock mosquitto, 10,000 devices, host restart",
                since=connected_at(host))

    before = reconnects(host)
    b.restart()
    wait_listed(host, ids, "stock mosquitto, 10,000 devices, broker restart under the host",
                since=wait_reconnected(host, before))

    # A power cut: both go down, the broker comes back first.
    host.stop()
    b.restart()
    host.start()
    wait_listed(host, ids, "stock mosquitto, 10,000 devices, broker and host restart",
                since=connected_at(host))
    assert not any(dot_warnings_per_run(host)), "mosquitto keeps dots, yet:\n" + host.log()


def test_stock_mosquitto_600_devices_three_host_restarts(make_stock, make_host, make_fleet):
    b = make_stock()
    ids = [unique_name("m600") for _ in range(600)]
    make_fleet(b, ids).register()
    host = make_host(broker=b)
    wait_listed(host, ids, "stock mosquitto, 600 devices, first start", timeout=2 * DEADLINE_S,
                since=connected_at(host))
    for n in (1, 2, 3):
        host.restart(wait=True)
        wait_listed(host, ids, "stock mosquitto, 600 devices, host restart %d of 3" % n,
                    since=connected_at(host))


def test_stock_mosquitto_10k_devices_registered_while_the_host_runs(make_stock, make_host,
                                                                     make_fleet):
    b = make_stock(persistence=False)
    host = make_host({"snapshot_interval_ms": 200}, broker=b)
    host.wait_connected()
    wait_subscribed(host, b)
    ids = ["live-%05d" % i for i in range(10000)]
    make_fleet(b, ids).register()
    wait_listed(host, ids, "stock mosquitto, 10,000 devices registered while the host ran "
                "(clock from the broker's last PUBACK)")


def test_snapshot_never_shrinks_at_start_up(make_stock, make_host, make_fleet, make_mqtt):
    """300 devices (their 600 retained messages fit mosquitto's default queue,
    so the registry itself is not in question here): a subscriber to the
    snapshot sees none with fewer devices than the good one before."""
    b = make_stock()
    ids = [unique_name("snap") for _ in range(300)]
    make_fleet(b, ids).register()
    host = make_host(broker=b)
    wait_listed(host, ids, "stock mosquitto, 300 devices, first start", since=connected_at(host))
    watcher = make_mqtt(broker=b)
    watcher.subscribe(REGISTRY)
    # The retained snapshot, complete.
    watcher.wait_for(REGISTRY, lambda m: set(ids) <= set(m["payload"]["devices"]))

    def check(what, since, settled_before):
        # Until a complete snapshot has come, this run's start-up has
        # settled (the last snapshot the start-up could shape), and a
        # marker device published after that is in a snapshot: every
        # snapshot before the marker's has reached the watcher.
        watcher.wait_for(REGISTRY, lambda m: set(ids) <= set(m["payload"]["devices"]),
                         timeout=DEADLINE_S + 5, since=since)
        wait_until(lambda: host.log().count("publishing the snapshot") > settled_before,
                   DEADLINE_S + 5, msg="the start-up to settle")
        marker = unique_name("marker")
        # Retained, as a real device's: the next start-up expects it back.
        watcher.publish("/lab/device/%s/meta" % marker, {"device_id": marker, "modules": []},
                        retain=True)
        watcher.wait_for(REGISTRY, lambda m: marker in m["payload"]["devices"], 10, since=since)
        seen = [(m["payload"].get("seq"), len(set(ids) & set(m["payload"]["devices"])),
                 m["retain"]) for m in watcher.messages(REGISTRY, since=since)]
        short = [s for s in seen if s[1] < len(ids)]
        assert not short, ("%s: snapshot(s) with fewer than the %d devices of the last good "
                           "one were published; (seq, devices, retained flag) of every snapshot "
                           "since: %s" % (what, len(ids), seen))

    mark, settled = watcher.mark(), host.log().count("publishing the snapshot")
    host.restart(wait=True)
    check("host restart", mark, settled)

    mark, settled = watcher.mark(), host.log().count("publishing the snapshot")
    host.stop()
    b.restart()
    watcher.wait_connected()
    host.start()
    check("broker and host restart", mark, settled)
