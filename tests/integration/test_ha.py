"""
Two hosts, one lab (docs/ha.md): state in a real PostgreSQL (pg.py, one
server for the file, a fresh database per test), one leader, a standby
that takes over by itself.

Covers the leader killed (QoS 1 commands sent in the gap relayed once by
the new leader, a lease held across with the same deadline), the standby
killed, PostgreSQL restarted, the leader cut off from the database by a
proxy that blackholes its connection (it stops within ha.lease_s), a job
due during a failover (run once, one row in oh_job_runs), /healthz and the
UI on both nodes, the standby's 503 for writes and its view of the leases
and jobs, the retained presence being the leader's, an NDI route set on
the old leader enforced by the new one, a clean stop with a reply waiting
for its commit, a write the database refuses (the ack held behind it
never sent, exit 75), and the config errors.
"""

import subprocess
import tempfile
import time
import uuid

import pytest

import harness
import pg as pgmod
from conftest import wait_until
from test_ndi_commands import Device, Ndi, ndi_config

LEASE_S = 2


@pytest.fixture(scope="module")
def server():
    why = pgmod.unavailable_reason()
    if why:
        pytest.skip(why)
    # Not under pytest's tmp_path: its root is private to the test user,
    # and the server may run as another (pg.py).
    p = pgmod.Postgres(tempfile.mkdtemp(prefix="oh-postgres-"))
    yield p
    p.close()


@pytest.fixture
def db(server):
    """A fresh database on the shared server: its name."""
    name = "t_" + uuid.uuid4().hex[:10]
    server.sql("CREATE DATABASE %s" % name)
    return name


def rows(server, db, query):
    return server.sql(query, db=db)


def pair_config(server, db, node, port=None, lease_s=LEASE_S):
    http_port = harness.free_port()
    ci = server.conninfo(port).replace("dbname=lab", "dbname=" + db)
    cfg = ndi_config({"ack_timeout_s": 5})
    cfg.setdefault("mqtt", {})["client_id"] = "host-" + node
    cfg.update({
        "http": {"bind": harness.LOCALHOST, "port": http_port},
        "store": {"backend": "postgresql", "conninfo": ci},
        "ha": {"node_id": node, "advertise_url": "http://%s:%d" % (harness.LOCALHOST, http_port),
               "lease_s": lease_s, "client_id": "leader-" + db},
    })
    return cfg


def hz(host):
    return host.health()[1]


def role(host):
    try:
        return hz(host)["role"]
    except Exception:   # noqa: BLE001 - a host that is gone has no role
        return None


def start_pair(make_host, server, db, a_port=None):
    a = make_host(pair_config(server, db, "a", a_port))
    a.wait_connected()
    wait_until(lambda: role(a) == "leader", timeout=10, msg="a never led")
    b = make_host(pair_config(server, db, "b"))
    b.wait_connected()
    wait_until(lambda: hz(b)["leader"] is not None, timeout=10, msg="b never heard of a")
    return a, b


def log_time(host, text):
    """The timestamp of the last log line holding text (ISO, sortable)."""
    return [line.split()[0] for line in host.log().splitlines() if text in line][-1]


def relayed(device, req_id):
    return [c for c in device.commands() if c.get("req_id") == req_id]


