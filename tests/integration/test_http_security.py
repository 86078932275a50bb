"""
HTTP security: API tokens and roles, the actor a command is sent as, the
loopback-only rule without tokens, security headers, CORS, request limits,
slow clients, HTTPS and the tokens file.

Every connection goes to 127.0.0.1, also when the host binds 0.0.0.0.
"""

import hashlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from harness import LOCALHOST, free_port, unique_name, wait_until

TOKENS = {
    # name: (token, role)
    "alice": ("viewer-secret-1", "viewer"),
    "bob": ("operator-secret-2", "operator"),
    "carol": ("operator-secret-3", "operator"),
    "root": ("admin-secret-4", "admin"),
}


def sha(token):
    return hashlib.sha256(token.encode()).hexdigest()


def token_entries(names=None):
    return [{"name": n, "role": TOKENS[n][1], "sha256": sha(TOKENS[n][0])}
            for n in (names or TOKENS)]


def auth(name):
    return {"Authorization": "Bearer " + TOKENS[name][0]}


def call(host, method, path, name=None, body=None, headers=None, raw=None):
    """(status, headers, parsed JSON or text) with the named token (or none)."""
    hdrs = dict(headers or {})
    if name:
        hdrs.update(auth(name))
    st, h, text = host.request(method, path, body=body, raw=raw, headers=hdrs)
    try:
        return st, h, json.loads(text)
    except ValueError:
        return st, h, text


def assert_error(status, body, expect_status, code):
    assert status == expect_status, (status, body)
    assert isinstance(body, dict) and body["error"]["code"] == code, body
    assert body["error"]["message"], body


def routes_of(host):
    st, _, doc = call(host, "GET", "/openapi.json")
    assert st == 200, doc
    return doc["paths"]


@pytest.fixture
def secured(make_host):
    """A host with the four tokens configured in the main config."""
    host = make_host({"http": {"tokens": token_entries()}})
    host.wait_connected()
    return host


JOB = {"cron": "0 3 * * *", "commands": [{"device_id": "rpi-01", "action": "stop"}]}


# ---- tokens and roles -----------------------------------------------------------


def test_no_token_is_401_with_www_authenticate(secured):
    for path in ("/api/registry", "/api/plugins", "/api/devices/x", "/api/no/such/route"):
        st, h, body = call(secured, "GET", path)
        assert_error(st, body, 401, "UNAUTHORIZED")
        assert h["WWW-Authenticate"].startswith("Bearer"), dict(h)
    st, h, body = call(secured, "POST", "/api/ndi/jobs", body=JOB)
    assert_error(st, body, 401, "UNAUTHORIZED")


def test_bad_token_is_401(secured):
    for hdr in ("Bearer nope", "Bearer " + sha(TOKENS["root"][0]), "Basic YWxpY2U6eA==",
                "Bearer ", TOKENS["root"][0]):
        st, h, body = call(secured, "GET", "/api/registry", headers={"Authorization": hdr})
        assert_error(st, body, 401, "UNAUTHORIZED")
        assert "Bearer" in h["WWW-Authenticate"]
    st, h, _ = call(secured, "GET", "/api/registry", headers={"Authorization": "Bearer nope"})
    assert 'error="invalid_token"' in h["WWW-Authenticate"]
    assert "invalid API token" in secured.log()
    assert TOKENS["root"][0] not in secured.log()


def test_public_paths_need_no_token(secured):
    st, _, body = call(secured, "GET", "/healthz")
    assert st == 200 and body["mqtt"] == "connected", body
    for path in ("/", "/openapi.json", "/ui/devices", "/static/app.js", "/docs"):
        st, _, _ = call(secured, "GET", path)
        assert st == 200, path


def test_viewer_reads_but_cannot_write(secured):
    st, _, body = call(secured, "GET", "/api/registry", "alice")
    assert st == 200 and "devices" in body, body
    st, _, body = call(secured, "HEAD", "/api/registry", "alice")
    assert st == 200
    st, _, body = call(secured, "POST", "/api/ndi/jobs", "alice", body=JOB)
    assert_error(st, body, 403, "FORBIDDEN")
    assert "operator" in body["error"]["message"] and "alice" in body["error"]["message"], body
    assert "role too low" in secured.log()


