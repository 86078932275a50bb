#!/usr/bin/python3
"""
The failover figures of docs/ha.md, for `make bench` (bench/run.sh, section
"ha"): a pair of hosts on a real PostgreSQL (tests/integration/pg.py) and a
mosquitto, all on 127.0.0.1.

- failover: BENCH_HA_TRIALS (20) times, the leader is killed with SIGKILL
  and a QoS 1 command is published at once, into the gap; the time from the
  kill to that command reaching the device topic, relayed by the new leader.
  Also counted: commands lost or relayed twice (5 per trial), and a lease
  taken before each kill that the new leader must still hold, with the same
  deadline.  The killed host is started again as the next standby.
- cost: relay latency (p50/p99) and QoS 1 throughput through a PostgreSQL
  leader against a SQLite host in the same run (oh-bench), as ratios.

Prints "name value unit" lines, as bench/run.sh does.
"""

import os
import random
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
os.environ.setdefault("OH_BUILD_DIR", os.path.abspath(os.environ.get("BUILD", "build")))

import harness  # noqa: E402
import pg as pgmod  # noqa: E402

TRIALS = int(os.environ.get("BENCH_HA_TRIALS", "20"))
LAT_N = int(os.environ.get("BENCH_HA_LAT_N", "500"))
TPUT_N = int(os.environ.get("BENCH_HA_TPUT_N", "5000"))
ROUNDS = int(os.environ.get("BENCH_HA_ROUNDS", "9"))
GAP_CMDS = 5
CMD = "/lab/orchestrator/ndi/cmd"
EVT = "/lab/orchestrator/ndi/evt"
DEV = "/lab/device/bench-dev/ndi/cmd"


def emit(name, value, unit):
    print("%s %s %s" % (name, value, unit), flush=True)


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def host_config(workdir, broker, node, conninfo=None, root="/lab"):
    port = harness.free_port()
    cfg = {
        "mqtt": {"host": harness.LOCALHOST, "port": broker.port,
                 "client_id": "bench-%s-%d" % (node, os.getpid())},
        "http": {"bind": harness.LOCALHOST, "port": port},
        "state_dir": os.path.join(workdir, node),
        "topic_root": root,
        "log_level": "warn",
        "stale_after_s": 600,
        "limits": {"max_pending": 10000000, "max_pending_per_device": 10000000},
        "plugins": [{"module": "ndi", "path": "builtin:ndi", "settings": {"ack_timeout_s": 86400}}],
    }
    if conninfo:
        cfg["store"] = {"backend": "postgresql", "conninfo": conninfo}
        cfg["ha"] = {"node_id": node, "advertise_url": "http://127.0.0.1:%d" % port,
                     "client_id": "bench-leader-%d" % os.getpid()}
    return harness.Host(os.path.join(workdir, node), cfg)


def role(h):
    try:
        return h.health()[1].get("role")
    except Exception:   # noqa: BLE001 - a killed host has no role
        return None


def failover(workdir, broker, pg):
    pg.sql("CREATE DATABASE failover")
    ci = pg.conninfo().replace("dbname=lab", "dbname=failover")
    hosts = [host_config(workdir, broker, n, ci) for n in ("a", "b")]
    hosts[0].start()
    harness.wait_until(lambda: role(hosts[0]) == "leader", timeout=10)
    hosts[1].start()
    hosts[1].wait_connected()
    app = harness.MqttClient(broker.host, broker.port)
    dev = harness.MqttClient(broker.host, broker.port)
    app.subscribe(EVT)
    dev.subscribe(DEV)
    times, lost, doubled, leases_lost = [], 0, 0, 0
    for trial in range(TRIALS):
        leader = next(h for h in hosts if role(h) == "leader")
        standby = next(h for h in hosts if h is not leader)
        harness.wait_until(lambda: role(standby) == "standby", timeout=10)
        rid = "lease-%d" % trial
        app.publish(CMD, {"req_id": rid, "actor": "alice", "action": "reserve",
                          "params": {"device_id": "d%d" % trial, "lease_s": 600}})
        held = app.wait_for(EVT, lambda m: m["payload"].get("req_id") == rid, timeout=10)["payload"]
        ids = ["t%d-%d" % (trial, i) for i in range(GAP_CMDS)]
        # The standby was started a fixed while ago: without a random
        # pause, each kill would meet its 250 ms try at the same phase.
        time.sleep(random.uniform(0, 0.5))
        killed = time.monotonic()
        leader.kill()
        for r in ids:
            app.publish(CMD, {"req_id": r, "actor": "app", "action": "start",
                              "params": {"device_id": "bench-dev", "source": "CAM"}}, wait=False)
        first = dev.wait_for(DEV, lambda m: m["payload"].get("req_id") == ids[0], timeout=30)
        times.append(first["time"] - killed)
        # In order: the barrier relayed means the others are in.
        app.publish(CMD, {"req_id": "b%d" % trial, "actor": "app", "action": "stop",
                          "params": {"device_id": "bench-dev"}})
        dev.wait_for(DEV, lambda m: m["payload"].get("req_id") == "b%d" % trial, timeout=10)
        got = [m["payload"].get("req_id") for m in dev.messages(DEV)]
        lost += sum(1 for r in ids if got.count(r) == 0)
        doubled += sum(1 for r in ids if got.count(r) > 1)
        rid2 = "check-%d" % trial
        app.publish(CMD, {"req_id": rid2, "actor": "bob", "action": "reserve",
                          "params": {"device_id": "d%d" % trial}})
        busy = app.wait_for(EVT, lambda m: m["payload"].get("req_id") == rid2, timeout=10)["payload"]
        if busy.get("code") != "IN_USE" or \
                busy["details"].get("expires_at") != held["details"].get("expires_at"):
            leases_lost += 1
        leader.start()   # the next standby, as systemd would
    for h in hosts:
        h.stop()
    app.close()
    dev.close()
    emit("ha_failover_p50", "%.3f" % pct(times, 50), "s")
    emit("ha_failover_p99", "%.3f" % pct(times, 99), "s")
    emit("ha_failover_max", "%.3f" % max(times), "s (%d trials, kill -9 to first command relayed)"
         % len(times))
    emit("ha_commands_lost", lost, "(of %d QoS 1 sent in the gaps)" % (GAP_CMDS * TRIALS))
    emit("ha_commands_repeated", doubled, "")
    emit("ha_leases_lost", leases_lost, "(of %d)" % TRIALS)


