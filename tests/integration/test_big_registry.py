"""
Bounded under pressure, for views: GET /api/ndi/devices with 100,000 devices
in the registry must neither stall the loop nor hold a body per request.

The list used to be rebuilt whole (JSON objects for every device, a sort,
a serialisation) whenever a heartbeat had changed anything, on the one loop
thread: with 110,000 devices /healthz waited 0.4-0.7 s per call, with
200,000 over 6 s, and 8 parallel calls took the host from 630 MB to 860 MB
(a copy of the body per request).  Now the list keeps a fragment per device,
builds in slices, and every reply shares one body.

The devices come in as fast as paho sends them (QoS 0, no wait per
message); then, while statuses keep changing, one call warms the list up
and 8 run in parallel, and a poller in another process times /healthz.
It is a stall check, not a benchmark: the bound is generous.
"""

import http.client
import json
import random
import socket
import subprocess
import sys
import threading
import time

import paho.mqtt.client as paho
import pytest

from conftest import LOCALHOST, wait_until
from harness import rss_kb, sanitized

N = 100000
PARALLEL = 8
# What "stalled" means here: an order of magnitude under the seconds this
# took (twice that under ASan), on top of the worst answer of an idle
# reference host polled the same way at the same time: a loaded machine
# delays both, a loop that stalls delays only the host under test.
HEALTHZ_MAX_S = 0.5
HEALTHZ_MAX_SANITIZED_S = 1.0

# Polls /healthz until stdin closes and prints the slowest answer, from its
# own process: the test's threads reading megabytes would otherwise hold
# the poller up on the interpreter lock and be counted as the host's delay.
POLLER = r"""
import http.client, sys, threading, time
port = int(sys.argv[1])
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
worst, count = 0.0, 0
while not done.is_set():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t = time.monotonic()
    c.request("GET", "/healthz")
    r = c.getresponse()
    r.read()
    c.close()
    if r.status != 200:
        print("status %d" % r.status, flush=True)
    worst = max(worst, time.monotonic() - t)
    count += 1
    time.sleep(0.01)    # the poller's interval, not a wait
print("%.3f %d" % (worst, count), flush=True)
"""






def device_id(i):
    return "big-%06d" % i


def get_devices(port):
    """(status, body bytes) of GET /api/ndi/devices."""
    c = http.client.HTTPConnection(LOCALHOST, port, timeout=60)
    c.request("GET", "/api/ndi/devices")
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


class Churn:
    """Statuses that keep changing: heartbeats and NDI module statuses of
    random devices, a few hundred a second, from a thread."""

    def __init__(self, client):
        self.client = client
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        rnd = random.Random(1)
        while not self.stop.is_set():
            d = device_id(rnd.randrange(N))
            if self.sent % 2:
                self.client.publish("/lab/device/%s/status" % d, json.dumps(
                    {"online": True, "seq": self.sent}), 0, True)
            else:
                self.client.publish("/lab/device/%s/ndi/status" % d, json.dumps(
                    {"fields": {"state": "playing", "input": "CAM-%d" % self.sent}}), 0, True)
            self.sent += 1
            time.sleep(0.002)    # pacing the churn, not a wait

    def close(self):
        self.stop.set()
        self.thread.join(5)