def test_operator_writes_and_owns_what_it_creates(secured):
    # The body's actor is the client's claim; the token's name wins.
    st, _, job = call(secured, "POST", "/api/ndi/jobs", "bob", body=dict(JOB, actor="mallory"))
    assert st == 201, job
    assert job["owner"] == "bob", job
    st, _, body = call(secured, "GET", "/api/ndi/jobs/" + job["id"], "alice")
    assert st == 200 and body["owner"] == "bob"


def test_deleting_another_owners_job_needs_admin(secured):
    st, _, job = call(secured, "POST", "/api/ndi/jobs", "bob", body=JOB)
    assert st == 201, job
    path = "/api/ndi/jobs/" + job["id"]
    st, _, body = call(secured, "DELETE", path, "alice")
    assert_error(st, body, 403, "FORBIDDEN")
    st, _, body = call(secured, "DELETE", path, "carol")
    assert st == 403, body
    st, _, body = call(secured, "DELETE", path, "root")
    assert st == 200 and body["deleted"] is True, body
    # and one's own job needs no admin
    st, _, job = call(secured, "POST", "/api/ndi/jobs", "carol", body=JOB)
    st, _, body = call(secured, "DELETE", "/api/ndi/jobs/" + job["id"], "carol")
    assert st == 200, body


def test_unloading_a_plugin_needs_admin(secured):
    st, _, body = call(secured, "DELETE", "/api/plugins/ndi", "bob")
    assert_error(st, body, 403, "FORBIDDEN")
    assert "admin" in body["error"]["message"], body
    st, _, body = call(secured, "DELETE", "/api/plugins/ndi", "root")
    assert st == 200, body


def test_force_release_needs_admin(secured, mqtt):
    assert "/api/ndi/force_release" in routes_of(secured)
    dev = unique_name("dev")
    mqtt.publish("/lab/device/%s/meta" % dev, {"modules": ["ndi"]}, retain=True)
    mqtt.publish("/lab/device/%s/status" % dev, {"online": True}, retain=True)
    wait_until(lambda: call(secured, "GET", "/api/devices/" + dev, "alice")[0] == 200,
               msg="the device in the registry")
    st, _, body = call(secured, "POST", "/api/ndi/reserve", "bob", body={"device_id": dev})
    assert st == 200, body
    st, _, body = call(secured, "POST", "/api/ndi/force_release", "carol", body={"device_id": dev})
    assert_error(st, body, 403, "FORBIDDEN")
    st, _, body = call(secured, "POST", "/api/ndi/force_release", "root", body={"device_id": dev})
    assert st == 200, body


def test_events_take_the_token_from_the_query(secured):
    st, _, body = call(secured, "GET", "/api/events")
    assert_error(st, body, 401, "UNAUTHORIZED")
    st, _, body = call(secured, "GET", "/api/events?access_token=wrong")
    assert_error(st, body, 401, "UNAUTHORIZED")
    # only /api/events reads the query: other paths need the header
    st, _, body = call(secured, "GET", "/api/registry?access_token=" + TOKENS["alice"][0])
    assert_error(st, body, 401, "UNAUTHORIZED")
    conn = http.client.HTTPConnection(LOCALHOST, secured.http_port, timeout=5)
    try:
        conn.request("GET", "/api/events?access_token=" + TOKENS["alice"][0])
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type", "").startswith("text/event-stream")
    finally:
        conn.close()


def test_actor_of_a_sent_command_is_the_token_name(secured, mqtt):
    assert "/api/ndi/send" in routes_of(secured)
    dev = unique_name("dev")
    mqtt.subscribe("/lab/device/%s/ndi/cmd" % dev)
    mqtt.publish("/lab/device/%s/meta" % dev, {"modules": ["ndi"]}, retain=True)
    mqtt.publish("/lab/device/%s/status" % dev, {"online": True}, retain=True)
    wait_until(lambda: call(secured, "GET", "/api/devices/" + dev, "alice")[0] == 200,
               msg="the device in the registry")
    st, _, body = call(secured, "POST", "/api/ndi/send", "bob",
                       body={"device_id": dev, "action": "stop", "actor": "mallory"})
    assert st in (200, 202), body
    msg = mqtt.wait_for("/lab/device/%s/ndi/cmd" % dev)
    env = msg["payload"]
    assert env["requested_by"] == "bob", env
    assert "mallory" not in msg["raw"].decode(), env