def test_roles_health_ui_and_standby_refuses_writes(make_host, server, db, mqtt):
    a, b = start_pair(make_host, server, db)
    ha, hb = hz(a), hz(b)
    assert (ha["role"], hb["role"]) == ("leader", "standby")
    for h in (ha, hb):
        assert h["leader"] == {"node_id": "a", "advertise_url": a.url("").rstrip("/")}
        assert h["store"] == {"backend": "postgresql", "state": "connected"}
    assert hb["node_id"] == "b"
    # A state change on the standby points to the leader, and changes nothing.
    st, body = b.post("/api/ndi/reserve", {"device_id": "rpi-01", "actor": "x", "lease_s": 30})
    assert st == 503, body
    assert body["error"]["code"] == "NOT_LEADER"
    assert body["leader"]["advertise_url"] == a.url("").rstrip("/")
    assert rows(server, db, "SELECT count(*) FROM oh_leases") == ["0"]
    # Fencing: a session that is not the leader's cannot write, with the
    # current epoch or not.
    for epoch in ("1", "2"):
        with pytest.raises(subprocess.CalledProcessError) as refused:
            server.sql("SELECT set_config('oh.epoch', '%s', false);"
                       " INSERT INTO oh_leases VALUES ('ndi:x', 'intruder', 1)" % epoch, db=db)
        assert "fenced" in refused.value.stderr
    # Reads work on both; the UI's header shows the node and the leader.
    for h, text in ((a, "node a · leader<"), (b, "node b · standby · leader <a href=\"%s\">a</a>"
                                                 % a.url("").rstrip("/"))):
        st, _ = h.get("/api/registry")
        assert st == 200
        st, _, page = h.request("GET", "/", headers={"Accept": "text/html"})
        assert st == 200 and text in page, page
    for h, acting in ((a, "1"), (b, "0")):
        _, _, text = h.request("GET", "/metrics")
        assert "\noh_ha_acting %s\n" % acting in text
    # The standby shows the leader's leases and jobs, read from the store.
    app = Ndi(a, mqtt)
    assert app.do("reserve", {"device_id": "rpi-05", "lease_s": 60}, actor="alice")["code"] == "OK"
    job = app.do("schedule", {"at": "2099-01-01T00:00:00Z", "commands": [
        {"device_id": "rpi-05", "action": "stop", "params": {}}]})["details"]["job_id"]
    wait_until(lambda: b.get("/api/ndi/jobs")[1]["jobs"] and b.get("/api/registry")[1]["locks"],
               timeout=LEASE_S + 3, msg="the standby never showed the lease and the job")
    assert b.get("/api/registry")[1]["locks"] == a.get("/api/registry")[1]["locks"]
    assert [j["id"] for j in b.get("/api/ndi/jobs")[1]["jobs"]] == [job]
    # One job by id too, as the leader shows it; an unknown id is a 404.
    assert b.get("/api/ndi/jobs/" + job) == a.get("/api/ndi/jobs/" + job)
    assert b.get("/api/ndi/jobs/nosuch")[0] == 404
    # The single host is "single", and leads itself.
    s = make_host(ndi_config())
    assert hz(s)["role"] == "single"


PRESENCE = "/lab/orchestrator/status"


def presence(make_mqtt):
    """The retained host presence, as a new subscriber gets it."""
    c = make_mqtt()
    c.subscribe(PRESENCE)
    p = c.wait_for(PRESENCE, timeout=5)["payload"]
    return p["node"], p["online"]


def test_leader_kill_gap_commands_and_lease(make_host, server, db, mqtt, make_mqtt):
    a, b = start_pair(make_host, server, db)
    # The retained presence is the leader's, not the last host's to start.
    assert presence(make_mqtt) == ("host-a", True)
    mqtt.subscribe(PRESENCE)
    since = mqtt.mark()
    app = Ndi(a, mqtt)
    dev = Device(make_mqtt, "rpi-01")
    held = app.do("reserve", {"device_id": "rpi-00", "lease_s": 60}, actor="alice")
    assert held["code"] == "OK"
    # Acknowledged only once committed: the row is there already.
    assert rows(server, db, "SELECT holder FROM oh_leases") == ["alice"]

    a.kill()
    sent = [app.send("start", {"device_id": dev.id, "source": "CAM-%d" % i}) for i in range(5)]
    wait_until(lambda: role(b) == "leader", timeout=LEASE_S + 3, msg="b never took over")
    for env in sent:
        wait_until(lambda: relayed(dev, env["req_id"]), timeout=5,
                   msg="%s never relayed" % env["req_id"])
    # In order, so a last one relayed means no copy of the others is due.
    last = app.send("stop", {"device_id": dev.id})
    wait_until(lambda: relayed(dev, last["req_id"]), timeout=5)
    for env in sent:
        assert len(relayed(dev, env["req_id"])) == 1, env

    busy = app.do("reserve", {"device_id": "rpi-00"}, actor="bob")
    assert busy["code"] == "IN_USE"
    assert busy["details"]["holder"] == "alice"
    assert busy["details"]["expires_at"] == held["details"]["expires_at"]
    # a's will, then b's birth on its leader session.
    mqtt.wait_for(PRESENCE, lambda m: m["payload"]["node"] == "host-b" and m["payload"]["online"],
                  since=since, timeout=5)
    assert presence(make_mqtt) == ("host-b", True)


