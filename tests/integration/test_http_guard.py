"""
The checks made before routing and authentication (src/core/http_guard.c):
canonical paths, the Host header, and state-changing requests forged by
pages on other sites.

Requests are sent with http.client and the path exactly as written (the way
`curl --path-as-is` does), so nothing on the client side tidies them up.
"""

import hashlib
import http.client
import json
import re

import pytest

from harness import LOCALHOST, wait_until

ADMIN_TOKEN = "guard-admin-secret"
TOKENS = [{"name": "root", "role": "admin",
           "sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()}]
ADMIN = {"Authorization": "Bearer " + ADMIN_TOKEN}


def send(host, method, path, headers=None, body=None, host_header=None):
    """(status, parsed JSON or text); the path goes out byte for byte."""
    conn = http.client.HTTPConnection(LOCALHOST, host.http_port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host_header if host_header is not None
                       else "%s:%d" % (LOCALHOST, host.http_port))
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            conn.putheader("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders(data)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
    finally:
        conn.close()
    try:
        return resp.status, json.loads(text)
    except ValueError:
        return resp.status, text


def error_code(body):
    return body["error"]["code"] if isinstance(body, dict) and "error" in body else None


def mangled(path):
    """Every non-canonical spelling of path we know a parser to disagree on."""
    rest = path[1:]
    first, _, tail = rest.partition("/")
    forms = [
        "//" + rest,
        "///" + rest,
        "/%2F" + rest,
        "/%2f" + rest,
        "/" + first + "//" + tail if tail else path + "//x",
        "/" + first + "/%2F" + tail if tail else path + "%2F",
        path + "%00",
        path + "%00.json",
        "/./" + rest,
        "/%2e/" + rest,
        "/x/../" + rest,
        "/x/%2E%2E/" + rest,
        path + "/..",
        path + "/.",
        "/" + first + "/./" + tail if tail else path + "/./",
        path + "%5C",
        "/" + first + "\\" + tail,
        path + "%zz",
        path + "%0a",
    ]
    return forms


def concrete(path):
    return re.sub(r"\{[^}]+\}", "x1", path)


@pytest.fixture
def secured(make_host):
    host = make_host({"http": {"tokens": TOKENS}})
    host.wait_connected()
    return host


def test_mangled_paths_are_refused_on_every_route(secured):
    st, doc = send(secured, "GET", "/openapi.json")
    assert st == 200
    routes = [(m.upper(), concrete(p)) for p, item in doc["paths"].items() for m in item]
    assert len(routes) > 15, routes
    for method, path in routes + [("GET", "/metrics"), ("GET", "/api/events")]:
        for bad in mangled(path):
            for headers in ({}, ADMIN):
                hdrs = dict(headers)
                if method in ("POST", "PUT", "PATCH", "DELETE"):
                    hdrs["Content-Type"] = "application/json"
                st, body = send(secured, method, bad, headers=hdrs,
                                body={} if method in ("POST", "PUT", "PATCH") else None)
                assert (st, error_code(body)) == (400, "BAD_PATH"), (method, bad, st, body)
    # Nothing the walk sent took effect: the plugin is still loaded.
    st, body = send(secured, "GET", "/api/plugins", headers=ADMIN)
    assert st == 200 and "ndi" in json.dumps(body), body


def test_the_walk_around_the_tokens_is_closed(secured):
    # The reported bypasses, one by one.
    for path in ("//api/registry", "///api/registry", "/%2Fapi/registry", "//metrics",
                 "//api/events", "/api/registry%00"):
        st, body = send(secured, "GET", path)
        assert st == 400 and error_code(body) == "BAD_PATH", (path, st, body)
    st, body = send(secured, "DELETE", "//api/plugins/ndi")
    assert st == 400, body
    st, body = send(secured, "POST", "//api/ndi/force_release",
                    headers={"Content-Type": "application/json"},
                    body={"device_id": "rpi-01", "actor": "mallory"})
    assert st == 400, body
    # A canonical spelling with harmless escapes is one string for auth and
    # router alike: it needs the token like the plain one.
    st, body = send(secured, "GET", "/%61pi/registry")
    assert st == 401 and error_code(body) == "UNAUTHORIZED", body
    st, body = send(secured, "GET", "/%61pi/registry", headers=ADMIN)
    assert st == 200 and "devices" in body, body
    st, body = send(secured, "GET", "/api/plugins", headers=ADMIN)
    assert st == 200 and "ndi" in json.dumps(body), body


def test_host_header_must_name_the_host(make_host):
    host = make_host({"http": {"allowed_hosts": ["lab-pc.example.org", ".studio.example"]}})
    port = host.http_port
    paths = ["/", "/ui/ndi", "/healthz", "/api/registry", "/api/events", "/openapi.json",
             "/static/app.js", "/metrics", "/nowhere"]
    for bad in ("evil.example", "evil.example:%d" % port, "127.0.0.1.evil.example",
                "localhost.evil.example", "studio.example.evil", "", "a b", "[::2]:%d" % port,
                "127.0.0.1:abc", "lab-pc.example.org@evil.example"):
        for path in paths:
            st, body = send(host, "GET", path, host_header=bad)
            assert st == 400, (bad, path, st, body)
            if bad:   # an empty Host is refused by libmicrohttpd itself
                assert error_code(body) in ("BAD_HOST",), (bad, path, body)
    good = ["127.0.0.1", "127.0.0.1:%d" % port, "localhost:%d" % port, "LOCALHOST",
            "[::1]:%d" % port, "lab-pc.example.org", "Lab-PC.example.org.:%d" % port,
            "studio.example", "cam.studio.example:%d" % port, "app.localhost"]
    for name in good:
        st, body = send(host, "GET", "/api/registry", host_header=name)
        assert st == 200, (name, st, body)
    # An event stream answers its headers once the Host is right.
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=5)
    conn.request("GET", "/api/events", headers={"Host": "localhost"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
    conn.close()


def test_allowed_hosts_is_validated(make_host):
    for bad in (["http://lab-pc"], ["lab-pc:8080"], ["lab-pc/x"], [""], [5], "lab-pc"):
        host = make_host({"http": {"allowed_hosts": bad}}, start=False)
        cp = host.run(["--config", host.config_path, "--check-config"])
        assert cp.returncode != 0 and "http.allowed_hosts" in cp.stderr, (bad, cp.stderr)


SEND = {"device_id": "rpi-01", "action": "stop", "actor": "alice"}


def test_cross_site_requests_cannot_drive_the_host(make_host, mqtt):
    """No tokens (the default): a page on another site must not be able to
    start, stop or record devices."""
    host = make_host({"http": {"cors_origins": ["https://ui.example.org"]}})
    host.wait_connected()
    mqtt.publish("/lab/device/rpi-01/meta", {"modules": ["ndi"]}, retain=True)
    mqtt.publish("/lab/device/rpi-01/status", {"online": True}, retain=True)
    wait_until(lambda: send(host, "GET", "/api/devices/rpi-01")[0] == 200, 5,
               msg="rpi-01 in the registry")
    mqtt.subscribe("/lab/device/+/ndi/cmd")
    own = "http://%s:%d" % (LOCALHOST, host.http_port)
    refused = [
        # (headers, raw body, status, code)
        ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, None, 403,
         "CROSS_ORIGIN"),
        ({"Origin": "http://evil.example", "Content-Type": "application/json"}, None, 403,
         "CROSS_ORIGIN"),
        ({"Origin": "null", "Content-Type": "application/json"}, None, 403, "CROSS_ORIGIN"),
        ({"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, None, 403,
         "CROSS_ORIGIN"),
        ({"Content-Type": "text/plain"}, None, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, None, 415,
         "UNSUPPORTED_MEDIA_TYPE"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, None, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ({"Content-Type": "application/jsonp"}, None, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ({}, None, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ]
    for headers, raw, status, code in refused:
        st, body = send(host, "POST", "/api/ndi/send", headers=headers, body=raw or SEND)
        assert (st, error_code(body)) == (status, code), (headers, st, body)
    for method, path in (("DELETE", "/api/plugins/ndi"), ("POST", "/api/ndi/force_release"),
                         ("POST", "/api/ndi/jobs")):
        st, body = send(host, method, path, headers={"Origin": "http://evil.example",
                                                     "Content-Type": "application/json"},
                        body={} if method == "POST" else None)
        assert (st, error_code(body)) == (403, "CROSS_ORIGIN"), (method, path, st, body)
    # Reads stay open (CORS keeps their answers from other sites).
    st, _ = send(host, "GET", "/api/registry", headers={"Origin": "http://evil.example"})
    assert st == 200
    # Our own page, a listed origin, and tools that send no Origin get through.
    mark = mqtt.mark()
    allowed = [
        {"Origin": own, "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "https://ui.example.org", "Content-Type": "application/json",
         "Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "application/json; charset=utf-8"},
    ]
    for i, headers in enumerate(allowed):
        body = dict(SEND, actor="allowed-%d" % i)
        st, reply = send(host, "POST", "/api/ndi/send", headers=headers, body=body)
        assert st == 202, (headers, st, reply)
        mqtt.wait_for("/lab/device/rpi-01/ndi/cmd",
                      lambda m, i=i: m["payload"].get("requested_by") == "allowed-%d" % i, since=mark)
    # Every command that reached the device is one of the allowed ones.
    actors = [m["payload"].get("requested_by") for m in mqtt.messages("/lab/device/+/ndi/cmd", since=0)]
    assert sorted(actors) == ["allowed-0", "allowed-1", "allowed-2"], actors
    # The plugin the forged DELETE aimed at is still there.
    st, body = send(host, "GET", "/api/plugins")
    assert st == 200 and "ndi" in json.dumps(body)


def test_preflight_from_an_unlisted_origin_is_405(secured):
    st, body = send(secured, "OPTIONS", "/api/ndi/send",
                    headers={"Origin": "http://evil.example",
                             "Access-Control-Request-Method": "POST"})
    assert (st, error_code(body)) == (405, "METHOD_NOT_ALLOWED"), (st, body)


def test_truncated_requests_leave_nothing_behind(secured):
    """A request line then a hang-up: the context made for it is freed (the
    ASan build's leak check at exit fails the test otherwise)."""
    import socket
    for line in (b"GET //api/registry HTTP/1.1\r\n", b"GET /api/registry HTTP/1.1\r\nHost: x"):
        s = socket.create_connection((LOCALHOST, secured.http_port))
        s.sendall(line)
        s.close()
    wait_until(lambda: send(secured, "GET", "/healthz")[0] == 200, 5)
