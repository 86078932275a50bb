"""
TLS and credentials between the host and the broker.

One mosquitto per test with three listeners on 127.0.0.1
(per_listener_settings): a plain anonymous one for the test's own clients, a
TLS one with a password file and an ACL, and a TLS one that requires a client
certificate and takes its CN as the user name.  Certificates are made once
per file with openssl: a CA, a server certificate for IP 127.0.0.1, a client
certificate, and a second, unrelated CA.
"""

import os
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import LOCALHOST, Broker, free_port, wait_until

USER = "oh-host"
PASSWORD = "s3cret-Pa55word-never-logged"
CLIENT_CN = "orchestrator-host-cert"


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(d):
    """CA, server (IP:127.0.0.1), client (CN=CLIENT_CN) and a foreign CA."""
    os.makedirs(d, exist_ok=True)
    for ca, cn in (("ca", "oh test CA"), ("other-ca", "some other CA")):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca + ".key",
                 "-out", ca + ".crt", "-days", "2", "-subj", "/CN=" + cn, cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, cn in (("server", "127.0.0.1"), ("client", CLIENT_CN)):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
                 "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", name + ".crt", "-days", "2",
                 "-extfile", name + ".ext", cwd=d)
    return {k: os.path.join(d, k + ".crt") for k in ("ca", "other-ca", "server", "client")} | {
        "client_key": os.path.join(d, "client.key"), "server_key": os.path.join(d, "server.key")}


class TlsBroker(Broker):
    """mosquitto with a plain listener (self.port), a password+ACL TLS
    listener (self.tls_port) and a client-certificate TLS listener
    (self.mtls_port)."""

    def __init__(self, workdir, pki):
        self.pki = pki
        self.tls_port = free_port()
        self.mtls_port = free_port()
        os.makedirs(workdir, exist_ok=True)
        self.passwd_path = os.path.join(workdir, "passwd")
        subprocess.run(["mosquitto_passwd", "-b", "-c", self.passwd_path, USER, PASSWORD],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.acl_path = os.path.join(workdir, "acl")
        with open(self.acl_path, "w") as f:
            f.write("user %s\ntopic readwrite /lab/#\n\nuser %s\ntopic readwrite /lab/#\n"
                    % (USER, CLIENT_CN))
        super().__init__(workdir=workdir)

    def _write_conf(self):
        tls = ["cafile %s" % self.pki["ca"], "certfile %s" % self.pki["server"],
               "keyfile %s" % self.pki["server_key"]]
        lines = ["per_listener_settings true",
                 "persistence false",
                 "set_tcp_nodelay true",
                 "log_type all",
                 "listener %d %s" % (self.port, LOCALHOST),
                 "allow_anonymous true",
                 "listener %d %s" % (self.tls_port, LOCALHOST)] + tls + [
                 "allow_anonymous false",
                 "password_file %s" % self.passwd_path,
                 "acl_file %s" % self.acl_path,
                 "listener %d %s" % (self.mtls_port, LOCALHOST)] + tls + [
                 "require_certificate true",
                 "use_identity_as_username true",
                 "allow_anonymous false",
                 "acl_file %s" % self.acl_path]
        if os.geteuid() == 0:
            lines.append("user root")
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=10):
        super().start(timeout)
        for port in (self.tls_port, self.mtls_port):
            wait_until(lambda: _accepts(port), 5, msg="TLS listener %d" % port)