def test_routes_enforced_by_the_new_leader(make_host, server, db, make_mqtt, make_device):
    from test_ndi_routes import behind_its_back, mod_status, put_route, shows
    a, b = start_pair(make_host, server, db)
    make_device({"heartbeat_interval_s": 60}, extra_args=["--simulate", "1", "--id-prefix", "fo-"])
    lab = type("Lab", (), {})()
    lab.mqtt = make_mqtt()
    lab.mqtt.subscribe(mod_status("fo-01"))
    lab.mqtt.wait_for(mod_status("fo-01"), timeout=10)
    since = lab.mqtt.mark()
    put_route(a, "fo-01", {"source": "CAM-1", "actor": "alice"})
    lab.mqtt.wait_for(mod_status("fo-01"), shows("CAM-1"), since=since, timeout=10)
    # A standby neither knows the route nor sends anything for it.
    assert b.get("/api/ndi/routes")[1] == {"routes": []}

    a.kill()
    wait_until(lambda: role(b) == "leader", timeout=LEASE_S + 3, msg="b never took over")
    since = behind_its_back(lab, "fo-01", "set_input", source="CAM-9")
    lab.mqtt.wait_for(mod_status("fo-01"), shows("CAM-1"), since=since, timeout=10)
    routes = b.get("/api/ndi/routes")[1]["routes"]
    assert [(r["device_id"], r["desired"]["source"], r["owner"]) for r in routes] == \
        [("fo-01", "CAM-1", "alice")], routes


def test_job_due_during_failover_runs_once(make_host, server, db, mqtt, make_mqtt):
    a, b = start_pair(make_host, server, db)
    app = Ndi(a, mqtt)
    dev = Device(make_mqtt, "rpi-02")
    due = int(time.time()) + 2
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(due))
    ack = app.do("schedule", {"at": at, "commands": [
        {"device_id": dev.id, "action": "start", "params": {"source": "JOB"}}]})
    assert ack["code"] == "SCHEDULED", ack
    # Killed just before the job is due: the new leader runs it.
    wait_until(lambda: time.time() >= due - 0.3, timeout=5, interval=0.01)
    a.kill()
    wait_until(lambda: [c for c in dev.commands() if c["params"].get("source") == "JOB"],
               timeout=LEASE_S + 5, msg="the job never ran")
    assert role(b) == "leader"
    last = app.send("stop", {"device_id": dev.id})
    wait_until(lambda: relayed(dev, last["req_id"]), timeout=5)
    assert len([c for c in dev.commands() if c["params"].get("source") == "JOB"]) == 1
    assert rows(server, db, "SELECT due FROM oh_job_runs") == [str(due)]


def test_cut_off_leader_stops_within_lease(make_host, server, db, mqtt, make_mqtt):
    proxy = pgmod.Proxy(server.port)
    try:
        a, b = start_pair(make_host, server, db, a_port=proxy.port)
        app = Ndi(a, mqtt)
        dev = Device(make_mqtt, "rpi-03")
        proxy.blackhole()
        cut = time.monotonic()
        code = a.wait(timeout=LEASE_S + 2)
        stopped = time.monotonic() - cut
        assert code == 75, a.log()
        assert stopped <= LEASE_S + 1.0, stopped   # slack for a loaded machine
        assert "no renewal answered" in a.log()
        # The standby waits out the deadline and a margin, then leads: never
        # while the cut-off leader still acts (the logs' clocks are one).
        wait_until(lambda: role(b) == "leader", timeout=LEASE_S + 5)
        assert log_time(a, "no longer the leader") < log_time(b, "took the lead")
        env = app.send("start", {"device_id": dev.id, "source": "CAM-1"})
        wait_until(lambda: relayed(dev, env["req_id"]), timeout=5)
    finally:
        proxy.close()


