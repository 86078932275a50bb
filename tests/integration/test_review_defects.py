"""
Black-box checks of defects found in review, each against the real daemon
(run them on the sanitizer build too: the harness fails a test on any
AddressSanitizer or LeakSanitizer report):

- A shutdown signal that arrives before a deferred unload
  (DELETE /api/plugins/{module}) ran: the host still runs it on the way
  out, and nothing leaks.
- Another process holding the state database (a backup, the sqlite3 shell):
  the loop does not stall, /healthz answers at once, lease and job writes
  fail promptly with an error that names the store, nothing half-done is
  kept, and writes work again once the lock is released.
"""

import json
import os
import signal
import socket
import sqlite3
import threading
import time

import pytest

import harness
from harness import wait_until

ROOT = "/lab"


def so(name):
    return os.path.join(harness.BUILD_DIR, "test-plugins", name + ".so")


def http_exchange(sock, request):
    """Sends a raw request on an open keep-alive connection and returns the
    status line and body of the answer."""
    sock.sendall(request.encode())
    return read_response(sock)


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return lines[0], body[:length].decode("utf-8", "replace")


# --------------------------------------------------------------------------
# SIGTERM before a deferred unload


def sigterm_pending(pid):
    """Whether SIGTERM waits for delivery to pid (/proc's pending masks)."""
    bit = 1 << (signal.SIGTERM - 1)
    with open("/proc/%d/status" % pid) as f:
        return any(int(line.split()[1], 16) & bit for line in f
                   if line.startswith(("SigPnd:", "ShdPnd:")))


def test_sigterm_right_after_delete_plugin_still_unloads_it(make_host, tmp_path):
    for name in ("abi_timers", "abi_edges"):
        if not os.path.exists(so(name)):
            pytest.skip("test plugins not built in %s" % harness.BUILD_DIR)
    marker = tmp_path / "marker"
    host = make_host({"plugins": [
        {"module": "edges", "path": so("abi_edges")},
        {"module": "timers", "path": so("abi_timers"), "settings": {"marker": str(marker)}},
    ]})
    sock = socket.create_connection((harness.LOCALHOST, host.http_port), timeout=10)
    hdr = "Host: %s:%d\r\n" % (harness.LOCALHOST, host.http_port)
    try:
        # The connection is accepted and served once, so the daemon reads
        # the next request on it in the loop turn it sees it.
        status, _ = http_exchange(sock, "GET /healthz HTTP/1.1\r\n%s\r\n" % hdr)
        assert status.split()[1] in ("200", "503"), status

        # While a timer callback holds the loop, the signal arrives and then
        # the DELETE: the next loop turn sees both, in that order, so the
        # shutdown begins before the unload's own deferred turn can come.
        assert host.get("/api/edges/block?after_ms=100&ms=700")[0] == 200
        wait_until(lambda: "holding the loop" in host.log(), 10, 0.005, "the loop to be held")
        host.proc.send_signal(signal.SIGTERM)
        # Delivered (its handler ran and queued it for the loop) before the
        # DELETE is sent: the kernel no longer holds it pending.
        wait_until(lambda: not sigterm_pending(host.proc.pid), 10, 0.005, "SIGTERM delivered")
        sock.sendall(("DELETE /api/plugins/timers HTTP/1.1\r\n%s\r\n" % hdr).encode())
        assert host.wait(15) == 0
        # The client got an answer before the server closed (the unload's
        # own, or the shutdown's), not a hang.
        answer = read_response(sock)
    finally:
        sock.close()

    log = host.log()
    assert "SIGTERM received, shutting down" in log
    assert answer is not None, harness.tail(log)
    assert answer[0].split()[1] in ("200", "503"), answer
    # The asked-for unload ran, on the way out, with the usual order.
    assert "unloaded timers" in log, harness.tail(log)
    assert marker.read_text() == "cleanup\nfree\n"
    # (The fixture fails the test on a LeakSanitizer report.)


# --------------------------------------------------------------------------
# Another process holding the database


def ndi_host(make_host):
    return make_host({"plugins": [{"module": "ndi", "path": "builtin:ndi",
                                   "settings": {"mdns": False, "ack_timeout_s": 1}}]})


def timed(fn, *args, **kw):
    t0 = time.monotonic()
    result = fn(*args, **kw)
    return result, time.monotonic() - t0


JOB = {"cron": "0 6 * * *", "actor": "alice",
       "commands": [{"device_id": "rpi-db", "action": "stop"}]}


def test_locked_database_does_not_stall_the_loop(make_host):
    host = ndi_host(make_host)
    host.wait_connected()
    # Works before: a lease and a job.
    status, body = host.post("/api/ndi/reserve", {"device_id": "rpi-db", "actor": "alice"})
    assert status == 200, body
    status, job = host.post("/api/ndi/jobs", JOB)
    assert status == 201, job

    db = os.path.join(host.state_dir, "state.db")
    other = sqlite3.connect(db, isolation_level=None, timeout=5)
    try:
        other.execute("BEGIN IMMEDIATE")   # what the sqlite3 shell or a backup does

        # A write, and /healthz at the same time: neither waits on the lock.
        results = {}

        def reserve():
            results["reserve"] = timed(host.post, "/api/ndi/reserve",
                                       {"device_id": "rpi-db2", "actor": "bob"})
        writer = threading.Thread(target=reserve)
        writer.start()
        health = [timed(host.get, "/healthz") for _ in range(5)]
        writer.join(10)
        assert not writer.is_alive()
        for (status, _), took in health:
            assert status == 200 and took < 0.5, health

        (status, body), took = results["reserve"]
        assert took < 1.0, took
        assert status == 500 and body["error"]["code"] == "ERROR", body
        assert "storage" in body["error"]["message"], body

        (status, body), took = timed(host.post, "/api/ndi/renew",
                                     {"device_id": "rpi-db", "actor": "alice"})
        assert took < 1.0 and status == 500 and body["error"]["code"] == "ERROR", (took, body)
        (status, body), took = timed(host.post, "/api/ndi/jobs", JOB)
        assert took < 1.0 and status == 500, (took, body)
        assert body["error"]["message"] == "the job could not be stored, so it is not scheduled"
        (status, body), took = timed(host.delete, "/api/ndi/jobs/" + job["id"])
        assert took < 1.0 and status == 500, (took, body)
        assert "still scheduled" in body["error"]["message"], body

        # Nothing half-done: no new lease, the old job still there.
        _, snap = host.get("/api/registry")
        assert "ndi:rpi-db2" not in json.dumps(snap.get("leases", {}))
        assert host.get("/api/ndi/jobs/" + job["id"])[0] == 200
        assert host.get("/api/ndi/jobs")[1]["count"] == 1
    finally:
        other.execute("ROLLBACK")
        other.close()

    # Released: everything works again.
    status, body = host.post("/api/ndi/reserve", {"device_id": "rpi-db2", "actor": "bob"})
    assert status == 200, body
    status, body = host.post("/api/ndi/jobs", JOB)
    assert status == 201, body
    status, body = host.delete("/api/ndi/jobs/" + job["id"])
    assert status == 200, body
    assert host.get("/api/ndi/jobs")[1]["count"] == 1

    log = host.log()
    # Said once when it started and once when it ended, not per write.
    assert log.count("is locked by another process") == 1, harness.tail(log)
    assert "is writable again" in log
    assert host.stop() == 0

    # And what was acknowledged is what survived.
    host.start()
    status, body = host.get("/api/ndi/jobs")
    assert status == 200 and body["count"] == 1 and body["jobs"][0]["id"] != job["id"], body
