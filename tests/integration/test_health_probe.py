"""
orchestrator-host --probe URL, the container's HEALTHCHECK: its exit codes
against a real host (connected, broker gone), against no host, against a
socket that never answers, and for URLs it cannot ask.
"""

import os
import re
import socket
import subprocess
import time

from harness import BUILD_DIR, SOURCE_DIR, free_port


def probe(host, url, timeout=15):
    return host.run(["--probe", url], timeout=timeout)


def test_probe_follows_the_broker(make_host, broker):
    host = make_host()
    host.wait_connected()
    url = host.url("/healthz")
    cp = probe(host, url)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("healthy: ") and "mqtt connected" in cp.stdout, cp.stdout
    # Without a path the probe asks /healthz.
    assert probe(host, "http://127.0.0.1:%d" % host.http_port).returncode == 0
    assert probe(host, "http://localhost:%d/healthz" % host.http_port).returncode == 0
    broker.stop()
    host.wait_disconnected(timeout=10)
    cp = probe(host, url)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert "HTTP 503, mqtt disconnected" in cp.stderr, cp.stderr
    broker.start()
    host.wait_connected()
    assert probe(host, url).returncode == 0


def test_probe_wants_a_health_answer(make_host):
    host = make_host()
    host.wait_connected()
    # 200, but not /healthz's document.
    cp = probe(host, host.url("/api/registry"))
    assert cp.returncode == 1 and 'without an "mqtt" field' in cp.stderr, cp.stderr
    cp = probe(host, host.url("/no/such/path"))
    assert cp.returncode == 1, cp.stderr


def test_probe_without_a_host(make_host):
    host = make_host(start=False)
    cp = probe(host, "http://127.0.0.1:%d/healthz" % free_port())
    assert cp.returncode == 1 and "cannot connect" in cp.stderr, cp.stderr


def test_probe_gives_up_on_a_silent_host(make_host):
    """Accepted (by the kernel's backlog) but never answered: unhealthy
    within the probe's 5 s, not a probe that hangs the health checker."""
    host = make_host(start=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        started = time.monotonic()
        cp = probe(host, "http://127.0.0.1:%d/healthz" % s.getsockname()[1])
        took = time.monotonic() - started
    assert cp.returncode == 1 and "timeout" in cp.stderr, cp.stderr
    assert 4 < took < 8, took


def test_probe_usage_errors(make_host):
    host = make_host(start=False)
    for url in ("https://127.0.0.1:8443/healthz", "127.0.0.1:8080", "http://:8080/",
                "http://127.0.0.1:80x80/", "http://[::1/healthz"):
        cp = probe(host, url)
        assert cp.returncode == 2, (url, cp.returncode, cp.stderr)
        assert "--probe: " in cp.stderr, cp.stderr
    assert "only http://" in probe(host, "https://127.0.0.1/").stderr


def test_dockerfile_healthcheck_runs_the_probe(make_host, broker):
    """The image's HEALTHCHECK command, run by sh as Docker runs it, with
    the built binary in place of the installed one."""
    with open(os.path.join(SOURCE_DIR, "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    m = re.search(r"^HEALTHCHECK\s+(.*?)\bCMD\s+(.+)$", text, re.M)
    assert m, "the Dockerfile has no HEALTHCHECK"
    cmd = m.group(2).strip()
    assert not cmd.startswith("["), "shell form, so that ${OH_HTTP_PORT} is expanded"
    assert cmd.startswith("/usr/bin/orchestrator-host --probe "), cmd
    cmd = cmd.replace("/usr/bin/orchestrator-host", os.path.join(BUILD_DIR, "orchestrator-host"), 1)
    host = make_host()
    host.wait_connected()

    def run():
        return subprocess.run(["sh", "-c", cmd], env={"OH_HTTP_PORT": str(host.http_port),
                                                      "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=20)
    cp = run()
    assert cp.returncode == 0, cp.stderr
    broker.stop()
    host.wait_disconnected(timeout=10)
    cp = run()
    assert cp.returncode == 1, cp.stderr