def test_acks_wait_for_the_commit(make_host, server, db, mqtt):
    """A lease is acknowledged, over MQTT and REST, only once the database
    has committed it: with the leader's connection held up, no ack; let go,
    the ack and the row."""
    proxy = pgmod.Proxy(server.port)
    try:
        a = make_host(pair_config(server, db, "a", proxy.port, lease_s=30))
        a.wait_connected()
        wait_until(lambda: role(a) == "leader", timeout=10)
        app = Ndi(a, mqtt)
        proxy.blackhole()
        env = app.send("reserve", {"device_id": "rpi-05", "lease_s": 60}, actor="alice")
        with pytest.raises(AssertionError):
            app.event(env["req_id"], timeout=0.5)
        with pytest.raises(Exception):
            a.post("/api/ndi/reserve", {"device_id": "rpi-06", "actor": "bob"}, timeout=0.5)
        assert rows(server, db, "SELECT count(*) FROM oh_leases") == ["0"]
        proxy.resume()
        assert app.event(env["req_id"], timeout=5)["code"] == "OK"
        wait_until(lambda: rows(server, db, "SELECT key FROM oh_leases ORDER BY key")
                   == ["ndi:rpi-05", "ndi:rpi-06"], timeout=5)
        # Stopped with a reply still waiting for its commit: a clean exit
        # (libmicrohttpd aborts when stopped with a connection suspended).
        proxy.blackhole()
        with pytest.raises(Exception):
            a.post("/api/ndi/reserve", {"device_id": "rpi-07", "actor": "bob"}, timeout=0.5)
        assert a.stop() == 0, a.log()[-2000:]
    finally:
        proxy.close()


def test_held_ack_dropped_when_the_write_fails(make_host, server, db, mqtt):
    """A write the database refuses: the ack held behind it is dropped, never
    sent, and the leader exits 75 (publish.c, store_pg.c)."""
    a = make_host(pair_config(server, db, "a", lease_s=30))
    a.wait_connected()
    wait_until(lambda: role(a) == "leader", timeout=10)
    app = Ndi(a, mqtt)
    # Refused by the database itself, as a fenced write would be, but
    # without the lead changing hands (which would step down first); a
    # second late, so that an ack sent before the commit would be seen.
    rows(server, db, "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
         " $$BEGIN PERFORM pg_sleep(1); RAISE EXCEPTION 'refused by the test'; END$$")
    rows(server, db, "CREATE TRIGGER refuse BEFORE INSERT ON oh_leases"
         " FOR EACH ROW EXECUTE FUNCTION refuse()")
    env = app.send("reserve", {"device_id": "rpi-08", "lease_s": 60}, actor="alice")
    assert a.wait(timeout=5) == 75, a.log()[-2000:]
    assert "a write was refused" in a.log()
    with pytest.raises(AssertionError):
        app.event(env["req_id"], timeout=1)
    assert rows(server, db, "SELECT count(*) FROM oh_leases") == ["0"]


def test_standby_kill_and_postgresql_restart(make_host, server, db, mqtt, make_mqtt):
    a, b = start_pair(make_host, server, db)
    app = Ndi(a, mqtt)
    dev = Device(make_mqtt, "rpi-04")
    b.kill()
    env = app.send("start", {"device_id": dev.id, "source": "CAM-1"})
    wait_until(lambda: relayed(dev, env["req_id"]), timeout=5)
    assert role(a) == "leader"

    b.start()
    b.wait_connected()
    wait_until(lambda: hz(b)["store"].get("state") == "connected", timeout=10)
    server.restart()
    # The leader's session went with the server: it steps down (exit 75,
    # systemd would start it again) and the standby takes the lead.
    assert a.wait(timeout=10) == 75
    wait_until(lambda: role(b) == "leader", timeout=15)
    env = app.send("start", {"device_id": dev.id, "source": "CAM-2"})
    wait_until(lambda: relayed(dev, env["req_id"]), timeout=5)