# ---- no tokens: loopback only ---------------------------------------------------------


def test_without_tokens_loopback_only_and_says_so(make_host):
    host = make_host()
    host.wait_connected()
    st, _, body = call(host, "DELETE", "/api/ndi/jobs/none")
    assert st == 404, body   # reaches the handler: no auth
    wait_until(lambda: "no API tokens configured" in host.log() and "loopback only" in host.log(),
               msg="the startup warning")


def test_non_loopback_bind_without_tokens_is_refused(make_host):
    host = make_host({"http": {"bind": "0.0.0.0"}}, start=False)
    cp = host.run(["--config", host.config_path, "--check-config"])
    assert cp.returncode != 0
    assert "http.allow_unauthenticated" in cp.stderr and "0.0.0.0" in cp.stderr, cp.stderr
    host.start(wait=False)
    assert host.wait_exit(10) != 0
    assert "http.allow_unauthenticated" in host.log()


def test_non_loopback_bind_allowed_explicitly(make_host):
    host = make_host({"http": {"bind": "0.0.0.0", "allow_unauthenticated": True}})
    st, _, _ = call(host, "GET", "/api/registry")   # via 127.0.0.1
    assert st == 200
    assert "WITHOUT authentication" in host.log()


def test_non_loopback_bind_with_tokens_needs_no_flag(make_host):
    host = make_host({"http": {"bind": "0.0.0.0", "tokens": token_entries(["alice"])}})
    assert call(host, "GET", "/api/registry")[0] == 401
    assert call(host, "GET", "/api/registry", "alice")[0] == 200
    assert "clear text" in host.log()


# ---- security headers -------------------------------------------------------------------


def assert_security_headers(h, what):
    csp = h.get("Content-Security-Policy", "")
    assert csp, what
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, (what, csp)
    assert h.get("X-Content-Type-Options") == "nosniff", what
    assert h.get("Referrer-Policy"), what


def test_security_headers_on_every_kind_of_response(secured):
    cases = [
        ("GET", "/api/registry", "alice", 200),          # JSON
        ("GET", "/", None, 200),                          # HTML
        ("GET", "/static/app.js", None, 200),             # JS
        ("GET", "/no/such/page", None, 404),
        ("POST", "/healthz", None, 405),
        ("GET", "/api/registry", None, 401),
        ("POST", "/api/ndi/jobs", "alice", 403),
        ("GET", "/healthz", None, 200),
    ]
    for method, path, name, status in cases:
        st, h, _ = call(secured, method, path, name, body={} if method == "POST" else None)
        assert st == status, (method, path, st)
        assert_security_headers(h, "%s %s" % (method, path))
        assert "Access-Control-Allow-Origin" not in h, (method, path)


# ---- CORS ----------------------------------------------------------------------------------


ORIGIN = "https://ui.example.org"