def _accepts(port):
    try:
        with socket.create_connection((LOCALHOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Made once for the file (four RSA keys cost seconds of CPU); every
    test only reads it."""
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def tls_broker(tmp_path, pki, request):
    b = TlsBroker(str(tmp_path / "tls-broker"), pki)
    yield b
    b.stop()


def tls_config(broker, port, ca, **extra):
    tls = {"ca_file": ca}
    tls.update(extra)
    return {"mqtt": {"host": LOCALHOST, "port": port, "tls": tls}}


def metric(host, name):
    status, text = host.get("/metrics")
    assert status == 200
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def assert_password_hidden(host):
    assert PASSWORD not in host.log(), "the password appears in the host log"
    for path in ("/healthz", "/api/plugins", "/api/registry", "/openapi.json", "/metrics"):
        _, _, body = host.request("GET", path)
        assert PASSWORD not in body, "the password appears in GET %s" % path


def test_tls_with_ca_and_password_from_environment(tls_broker, make_host, make_mqtt, pki):
    host = make_host(tls_config(tls_broker, tls_broker.tls_port, pki["ca"]),
                     env={"OH_MQTT_USERNAME": USER, "OH_MQTT_PASSWORD": PASSWORD})
    host.wait_connected()
    assert "connected to 127.0.0.1:%d (TLS)" % tls_broker.tls_port in host.log()
    # The host's traffic really flows over the TLS listener: its retained
    # snapshot reaches a client on the plain one.
    watcher = make_mqtt(broker=tls_broker)
    watcher.subscribe("/lab/orchestrator/registry")
    watcher.wait_for("/lab/orchestrator/registry")
    assert_password_hidden(host)


def test_password_file(tls_broker, make_host, pki, tmp_path):
    pw = tmp_path / "mqtt-password"
    pw.write_text(PASSWORD + "\n")
    cfg = tls_config(tls_broker, tls_broker.tls_port, pki["ca"])
    cfg["mqtt"].update({"username": USER, "password_file": str(pw)})
    host = make_host(cfg)
    host.wait_connected()
    assert_password_hidden(host)


def test_wrong_ca_is_refused_clearly_and_retried(tls_broker, make_host, pki):
    host = make_host(tls_config(tls_broker, tls_broker.tls_port, pki["other-ca"]),
                     env={"OH_MQTT_USERNAME": USER, "OH_MQTT_PASSWORD": PASSWORD})
    status, body = wait_until(lambda: (lambda r: r if "verify failed" in
                                       r[1].get("mqtt_error", "") else None)(host.health()),
                              5, msg="/healthz to name the verification failure")
    assert status == 503 and body["mqtt"] == "disconnected"
    assert "TLS" in body["mqtt_error"] and "ca_file" in body["mqtt_error"]
    # It keeps trying, with backoff, but says so once, not on every attempt.
    wait_until(lambda: (metric(host, "oh_mqtt_reconnects_total") or 0) >= 2, 8,
               msg="two reconnection attempts")
    lines = [l for l in host.log().splitlines() if "certificate verify failed" in l]
    assert len(lines) == 1, lines
    assert "cannot connect to 127.0.0.1:%d" % tls_broker.tls_port in lines[0]
    assert metric(host, "oh_mqtt_connected") == 0
    assert_password_hidden(host)


def test_client_certificate_identity(tls_broker, make_host, pki):
    cfg = tls_config(tls_broker, tls_broker.mtls_port, pki["ca"],
                     cert_file=pki["client"], key_file=pki["client_key"], tls_version="tlsv1.2")
    host = make_host(cfg)
    host.wait_connected()
    wait_until(lambda: "as %s" % CLIENT_CN in tls_broker.log() or
               CLIENT_CN in tls_broker.log(), 5, msg="broker to log the certificate identity")


def test_missing_client_certificate_is_reported(tls_broker, make_host, pki):
    host = make_host(tls_config(tls_broker, tls_broker.mtls_port, pki["ca"]))
    _, body = wait_until(lambda: (lambda r: r if r[1].get("mqtt_error", "").startswith("TLS")
                                  else None)(host.health()), 8,
                         msg="/healthz to report the TLS refusal")
    assert body["mqtt"] == "disconnected"
    wait_until(lambda: (metric(host, "oh_mqtt_reconnects_total") or 0) >= 1, 8,
               msg="a retry")
    assert host.health()[1]["mqtt"] == "disconnected"


def test_bad_password_is_reported_not_looped_silently(tls_broker, make_host, pki):
    wrong = "wrong-" + PASSWORD
    host = make_host(tls_config(tls_broker, tls_broker.tls_port, pki["ca"]),
                     env={"OH_MQTT_USERNAME": USER, "OH_MQTT_PASSWORD": wrong})
    _, body = wait_until(lambda: (lambda r: r if "refused" in r[1].get("mqtt_error", "")
                                  else None)(host.health()), 5,
                         msg="/healthz to report the refusal")
    assert re.search(r"not authori[sz]ed|bad user name or password", body["mqtt_error"], re.I), body
    wait_until(lambda: (metric(host, "oh_mqtt_reconnects_total") or 0) >= 2, 8,
               msg="two reconnection attempts")
    lines = [l for l in host.log().splitlines() if "broker refused connection" in l]
    assert len(lines) == 1, lines
    assert "warn" in lines[0]
    for secret in (wrong, PASSWORD):
        assert secret not in host.log()
        for path in ("/healthz", "/api/plugins", "/metrics", "/openapi.json"):
            assert secret not in host.request("GET", path)[2]


def test_no_credentials_on_password_listener(tls_broker, make_host, pki):
    host = make_host(tls_config(tls_broker, tls_broker.tls_port, pki["ca"]))
    wait_until(lambda: "refused" in host.health()[1].get("mqtt_error", ""), 5,
               msg="/healthz to report the refusal")


class StalledListener:
    """A TCP forwarder whose accept queue is full for `stall` seconds, so a
    client's connect() stays in progress (EINPROGRESS) as with a broker
    that is not on loopback."""

    def __init__(self, target_port, stall=2.0):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind((LOCALHOST, 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(2):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect((LOCALHOST, self.port))
            except BlockingIOError:
                pass
            self.fillers.append(s)
        self.stall = stall
        self.closed = False
        threading.Thread(target=self._run, daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _run(self):
        time.sleep(self.stall)    # a slow proxy on purpose: it accepts nothing for a while
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection((LOCALHOST, self.target))
            except OSError:
                c.close()
                continue
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    def close(self):
        self.closed = True
        self.sock.close()
        for s in self.fillers:
            s.close()


def test_tls_handshake_after_a_slow_tcp_connect(tls_broker, make_host, pki):
    """Regression: with the TCP connect still in progress the first TLS
    record cannot be written, and libmosquitto's loop_write does not step the
    handshake; the link must drive it from writability too."""
    stalled = StalledListener(tls_broker.tls_port)
    try:
        host = make_host(tls_config(tls_broker, stalled.port, pki["ca"]),
                         env={"OH_MQTT_USERNAME": USER, "OH_MQTT_PASSWORD": PASSWORD})
        host.wait_connected(timeout=15)
    finally:
        stalled.close()