def test_database_down_at_start_and_config_errors(make_host, server, db):
    # The database does not answer (the proxy holds every connection): the
    # host runs as a standby, says why, and retries until it does.
    proxy = pgmod.Proxy(server.port)
    try:
        proxy.blackhole()
        cfg = pair_config(server, db, "c", port=proxy.port)
        h = make_host(cfg)
        h.wait_connected()
        wait_until(lambda: "timeout" in hz(h)["store"].get("error", ""), timeout=10)
        health = hz(h)
        assert health["role"] == "standby" and health["leader"] is None
        assert health["store"]["state"] == "disconnected"
        st, body = h.post("/api/ndi/reserve", {"device_id": "rpi-01", "actor": "x"})
        assert st == 503 and body["leader"] is None
        proxy.resume()
        wait_until(lambda: role(h) == "leader", timeout=15)
        assert "error" not in hz(h)["store"]
    finally:
        proxy.close()

    bad = dict(cfg, store={"backend": "postgresql", "conninfo": "host=x password=secret"})
    h.write_config(bad)
    cp = h.run(["--check-config", "--config", h.config_path])
    assert cp.returncode == 1
    assert "store.conninfo" in cp.stderr and "PGPASSWORD" in cp.stderr
    h.write_config(dict(cfg, store={"backend": "mysql"}))
    cp = h.run(["--check-config", "--config", h.config_path])
    assert cp.returncode == 1 and "store.backend" in cp.stderr


def test_mqtt_hosts_tried_in_turn(make_host, broker):
    # The first address has no broker: the host moves on to the second.
    h = make_host({"mqtt": {"host": harness.REMOVE, "port": harness.REMOVE, "hosts": [
        "%s:%d" % (harness.LOCALHOST, harness.free_port()),
        "%s:%d" % (broker.host, broker.port)]}}, wait=True)
    h.wait_connected(timeout=15)
    assert "connected to %s:%d" % (broker.host, broker.port) in h.log()

    for bad, key in ((["127.0.0.1:1883", "nohost"], "mqtt.hosts[1]"), ([], "mqtt.hosts"),
                     (["::1:1883"], "mqtt.hosts[0]")):
        h.write_config(dict(h.config, mqtt={"hosts": bad}))
        cp = h.run(["--check-config", "--config", h.config_path])
        assert cp.returncode == 1 and key in cp.stderr, (bad, cp.stderr)


def audit(host, query=""):
    st, body = host.get("/api/audit" + query)
    assert st == 200, body
    return body


def test_audit_trail_shared_and_kept_across_failover(make_host, server, db, mqtt, make_mqtt):
    a, b = start_pair(make_host, server, db)
    app = Ndi(a, mqtt)
    held = app.do("reserve", {"device_id": "rpi-05", "lease_s": 60}, actor="alice")
    assert held["code"] == "OK"
    for i in range(3):
        app.do("reserve", {"device_id": "rpi-05", "lease_s": 60}, actor="bob%d" % i)
    # Acknowledged once committed: the records are in the shared table.
    assert "alice" in rows(server, db, "SELECT actor FROM oh_audit WHERE kind = 'lease'")
    # The leader and the standby read the same trail, paged by keyset.
    pages = []
    for h in (a, b):
        first = audit(h, "?kind=command&limit=2")
        assert len(first["records"]) == 2 and first["next_cursor"], first
        rest = audit(h, "?kind=command&limit=10&cursor=" + first["next_cursor"])
        recs = [r for r in first["records"] + rest["records"] if r["actor"] != "app"]  # Ndi's probe
        assert [r["actor"] for r in recs] == ["bob2", "bob1", "bob0", "alice"], recs
        assert [r["code"] for r in recs] == ["IN_USE"] * 3 + ["OK"]
        pages.append(recs)
    assert pages[0] == pages[1]
    # Counted once committed (the live copies go then, with their seq).
    _, _, text = a.request("GET", "/metrics")
    assert float(text.split("\noh_audit_records_total ")[1].split()[0]) >= 4, text
    st, hdrs, csv = b.request("GET", "/api/audit?format=csv&kind=lease")
    assert st == 200 and csv.startswith("seq,ts,kind,"), csv
    assert ",lease,take,alice," in csv, csv
    # A failover keeps them: the new leader reads them and adds its own.
    a.kill()
    wait_until(lambda: role(b) == "leader", timeout=LEASE_S + 3, msg="b never took over")
    Ndi(b, mqtt).do("reserve", {"device_id": "rpi-05"}, actor="carol")
    recs = [r for r in audit(b, "?kind=command")["records"] if r["actor"] != "app"]
    assert [r["actor"] for r in recs] == ["carol", "bob2", "bob1", "bob0", "alice"], recs
    assert recs[0]["code"] == "IN_USE"