def test_big_device_list_neither_stalls_nor_piles_up(make_host, broker):
    reference = make_host({"log_level": "warn"})
    host = make_host({
        "log_level": "warn",
        # Neither a wave of stale devices nor snapshots many times a second
        # (the registry's own work) should be what this test measures.
        "stale_after_s": 3600,
        "snapshot_interval_ms": 1000,
        "plugins": [{"module": "ndi", "path": "builtin:ndi", "settings": {"mdns": False}}]})
    host.wait_connected()
    pid = host.proc.pid

    pub = paho.Client(client_id="big-registry-pub", protocol=paho.MQTTv311)
    pub.max_inflight_messages_set(0)
    pub.max_queued_messages_set(0)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    try:
        meta = json.dumps({"modules": ["ndi"], "version": "1.0",
                           "capabilities": {"ndi": {"start_cmd_template": "ndi-viewer '{source}'"}}})
        for i in range(N):
            pub.publish("/lab/device/%s/meta" % device_id(i), meta, 0, True)
        wait_until(lambda: host.get("/healthz")[1]["devices"] >= N, 60, 0.25,
                   "%d devices in the registry" % N)

        churn = Churn(pub)
        poller = subprocess.Popen([sys.executable, "-c", POLLER, str(host.http_port)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ref_poller = subprocess.Popen([sys.executable, "-c", POLLER, str(reference.http_port)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            # The first call renders every device (in slices).
            status, body = get_devices(host.http_port)
            assert status == 200
            size = len(body)
            time.sleep(0.5)    # a window for the first build's memory to settle: no event says so
            with open("/proc/%d/clear_refs" % pid, "w") as f:
                f.write("5")                    # VmHWM from here on
            before = rss_kb(pid)

            results = [None] * PARALLEL

            def one(k):
                results[k] = get_devices(host.http_port)
            threads = [threading.Thread(target=one, args=(k,)) for k in range(PARALLEL)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            peak = max(rss_kb(pid, "VmHWM"), rss_kb(pid))
            # Until the shared body is given back (or 10 s): sampled, since
            # no event says when the allocator returns memory.
            deadline = time.monotonic() + 10
            while (rss_kb(pid) - before) * 1024 >= 2 * size and time.monotonic() < deadline:
                time.sleep(0.1)    # the sampling interval
            after = rss_kb(pid)
        finally:
            out, _ = poller.communicate("", timeout=60)
            ref_out, _ = ref_poller.communicate("", timeout=60)
            churn.close()
        assert churn.sent > 100
    finally:
        pub.loop_stop()
        pub.disconnect()

    worst, polls = out.split()[-2:]
    worst = float(worst)
    ref_worst = float(ref_out.split()[-2])
    report = ("list %.1f MB; /healthz worst %.3f s over %s polls (idle reference host: %.3f s); "
              "RSS before %.0f MB, peak %.0f MB with %d calls, after %.0f MB"
              % (size / 1e6, worst, polls, ref_worst, before / 1024, peak / 1024, PARALLEL,
                 after / 1024))
    print(report)
    assert "status" not in out, out
    for status, body in results:
        assert status == 200
    # Complete and in order (parsed after the poller stopped: parsing holds
    # the interpreter).
    ids = [d["device_id"] for d in json.loads(results[0][1])["devices"]]
    assert ids == [device_id(i) for i in range(N)]

    bound = HEALTHZ_MAX_SANITIZED_S if sanitized(host.binary) else HEALTHZ_MAX_S
    # The reference's worst is one sample of the machine's delays; the
    # host under test, polled as often, may meet a delay up to about twice
    # that in the same run (seen at load 4: 0.96 s against 0.41 s).  A
    # stalled loop (seconds, as before the fix) is still far outside.
    assert worst < bound + 2 * ref_worst, report
    if sanitized(host.binary):
        pytest.skip("RSS is not meaningful under ASan (%s)" % report)
    # One body shared by every reply (plus at most the next one being
    # built), not one per request: 8 copies would be 8 x size.
    assert (peak - before) * 1024 < 3 * size, report
    assert (after - before) * 1024 < 2 * size, report


def test_device_list_follows_comings_goings_and_callers(make_host, broker):
    """20,000 devices, so that a build spans many turns of the loop: a
    client that leaves while its list is built, newcomers sorted in among
    the known devices, a departed device swept out, and the plugin unloaded
    while a caller waits (503, or 200 had the build won the race)."""
    n = 20000
    host = make_host({
        "log_level": "warn", "stale_after_s": 3600, "snapshot_interval_ms": 1000,
        "plugins": [{"module": "ndi", "path": "builtin:ndi", "settings": {"mdns": False}}]})
    host.wait_connected()
    pub = paho.Client(client_id="big-registry-pub2", protocol=paho.MQTTv311)
    pub.max_inflight_messages_set(0)
    pub.max_queued_messages_set(0)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    meta = json.dumps({"modules": ["ndi"]})

    def publish(ids, payload=meta, kind="meta"):
        for d in ids:
            pub.publish("/lab/device/%s/%s" % (d, kind), payload, 0, True)

    def registry_has(count):
        wait_until(lambda: host.get("/healthz")[1]["devices"] == count, 60, 0.1,
                   "%d devices in the registry" % count)

    def listed():
        status, body = get_devices(host.http_port)
        assert status == 200
        return [d["device_id"] for d in json.loads(body)["devices"]]

    try:
        expected = {device_id(i) for i in range(0, 2 * n, 2)}
        publish(sorted(expected))
        registry_has(n)
        # The first build renders every device: this client does not wait.
        s = socket.create_connection((LOCALHOST, host.http_port))
        s.sendall(b"GET /api/ndi/devices HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.close()
        assert listed() == sorted(expected)

        newcomers = {device_id(i) for i in range(1, 2 * n, 2 * n // 100)}
        publish(sorted(newcomers))
        publish([device_id(0)], "")                # decommissioned
        expected = (expected | newcomers) - {device_id(0)}
        registry_has(len(expected))
        assert listed() == sorted(expected)

        # Every device changes: the next list takes a while to build.
        publish(sorted(expected), json.dumps({"online": True}), "status")
        wait_until(lambda: host.get("/api/devices/%s" % max(expected))[1].get("online"), 30,
                   0.1, "the last status")
        out = {}

        def caller():
            out["status"], _ = get_devices(host.http_port)
        t = threading.Thread(target=caller)
        t.start()
        time.sleep(0.02)    # a head start, not a wait: either order is accepted below
        assert host.delete("/api/plugins/ndi")[0] == 200
        t.join(30)
        print("the caller waiting during the unload got %s" % out.get("status"))
        assert out.get("status") in (200, 503)
        assert host.get("/api/ndi/devices")[0] == 404
        assert host.get("/healthz")[0] == 200
    finally:
        pub.loop_stop()
        pub.disconnect()