def test_no_cors_headers_unless_configured(make_host):
    host = make_host()
    st, h, _ = call(host, "GET", "/api/registry", headers={"Origin": ORIGIN})
    assert st == 200
    assert not any(k.lower().startswith("access-control-") for k in h.keys()), dict(h)
    st, h, body = call(host, "OPTIONS", "/api/registry",
                       headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert_error(st, body, 405, "METHOD_NOT_ALLOWED")
    assert "Access-Control-Allow-Origin" not in h


def test_cors_for_listed_origins_only(make_host):
    host = make_host({"http": {"cors_origins": [ORIGIN, "http://127.0.0.1:9999"],
                               "tokens": token_entries(["alice", "bob"])}})
    st, h, _ = call(host, "GET", "/api/registry", "alice", headers={"Origin": ORIGIN})
    assert st == 200
    assert h["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in h["Vary"]
    st, h, _ = call(host, "GET", "/api/registry", "alice", headers={"Origin": "https://evil.example"})
    assert st == 200
    assert "Access-Control-Allow-Origin" not in h
    # A 401 still names the origin, so the page can read the error.
    st, h, _ = call(host, "GET", "/api/registry", headers={"Origin": ORIGIN})
    assert st == 401 and h["Access-Control-Allow-Origin"] == ORIGIN

    # Preflight: no credentials are sent on it, so it needs no token.
    st, h, _ = call(host, "OPTIONS", "/api/ndi/jobs",
                    headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                             "Access-Control-Request-Headers": "authorization, content-type"})
    assert st == 204
    assert h["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in h["Access-Control-Allow-Methods"]
    allowed = h["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert_security_headers(h, "preflight")
    st, h, body = call(host, "OPTIONS", "/api/ndi/jobs",
                       headers={"Origin": "https://evil.example",
                                "Access-Control-Request-Method": "POST"})
    assert_error(st, body, 405, "METHOD_NOT_ALLOWED")
    assert "Access-Control-Allow-Origin" not in h


def test_cors_origins_are_validated(make_host):
    for bad in (["*"], ["https://x.example/path"], [""], [3]):
        host = make_host({"http": {"cors_origins": bad}}, start=False)
        cp = host.run(["--config", host.config_path, "--check-config"])
        assert cp.returncode != 0 and "http.cors_origins" in cp.stderr, (bad, cp.stderr)


# ---- limits and slow clients ------------------------------------------------------------------


def raw_exchange(port, data, timeout=5):
    """Sends data and returns what the server answered before closing."""
    with socket.create_connection((LOCALHOST, port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b"Connection: close" not in out and len(out) > 12:
                    # keep-alive answer: enough for the status
                    break
        except (ConnectionResetError, socket.timeout):
            pass
        return out


def test_oversized_headers_are_refused(secured):
    big = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n"
    out = raw_exchange(secured.http_port, big)
    status = int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.") else None
    assert status in (None, 413, 414, 431), out[:200]
    long_url = b"GET /api/" + b"x" * 100000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    out = raw_exchange(secured.http_port, long_url)
    status = int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.") else None
    assert status in (None, 413, 414, 431), out[:200]
    assert secured.running()
    assert call(secured, "GET", "/healthz")[0] == 200


def test_oversized_body_is_refused(secured):
    st, _, body = call(secured, "POST", "/api/ndi/jobs", "bob", raw=b"x" * 70000,
                       headers={"Content-Type": "application/json"})
    assert_error(st, body, 413, "TOO_LARGE")


def test_slow_client_is_cut_off(make_host):
    host = make_host({"http": {"request_timeout_s": 1}})
    host.wait_connected()       # the /healthz 200 at the end needs the broker
    with socket.create_connection((LOCALHOST, host.http_port), timeout=10) as s:
        s.sendall(b"GET /api/registry HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        t0 = time.monotonic()
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        elapsed = time.monotonic() - t0
    assert data == b"" or data.startswith(b"HTTP/1.1 4"), data
    assert 0.5 < elapsed < 5, elapsed
    # an idle keep-alive connection goes the same way, and the host carries on
    with socket.create_connection((LOCALHOST, host.http_port), timeout=10) as s:
        t0 = time.monotonic()
        assert s.recv(4096) == b""
        assert time.monotonic() - t0 < 5
    assert call(host, "GET", "/healthz")[0] == 200


def trickle(port, head, body=b"", every=0.2, limit=8.0):
    """Sends head at once, then body a byte at a time; returns how long the
    server let that go on before closing the connection."""
    with socket.create_connection((LOCALHOST, port), timeout=10) as s:
        s.sendall(head)
        s.setblocking(False)
        t0 = time.monotonic()
        for b in body:
            try:
                s.send(bytes([b]))
                if s.recv(4096) == b"":
                    break
            except BlockingIOError:
                pass
            except OSError:
                break
            if time.monotonic() - t0 > limit:
                break
            time.sleep(every)    # the slow client's pace, on purpose
        return time.monotonic() - t0


def test_client_trickling_its_headers_is_cut_off(make_host):
    # Each byte resets an idle timer; the request as a whole must still
    # arrive within request_timeout_s.
    host = make_host({"http": {"request_timeout_s": 1}})
    host.wait_connected()       # the /healthz 200 at the end needs the broker
    took = trickle(host.http_port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
                   body=b"a" * 100)
    assert took < 4, "a trickling client kept its connection for %.1f s" % took
    assert call(host, "GET", "/healthz")[0] == 200


def test_client_trickling_its_body_is_cut_off(make_host):
    host = make_host({"http": {"request_timeout_s": 1}})
    host.wait_connected()       # the /healthz 200 at the end needs the broker
    took = trickle(host.http_port, b"POST /api/ndi/reserve HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
                   body=b" " * 100)
    assert took < 4, "a trickling body kept its connection for %.1f s" % took
    assert call(host, "GET", "/healthz")[0] == 200


def test_event_stream_outlives_the_request_timeout(make_host, mqtt):
    host = make_host({"http": {"request_timeout_s": 1}})
    host.wait_connected()       # the registry change below must reach it
    with socket.create_connection((LOCALHOST, host.http_port), timeout=5) as s:
        s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        # An idle connection opened after the stream: once the server has cut
        # it at the request timeout, the stream's would have passed as well.
        with socket.create_connection((LOCALHOST, host.http_port), timeout=10) as idle:
            try:
                assert idle.recv(4096) == b"", "the idle connection got data"
            except ConnectionResetError:
                pass
        # Still delivering: a registry change after the timeout arrives.
        mqtt.publish("/lab/device/late-dev/meta", {"modules": []}, retain=True)
        got = b""
        deadline = time.monotonic() + 5
        while b"late-dev" not in got and time.monotonic() < deadline:
            chunk = s.recv(65536)
            assert chunk, "the stream was closed"
            got += chunk
        assert b"late-dev" in got


# ---- HTTPS ------------------------------------------------------------------------------------


def make_cert(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-days", "2",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


def https_get(port, path, ctx, headers=None):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=ctx))
    req = urllib.request.Request("https://%s:%d%s" % (LOCALHOST, port, path), headers=headers or {})
    try:
        with opener.open(req, timeout=5) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read().decode()


def test_https_with_a_self_signed_cert(make_host, tmp_path):
    cert, key = make_cert(tmp_path)
    host = make_host({"http": {"tls": {"cert_file": cert, "key_file": key},
                               "tokens": token_entries(["alice"])}}, wait=False)
    ctx = ssl.create_default_context(cafile=cert)
    status = wait_until(lambda: https_get(host.http_port, "/healthz", ctx)[0], timeout=10,
                        msg="HTTPS /healthz")
    assert status in (200, 503)
    st, h, _ = https_get(host.http_port, "/api/registry", ctx, auth("alice"))
    assert st == 200
    assert_security_headers(h, "https")
    st, _, _ = https_get(host.http_port, "/api/registry", ctx)
    assert st == 401
    assert "https://" in host.log()
    # a client that does not trust the cert is refused
    with pytest.raises(urllib.error.URLError):
        https_get(host.http_port, "/healthz", ssl.create_default_context())
    # and plain HTTP gets no answer
    with pytest.raises((ConnectionError, OSError, http.client.HTTPException)):
        c = http.client.HTTPConnection(LOCALHOST, host.http_port, timeout=3)
        try:
            c.request("GET", "/healthz")
            r = c.getresponse()
            assert r.status != 200
        finally:
            c.close()


def test_tls_config_errors_name_the_key(make_host, tmp_path):
    cert, key = make_cert(tmp_path)
    cases = [
        ({"cert_file": cert}, "http.tls.key_file"),
        ({"key_file": key}, "http.tls.cert_file"),
        ({"cert_file": str(tmp_path / "missing.pem"), "key_file": key}, "http.tls.cert_file"),
        ({"cert_file": cert, "key_file": str(tmp_path / "missing.pem")}, "http.tls.key_file"),
        ({"cert_file": cert, "key_file": key, "ciphers": "x"}, "http.tls.ciphers"),
    ]
    for tls, key_name in cases:
        host = make_host({"http": {"tls": tls}}, start=False)
        cp = host.run(["--config", host.config_path, "--check-config"])
        assert cp.returncode != 0 and key_name in cp.stderr, (tls, cp.stderr)


# ---- token configuration ------------------------------------------------------------------------


def test_tokens_file(make_host, tmp_path):
    f = tmp_path / "tokens.json"
    f.write_text(json.dumps(token_entries(["alice", "root"])))
    host = make_host({"http": {"tokens_file": str(f), "tokens": token_entries(["bob"])}})
    assert call(host, "GET", "/api/registry")[0] == 401
    assert call(host, "GET", "/api/registry", "alice")[0] == 200
    assert call(host, "POST", "/api/ndi/jobs", "bob", body=JOB)[0] == 201
    assert call(host, "DELETE", "/api/plugins/ndi", "root")[0] == 200
    assert call(host, "GET", "/api/registry", "carol")[0] == 401


def test_bad_token_config_is_refused(make_host, tmp_path):
    ok = token_entries(["alice"])[0]
    cases = [
        ([{"name": "x", "role": "admin", "token": "s3cret"}], "sha256sum"),
        ([dict(ok, role="root")], "role"),
        ([dict(ok, name="has space")], "name"),
        ([dict(ok, name="")], "name"),
        ([dict(ok, name="x" * 65)], "name"),
        ([dict(ok, sha256="abc")], "sha256"),
        ([dict(ok, sha256="z" * 64)], "sha256"),
        ([ok, dict(ok, sha256=sha("other"))], "twice"),
        ([ok, dict(ok, name="alice2")], "same token"),
        ([dict(ok, extra=1)], "extra"),
        ("not a list", "http.tokens"),
    ]
    for tokens, needle in cases:
        host = make_host({"http": {"tokens": tokens}}, start=False)
        cp = host.run(["--config", host.config_path, "--check-config"])
        assert cp.returncode != 0, tokens
        assert "http.tokens" in cp.stderr and needle in cp.stderr, (tokens, cp.stderr)
    # the tokens file: missing, not JSON, a duplicate of the main config's
    missing = tmp_path / "nope.json"
    notjson = tmp_path / "bad.json"
    notjson.write_text("[{")
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps([ok]))
    for path, extra in ((missing, {}), (notjson, {}), (dup, {"tokens": [ok]})):
        host = make_host({"http": dict(extra, tokens_file=str(path))}, start=False)
        cp = host.run(["--config", host.config_path, "--check-config"])
        assert cp.returncode != 0 and "http.tokens_file" in cp.stderr, cp.stderr
    # a valid file passes the check
    good = tmp_path / "good.json"
    good.write_text(json.dumps(token_entries()))
    host = make_host({"http": {"tokens_file": str(good)}}, start=False)
    cp = host.run(["--config", host.config_path, "--check-config"])
    assert cp.returncode == 0, cp.stderr


# ---- the UI with tokens ----------------------------------------------------------------------------


def test_browser_token_entry(make_host, browser):
    host = make_host({"http": {"tokens": token_entries(["alice"])}})
    host.wait_connected()
    b = browser
    b.open(host.url("/ui/devices"))
    # Refused without a token, and the page says so and offers the form.
    b.wait_for_text("#auth-msg", "401")
    assert b.js("return document.getElementById('token-form').hidden;") is False
    b.type("#token-input", TOKENS["alice"][0])
    b.js("document.getElementById('token-form').requestSubmit();")
    b.wait_until(lambda: b.attr("#live-state", "data-state") == "open",
                 msg="the event stream with the token")
    assert b.js("return sessionStorage.getItem('oh.api_token');") == TOKENS["alice"][0]
    assert b.js("return document.getElementById('auth-msg').hidden;") is True
    # A write the role may not do is shown as a 403, naming the role.
    b.js("OH.postJSON('/api/ndi/jobs', {}).catch(function () {});")
    b.wait_for_text("#auth-msg", "403")
    assert "operator" in b.text("#auth-msg")
    # The NDI page acts in the token's name: its "acting as" field is off.
    b.open(host.url("/ui/ndi"))
    b.wait_until(lambda: b.js("return document.getElementById('ndi-actor').disabled;"),
                 msg="the actor field disabled under tokens")
    problems = [p for p in b.problems() if " 401 " not in p and " 403 " not in p
                and "(Unauthorized)" not in p and "(Forbidden)" not in p]
    assert not problems, problems


def test_healthz_says_whether_tokens_are_required(make_host):
    host = make_host()
    assert host.get("/healthz")[1]["auth"] == "none"
    host = make_host({"http": {"tokens": token_entries(["alice"])}})
    assert host.get("/healthz")[1]["auth"] == "tokens"
