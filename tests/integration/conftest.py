"""
Fixtures for the integration tests; the machinery lives in harness.py.

  broker       a fresh mosquitto on a free 127.0.0.1 port (harness.Broker)
  make_broker  factory for more: make_broker(persistence=False, extra_conf="")
  make_host    factory: make_host(config_overrides=None, start=True, env=None,
               args=None, wait=True, broker=None) -> harness.Host
  mqtt         a connected harness.MqttClient
  make_mqtt    factory for more clients: make_mqtt(client_id=None, broker=None, **kw)
  make_device  factory: make_device(config, extra_args=None) -> harness.Device
               (skips the test when orchestrator-device is not built)
  browser      the file's shared headless Chromium (browser.py), reset to a
               blank 1280x900 desktop window; skips when there is none
  phone_browser  the same browser, emulating a 390x844 phone

At teardown every host and device is stopped; the test fails if one of them
died of a signal it was not sent by the test, hung on SIGTERM, or logged a
sanitizer error.  Logs of every process are attached to failing reports.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (  # noqa: E402,F401 - re-exported for tests
    LOCALHOST, REMOVE, Broker, Device, Host, MqttClient, deep_merge, free_port,
    unique_name, wait_until)


def _processes(item):
    procs = getattr(item, "_oh_processes", None)
    if procs is None:
        procs = item._oh_processes = []
    return procs


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "_oh_rep_" + rep.when, rep)
    if rep.failed:
        for proc in getattr(item, "_oh_processes", []):
            text = proc.log()
            if text:
                rep.sections.append(("%s log (%s)" % (proc.name, proc.log_path),
                                     harness.tail(text, 80)))


@pytest.fixture
def broker(tmp_path, request):
    b = Broker(workdir=str(tmp_path / "broker"))
    _processes(request.node).append(b)
    yield b
    b.stop()
    problems = b.problems()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _teardown(procs):
    problems = []
    for p in procs:
        p.stop(timeout=10)
    for p in procs:
        problems.extend(p.problems())   # the logs are attached to the report
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def make_broker(tmp_path, request):
    """Factory for more brokers: make_broker(persistence=False, extra_conf="",
    start=True) -> harness.Broker, stopped at teardown."""
    brokers = []

    def factory(persistence=False, extra_conf="", start=True, port=None):
        workdir = tmp_path / ("broker%d" % (len(brokers) + 2))
        b = Broker(workdir=str(workdir), port=port, persistence=persistence,
                   extra_conf=extra_conf, start=start)
        brokers.append(b)
        _processes(request.node).append(b)
        return b

    yield factory
    for b in brokers:
        b.stop()


@pytest.fixture
def make_host(broker, tmp_path, request):
    hosts = []

    default_broker = broker

    def factory(config_overrides=None, start=True, env=None, args=None, wait=True, broker=None):
        b = broker or default_broker
        n = len(hosts) + 1
        workdir = tmp_path / ("host%d" % n)
        workdir.mkdir()
        base = {
            "mqtt": {"host": LOCALHOST, "port": b.port, "client_id": unique_name("oh-host")},
            "http": {"bind": LOCALHOST, "port": free_port()},
            "state_dir": str(workdir / "var"),
            "snapshot_interval_ms": 50,
        }
        config = deep_merge(base, config_overrides)
        h = Host(str(workdir), config, env=env, args=args)
        # The test's own plain broker, as the config has it: wait_connected()
        # also waits until the broker has the host's subscriptions.
        m = config.get("mqtt") if isinstance(config.get("mqtt"), dict) else {}
        if (b is default_broker and m.get("host") == b.host and m.get("port") == b.port
                and "tls" not in m and not any(k.startswith("OH_MQTT_") for k in (env or {}))):
            h.birth_broker = b
        hosts.append(h)
        _processes(request.node).append(h)
        if start:
            h.start(wait=wait)
        return h

    yield factory
    _teardown(hosts)


@pytest.fixture
def make_mqtt(broker):
    clients = []

    default_broker = broker

    def factory(client_id=None, broker=None, **kw):
        b = broker or default_broker
        c = MqttClient(b.host, b.port, client_id=client_id, **kw)
        clients.append(c)
        return c

    yield factory
    for c in clients:
        c.close()


@pytest.fixture
def mqtt(make_mqtt):
    return make_mqtt()


@pytest.fixture
def make_device(broker, tmp_path, request):
    devices = []

    def factory(config, extra_args=None, start=True, env=None):
        if not os.path.exists(harness.DEVICE_BINARY):
            pytest.skip("%s is not built" % harness.DEVICE_BINARY)
        config = dict(config)
        m = dict(config.get("mqtt") or {})
        m.setdefault("host", broker.host)
        m.setdefault("port", broker.port)
        config["mqtt"] = m
        workdir = tmp_path / ("device%d" % (len(devices) + 1))
        workdir.mkdir()
        d = Device(str(workdir), config, extra_args=extra_args, env=env)
        devices.append(d)
        _processes(request.node).append(d)
        if start:
            d.start()
        return d

    yield factory
    _teardown(devices)


@pytest.fixture(scope="session")
def _shared_browser(tmp_path_factory):
    """Holds the one Chromium of this test process (started on first use)."""
    holder = {"log_dir": str(tmp_path_factory.mktemp("chromium"))}
    yield holder
    b = holder.pop("browser", None)
    if b is not None:
        b.close()


def _browser(holder, request, **reset):
    from browser import Browser
    why = Browser.unavailable_reason()
    if why:
        pytest.skip(why)
    # A browser that died between tests (or while starting, on a machine
    # under heavy load) is replaced, once: the test has not begun.
    for attempt in (1, 2):
        b = holder.get("browser")
        try:
            if b is not None and not b.alive():
                raise RuntimeError("the shared browser died")
            if b is None:
                b = holder["browser"] = Browser(log_dir=holder["log_dir"])
            b.reset(**reset)
            break
        except Exception:
            holder.pop("browser", None)
            if b is not None:
                if attempt == 2:
                    _processes(request.node).append(b)     # its log, in the report
                try:
                    b.close()
                except Exception:  # noqa: BLE001 - it is already gone
                    pass
            if attempt == 2:
                raise
    _processes(request.node).append(b)
    yield b
    # After a failure, the next test gets a new browser: nothing this one
    # left behind can explain a second failure.
    rep = getattr(request.node, "_oh_rep_call", None)
    if rep is None or rep.failed:
        if holder.get("browser") is b:
            holder.pop("browser")
            b.close()


@pytest.fixture
def browser(_shared_browser, request):
    yield from _browser(_shared_browser, request)


@pytest.fixture
def phone_browser(_shared_browser, request):
    yield from _browser(_shared_browser, request, width=390, height=844, mobile=True)