def oh_bench(broker, *args):
    out = subprocess.run([os.path.join(harness.BUILD_DIR, "bench", "oh-bench")] + list(args)
                         + ["--port", str(broker.port)], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    figures = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith("#"):
            try:
                figures[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return figures


def cost(workdir, broker, pg):
    """Both hosts up at once on their own topic roots, measured in
    alternating rounds, so that the machine's drift hits both alike; the
    ratios are of the medians over the rounds."""
    pg.sql("CREATE DATABASE cost")
    ci = pg.conninfo().replace("dbname=lab", "dbname=cost")
    hosts = {}
    for store, conninfo in (("sqlite", None), ("pg", ci)):
        h = hosts[store] = host_config(workdir, broker, "cost-" + store, conninfo, root="/" + store)
        h.start()
        h.wait_connected()
        if conninfo:
            harness.wait_until(lambda: role(h) == "leader", timeout=10)
    got = {k: [] for k in ("sqlite", "pg")}
    for r in range(ROUNDS):
        # Alternating which goes first, so neither always follows the other.
        for store in (("sqlite", "pg") if r % 2 == 0 else ("pg", "sqlite")):
            lat = oh_bench(broker, "latency", "--mode", "relay", "--n", str(LAT_N), "--name", "l",
                           "--root", "/" + store)
            tput = oh_bench(broker, "throughput", "--mode", "relay", "--qos", "1", "--n",
                            str(TPUT_N), "--timeout", "30", "--name", "t", "--root", "/" + store)
            lat.update(tput)
            got[store].append(lat)
            if os.environ.get("BENCH_HA_VERBOSE"):
                print("#", store, lat, flush=True)
    for h in hosts.values():
        h.stop()

    def med(store, key):
        return pct([r[key] for r in got[store]], 50)

    # Each round's two runs are back to back: the ratio of a round is
    # measured under the same load, and the median of the rounds' ratios
    # leaves out the rounds another process disturbed.
    for key, name, unit in (("l_p50", "latency_p50", "us"), ("l_p99", "latency_p99", "us"),
                            ("t_rate", "tput_qos1", "msg/s")):
        emit("ha_sqlite_%s" % name, "%.1f" % med("sqlite", key), unit)
        emit("ha_pg_%s" % name, "%.1f" % med("pg", key), unit)
        ratios = [p[key] / s[key] for s, p in zip(got["sqlite"], got["pg"]) if s[key]]
        emit("ha_pg_vs_sqlite_%s" % name, "%.3f" % pct(ratios, 50),
             "(PostgreSQL / SQLite, median of %d paired rounds)" % len(ratios))
    lost = sum(r["t_lost"] for st in got.values() for r in st)
    emit("ha_cost_tput_lost", "%d" % lost, "")


def main():
    why = pgmod.unavailable_reason()
    if why:
        emit("ha_failover_p99", "n/a", "(%s)" % why)
        return
    workdir = tempfile.mkdtemp(prefix="oh-bench-ha-")
    broker = harness.Broker(workdir=os.path.join(workdir, "broker"))
    pg = pgmod.Postgres(tempfile.mkdtemp(prefix="oh-bench-pg-"))
    try:
        sections = os.environ.get("BENCH_HA_SECTIONS", "failover cost").split()
        if "failover" in sections:
            failover(workdir, broker, pg)
        if "cost" in sections:
            cost(workdir, broker, pg)
    finally:
        pg.close()
        broker.stop()


if __name__ == "__main__":
    main()
