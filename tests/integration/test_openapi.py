"""
/openapi.json against the host that serves it (src/core/http_openapi.c).

- The live document passes swagger-parser's validate and Redocly's
  recommended lint rules with no error and no warning (tests/openapi: the
  npm packages pinned by package-lock.json, and redocly.yaml, which says why
  a rule is off).
- Every response of every route has a schema, and the document has every
  route the sources register (read from the C registration tables).
- Every route is called, each with inputs that succeed and inputs that fail
  in every way the server tells apart (400, 401, 403, 404, 405, 409, 413,
  415, 429, 503, 507, ...), and each reply must be a status the document
  declares for that operation, of a declared media type, and a JSON body
  must validate against the declared schema (python3-jsonschema, $refs
  resolved in the document).  A route nobody calls fails the test.
- /docs shows the bearer scheme and sends a call with the token.
"""

import copy
import fcntl
import hashlib
import http.client
import json
import os
import re
import subprocess
import threading
import time

import jsonschema
import pytest

from harness import BUILD_DIR, LOCALHOST, SOURCE_DIR, wait_until

TOOLS = os.path.join(SOURCE_DIR, "tests", "openapi")

TOKENS = {"root": ("admin", "root-secret"), "alice": ("operator", "alice-secret"),
          "bob": ("operator", "bob-secret"), "vic": ("viewer", "vic-secret")}
MAX_BODY = 4096


def token_config():
    return [{"name": name, "role": role, "sha256": hashlib.sha256(secret.encode()).hexdigest()}
            for name, (role, secret) in TOKENS.items()]


def auth(name):
    return {"Authorization": "Bearer " + TOKENS[name][1]}


# ---- the npm tools ------------------------------------------------------------


def openapi_tools():
    """tests/openapi/node_modules, installed by `npm ci` when missing (make test
    does it beforehand, in scripts/install-deps.sh).  Both trees' suites may
    get here at once: one installs, the other waits on the lock."""
    with open(os.path.join(TOOLS, "package-lock.json")) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = os.path.join(TOOLS, "node_modules", ".package-lock.json")
        lock_file = os.path.join(TOOLS, "package-lock.json")
        if not os.path.exists(stamp) or os.path.getmtime(stamp) < os.path.getmtime(lock_file):
            cp = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts",
                                 "--loglevel=error"], cwd=TOOLS, capture_output=True, text=True,
                                timeout=300)
            assert cp.returncode == 0, "npm ci in tests/openapi failed:\n" + cp.stderr
    return os.path.join(TOOLS, "node_modules", ".bin")


def fetch_spec(host):
    st, _, body = call(host, "GET", "/openapi.json")
    assert st == 200
    return json.loads(body)


# ---- HTTP -----------------------------------------------------------------------


def call(host, method, path, headers=None, body=None, host_header=None, length=None):
    """(status, headers, body bytes); the path is sent as written."""
    conn = http.client.HTTPConnection(LOCALHOST, host.http_port, timeout=15)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host_header or "%s:%d" % (LOCALHOST, host.http_port))
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs = dict(headers or {})
        if data is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        if length is not None:
            hdrs["Content-Length"] = str(length)
        elif data is not None:
            hdrs["Content-Length"] = str(len(data))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(data if length is None else None)
        resp = conn.getresponse()
        if resp.getheader("Content-Type", "").startswith("text/event-stream"):
            return resp.status, dict(resp.getheaders()), b""   # endless: headers only
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


# ---- OpenAPI 3.0 schemas as JSON Schema ------------------------------------------


def json_schema(node):
    """OpenAPI 3.0's `nullable` is no JSON Schema keyword: a nullable schema
    also accepts null."""
    if isinstance(node, list):
        return [json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = out["enum"] + [None]
        if "type" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def split_path(template):
    """'^/api/devices/([^/]+)$' for '/api/devices/{id}'."""
    return "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"


class Checker:
    """Checks replies against the document and counts what each operation
    answered."""

    def __init__(self, spec):
        self.spec = spec
        self.doc = json_schema(spec)
        self.resolver = jsonschema.RefResolver.from_schema(self.doc)
        self.seen = {}   # (METHOD, template) -> set of statuses
        self.templates = sorted(spec["paths"], key=lambda p: (p.count("{"), p))

    def template(self, path):
        path = path.split("?")[0]
        for t in self.templates:   # literal paths before patterns, as the router
            if re.match(split_path(t), path):
                return t
        return None

    def validate(self, schema, value, what):
        try:
            jsonschema.Draft7Validator(schema, resolver=self.resolver).validate(value)
        except jsonschema.ValidationError as e:
            pytest.fail("%s: the body does not match its schema: %s at %s\nbody: %s" % (
                what, e.message, "/".join(map(str, e.absolute_path)), json.dumps(value)[:600]))

    def error_body(self, body, what):
        self.validate({"$ref": "#/components/schemas/Error"}, json.loads(body), what)

    def check(self, method, path, reply, expect=None):
        status, headers, body = reply
        what = "%s %s -> %d" % (method, path, status)
        if expect is not None:
            assert status == expect, "%s, expected %d: %s" % (what, expect, body[:400])
        template = self.template(path)
        assert template, "%s: no such path in the document" % what
        item = self.doc["paths"][template]
        if method.lower() not in item:
            # No operation to hold it: a wrong method is 405 with Allow
            # naming exactly the methods the document lists.
            assert status == 405, what
            allowed = sorted(m.strip() for m in headers["Allow"].split(","))
            assert allowed == sorted(m.upper() for m in item), (what, headers["Allow"])
            self.error_body(body, what)
            return reply
        op = item[method.lower()]
        responses = op["responses"]
        assert str(status) in responses, "%s: status not declared (declared: %s)" % (
            what, sorted(responses))
        media = headers.get("Content-Type", "").split(";")[0].strip()
        content = responses[str(status)].get("content", {})
        assert media in content, "%s: %s is not a declared media type (%s)" % (
            what, media, sorted(content))
        schema = content[media]["schema"]
        if media == "application/json":
            self.validate(schema, json.loads(body), what)
        else:
            self.validate(schema, body.decode("utf-8", "strict"), what)
        self.seen.setdefault((method.upper(), template), set()).add(status)
        return reply


# ---- the document itself -------------------------------------------------------------


@pytest.fixture
def host(make_host):
    h = make_host({"http": {"tokens": token_config()}})
    h.wait_connected()
    return h


def test_the_document_passes_swagger_parser_and_redocly(host, tmp_path):
    bin_dir = openapi_tools()
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(fetch_spec(host), indent=1))
    cp = subprocess.run(["node", os.path.join(TOOLS, "validate.mjs"), str(path)],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, "swagger-parser: " + cp.stdout + cp.stderr
    cp = subprocess.run([os.path.join(bin_dir, "redocly"), "lint", "--config",
                         os.path.join(TOOLS, "redocly.yaml"), "--format=json", str(path)],
                        capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
                        env=dict(os.environ, REDOCLY_TELEMETRY="off",
                                 REDOCLY_SUPPRESS_UPDATE_NOTICE="true"))
    report = json.loads(cp.stdout[cp.stdout.index("{"):])
    problems = ["%s %s: %s at %s" % (p["severity"], p["ruleId"], p["message"],
                                     [loc.get("pointer") for loc in p.get("location", [])])
                for p in report["problems"]]
    assert not problems, "redocly lint:\n" + "\n".join(problems)
    assert report["totals"]["errors"] == 0 and report["totals"]["warnings"] == 0, report["totals"]
    assert cp.returncode == 0, cp.stderr


def test_security_and_shared_parts(host):
    spec = fetch_spec(host)
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer", scheme
    for path, item in spec["paths"].items():
        for method, op in item.items():
            needs = path.startswith("/api/") or path == "/metrics"
            assert op["security"] == ([{"bearerAuth": []}] if needs else []), (method, path)
            assert ("401" in op["responses"]) == needs, (method, path)
            assert op["operationId"], (method, path)
            for name in re.findall(r"\{([^}]+)\}", path):
                assert [p for p in op["parameters"] if p["in"] == "path" and p["name"] == name
                        and p["required"]], (method, path, name)
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), ids
    assert spec["servers"] == [{"url": "/", "description": "this host"}]
    # The send reply may carry warnings (what was relayed anyway).
    for status in ("200", "202"):
        props = spec["paths"]["/api/ndi/send"]["post"]["responses"][status]["content"][
            "application/json"]["schema"]["properties"]
        assert props["warnings"] == {"type": "array", "items": {"type": "string"}}, props


def test_every_response_has_a_schema(host):
    spec = fetch_spec(host)
    missing = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for status, resp in op["responses"].items():
                content = resp.get("content") or {}
                for media, c in content.items():
                    s = c.get("schema") or {}
                    if not ({"type", "$ref", "oneOf", "anyOf", "allOf"} & set(s)):
                        missing.append((method, path, status, media, s))
                if not content and status != "304":  # Not Modified has no body
                    missing.append((method, path, status, None, None))
                if status == "304":
                    assert not content and "ETag" in resp.get("headers", {}), (method, path)
                # Every client error is the one shape (a 503 from /healthz is
                # the health document, saying what is down).
                if status.startswith("4") and "application/json" in content:
                    schema = content["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    assert not missing, missing


# Route registrations in the sources: rows of a routes[] table
# {"GET", "/path", fn, ...}, and http_route_add(..., "GET", "/path", ...)
# or oh_route(ctx, "GET", "/path", ...) calls.
ROUTE_RE = re.compile(
    r'(?:\{\s*|http_route_add\([^;]*?,\s*|oh_route\(\s*\w+(?:->\w+)?,\s*)'
    r'"(GET|POST|PUT|PATCH|DELETE)",\s*"(/[^"]*)"', re.S)


def registered_routes():
    """(METHOD, full path) of every route the host and its built-in plugins
    register; a plugin's paths are under /api/{module}.  The scheduler's
    routes are mounted for each plugin that registers with it."""
    found = set()
    sched_modules = []
    src = os.path.join(SOURCE_DIR, "src")
    plugins = os.path.join(src, "plugins")
    for module in sorted(os.listdir(plugins)):
        for name in os.listdir(os.path.join(plugins, module)):
            if name.endswith(".c"):
                text = open(os.path.join(plugins, module, name)).read()
                if "oh_scheduler_register(" in text:
                    sched_modules.append(module)
                for method, path in ROUTE_RE.findall(text):
                    found.add((method, "/api/%s%s" % (module, path if path != "/" else "")))
    core = os.path.join(src, "core")
    for name in sorted(os.listdir(core)):
        if not name.endswith(".c"):
            continue
        text = open(os.path.join(core, name)).read()
        for method, path in ROUTE_RE.findall(text):
            if "oh_route(" in text and name == "scheduler_api.c":
                found.update((method, "/api/%s%s" % (m, path)) for m in sched_modules)
            else:
                found.add((method, path))
    return found


def test_every_registered_route_is_in_the_document(host):
    routes = registered_routes()
    assert len(routes) >= 24, sorted(routes)
    assert ("GET", "/metrics") in routes and ("DELETE", "/api/ndi/jobs/{id}") in routes
    spec = fetch_spec(host)
    described = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    assert routes - described == set(), "registered but not in /openapi.json: %s" % sorted(
        routes - described)
    assert described - routes == set(), "in /openapi.json but not found in the sources: %s" % sorted(
        described - routes)


# ---- every route, live ------------------------------------------------------------------


class FakeDevice:
    """Announces a device with the ndi module; acks its commands when told."""

    def __init__(self, mqtt, device_id, online=True):
        self.mqtt, self.id = mqtt, device_id
        mqtt.publish("/lab/device/%s/meta" % device_id,
                     {"device_id": device_id, "modules": ["ndi"], "capabilities": {"ndi": {}}},
                     retain=True)
        mqtt.publish("/lab/device/%s/status" % device_id,
                     {"device_id": device_id, "online": online}, retain=True)

    def auto_ack(self):
        stop = threading.Event()
        topic = "/lab/device/%s/ndi/cmd" % self.id
        self.mqtt.subscribe(topic)

        def run():
            seen = set()
            while not stop.is_set():
                for m in self.mqtt.messages(topic):
                    rid = m["payload"]["req_id"]
                    if rid not in seen:
                        seen.add(rid)
                        self.mqtt.publish("/lab/device/%s/ndi/evt" % self.id, {
                            "req_id": rid, "ok": True, "code": "OK", "action": "stop",
                            "actor": "orchestrator", "details": {}})
                time.sleep(0.02)    # the poller's interval, not a wait

        threading.Thread(target=run, daemon=True).start()
        return stop


def concrete(template, values):
    return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], template)


def test_every_route_answers_what_the_document_says(make_host, broker, mqtt):
    host = make_host({
        "http": {"tokens": token_config(), "max_body_bytes": MAX_BODY},
        "limits": {"max_leases": 1, "max_jobs": 1, "max_pending_per_device": 1,
                   "max_sse_clients": 1},
        "plugins": [{"module": "ndi", "path": "builtin:ndi", "settings": {"ack_timeout_s": 2, "mdns": False}}],
    })
    host.wait_connected()
    spec = fetch_spec(host)
    ck = Checker(spec)
    for dev in ("rpi-01", "rpi-02"):
        FakeDevice(mqtt, dev)
    FakeDevice(mqtt, "rpi-off", online=False)
    wait_until(lambda: all(call(host, "GET", "/api/devices/" + d, auth("vic"))[0] == 200
                           for d in ("rpi-01", "rpi-02", "rpi-off")), 5, msg="devices registered")

    def go(method, path, expect, who=None, body=None, headers=None, **kw):
        hdrs = dict(auth(who) if who else {}, **(headers or {}))
        return ck.check(method, path, call(host, method, path, hdrs, body, **kw), expect)

    def post(path, body, expect, who="alice", **kw):
        return json.loads(go("POST", path, expect, who, body, **kw)[2])

    # The core.
    go("GET", "/healthz", 200)
    go("GET", "/api/registry", 200, "vic")
    go("GET", "/api/devices/rpi-01", 200, "vic")
    go("GET", "/api/devices/nobody", 404, "vic")
    go("GET", "/openapi.json", 200)
    go("GET", "/api/plugins", 200, "vic")
    go("DELETE", "/api/plugins/nope", 404, "root")
    go("GET", "/metrics", 200, "vic")
    go("GET", "/api/audit?kind=plugin&limit=5", 200, "vic")
    go("GET", "/api/audit?limit=0", 400, "vic")
    # One event stream is the limit here: the second is refused.
    first = http.client.HTTPConnection(LOCALHOST, host.http_port, timeout=10)
    first.request("GET", "/api/events", headers=auth("vic"))
    resp = first.getresponse()
    ck.check("GET", "/api/events", (resp.status, dict(resp.getheaders()), b""), 200)
    go("GET", "/api/events", 429, "vic")
    first.close()

    # The web UI.
    for path in ("/", "/ui/devices", "/ui/activity", "/ui/ndi", "/ui/ndi/page.js", "/static/app.js",
                 "/static/style.css", "/static/favicon.svg", "/docs"):
        go("GET", path, 200)
    go("GET", "/ui/nothing", 404)
    go("GET", "/ui/nothing", 404, headers={"Accept": "text/html"})
    go("GET", "/ui/nothing/page.js", 404)
    go("GET", "/static/nothing.js", 404)

    # NDI: reading.
    go("GET", "/api/ndi/status", 200, "vic")
    go("GET", "/api/ndi/sources", 200, "vic")
    go("GET", "/api/ndi/sources?detail=1", 200, "vic")
    go("GET", "/api/ndi/devices", 200, "vic")

    # Leases (limits.max_leases is 1).
    post("/api/ndi/reserve", {"device_id": "rpi-01", "lease_s": 60}, 200)
    post("/api/ndi/reserve", {"device_id": "rpi-01"}, 409, "bob")
    post("/api/ndi/reserve", {"device_id": "rpi-02"}, 507)
    post("/api/ndi/reserve", {"device_id": "rpi-01", "lease": 5}, 400)
    post("/api/ndi/renew", {"device_id": "rpi-01", "lease_s": 30}, 200)
    post("/api/ndi/renew", {"device_id": "rpi-01"}, 409, "bob")
    post("/api/ndi/renew", {}, 400)
    post("/api/ndi/send", {"device_id": "rpi-01", "action": "stop"}, 409, "bob")
    post("/api/ndi/release", {"device_id": "rpi-01"}, 409, "bob")
    post("/api/ndi/release", {"device_id": "rpi-01"}, 200)
    post("/api/ndi/release", {"device_id": 5}, 400)
    post("/api/ndi/force_release", {"device_id": "rpi-01"}, 409, "root")
    post("/api/ndi/force_release", {"device_id": "rpi-01"}, 403, "alice")
    post("/api/ndi/reserve", {"device_id": "rpi-01"}, 200, "bob")
    post("/api/ndi/force_release", {"device_id": "rpi-01"}, 200, "root")
    post("/api/ndi/force_release", {"actor": "x"}, 400, "root")

    # Commands (limits.max_pending_per_device is 1; rpi-01 never acks).
    post("/api/ndi/send", {"device_id": "rpi-01", "action": "stop"}, 202)
    post("/api/ndi/send", {"device_id": "rpi-01", "action": "stop"}, 429)
    # Not in the registry: relayed all the same, with a warning (as MQTT).
    post("/api/ndi/send", {"device_id": "nobody", "action": "stop"}, 202)
    post("/api/ndi/send", {"device_id": "rpi-off", "action": "stop"}, 409)
    post("/api/ndi/send", {"device_id": "rpi-02", "action": "fly"}, 400)
    stop = FakeDevice(mqtt, "rpi-02").auto_ack()
    try:
        post("/api/ndi/send?wait=1", {"device_id": "rpi-02", "action": "stop"}, 200)
    finally:
        stop.set()

    # Routes and presets (rpi-off is offline: nothing is sent to it).
    go("PUT", "/api/ndi/routes/rpi-off", 200, "alice", {"source": "CAM-1"})
    go("PUT", "/api/ndi/routes/rpi-off", 400, "alice", {"sorce": "CAM-1"})
    go("GET", "/api/ndi/routes", 200, "vic")
    go("GET", "/api/ndi/routes/rpi-off", 200, "vic")
    go("GET", "/api/ndi/routes/rpi-02", 404, "vic")
    go("PUT", "/api/ndi/presets/lecture", 200, "alice", {"routes": {"rpi-off": {"source": "CAM-2"}}})
    go("PUT", "/api/ndi/presets/lecture", 400, "alice", {"routes": []})
    go("GET", "/api/ndi/presets", 200, "vic")
    go("GET", "/api/ndi/presets/lecture", 200, "vic")
    go("GET", "/api/ndi/presets/nope", 404, "vic")
    go("POST", "/api/ndi/presets/lecture/apply", 200, "alice")
    go("POST", "/api/ndi/presets/nope/apply", 404, "alice")
    go("DELETE", "/api/ndi/presets/lecture", 200, "alice")
    go("DELETE", "/api/ndi/presets/lecture", 404, "alice")
    go("DELETE", "/api/ndi/routes/rpi-off", 200, "alice")
    go("DELETE", "/api/ndi/routes/rpi-off", 404, "alice")

    # Scheduled jobs (limits.max_jobs is 1).
    go("GET", "/api/ndi/jobs", 200, "vic")
    job = post("/api/ndi/jobs", {"cron": "0 3 * * *", "name": "nightly",
                                 "commands": [{"device_id": "rpi-01", "action": "stop"}]}, 201)
    post("/api/ndi/jobs", {"cron": "0 4 * * *",
                           "commands": [{"device_id": "rpi-01", "action": "stop"}]}, 507)
    post("/api/ndi/jobs", {"cron": "0 3 * * *"}, 400)
    go("GET", "/api/ndi/jobs/" + job["id"], 200, "vic")
    go("GET", "/api/ndi/jobs/nope", 404, "vic")
    go("DELETE", "/api/ndi/jobs/" + job["id"], 403, "bob")
    go("DELETE", "/api/ndi/jobs/" + job["id"], 200, "alice")
    go("DELETE", "/api/ndi/jobs/" + job["id"], 404, "alice")

    # Forgetting a device (admin only).
    go("DELETE", "/api/devices/nobody", 404, "root")
    go("DELETE", "/api/devices/bad!id", 400, "root")
    go("DELETE", "/api/devices/rpi-off", 403, "alice")
    go("DELETE", "/api/devices/rpi-off", 200, "root")

    # What every operation answers before its handler runs.
    values = {"id": "rpi-01", "module": "ndi", "file": "app.js", "device_id": "rpi-01",
              "name": "lecture"}
    for template, item in spec["paths"].items():
        path = concrete(template, values)
        for method, op in item.items():
            m = method.upper()
            token = op["security"] != []
            who = "root" if token else None
            go(m, path, 400, who, host_header="evil.example")
            if token:
                go(m, path, 401)
                go(m, path, 401, headers={"Authorization": "Bearer wrong"})
            if m in ("POST", "PUT", "PATCH", "DELETE"):
                go(m, path, 403, "root", {}, headers={"Origin": "https://evil.example"})
                go(m, path, 403, "vic", {})
                go(m, path, 415, "root", b"{}", headers={"Content-Type": "text/plain"})
                go(m, path, 413, "root", b"{}", length=MAX_BODY + 1)
                go(m, path, 400, "root", b"{\"device_id\": ")
                if "admin" in op["responses"].get("403", {}).get("description", ""):
                    go(m, path, 403, "alice", {})
        # A method the path does not have.
        other = "PATCH" if "patch" not in item else "PUT"
        go(other, path, 405, "root", {} if template.startswith("/api/") else None)

    # Last: unloading the plugin, and the broker going away.
    go("DELETE", "/api/plugins/ndi", 200, "root")
    go("DELETE", "/api/plugins/ndi", 409, "root")
    broker.stop()
    wait_until(lambda: call(host, "GET", "/healthz")[0] == 503, 10, msg="healthz to say 503")
    go("GET", "/healthz", 503)

    # Every operation was called, and succeeded at least once.
    ops = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    assert ops - set(ck.seen) == set(), "never called: %s" % sorted(ops - set(ck.seen))
    never_ok = sorted(op for op, st in ck.seen.items() if not [s for s in st if s < 300])
    assert not never_ok, "never succeeded: %s" % never_ok
    statuses = set().union(*ck.seen.values())
    for s in (200, 201, 202, 400, 401, 403, 404, 409, 413, 415, 429, 503, 507):
        assert s in statuses, (s, sorted(statuses))


# ---- /docs --------------------------------------------------------------------------


def test_docs_page_shows_the_scheme_and_tries_calls_with_the_token(host, browser):
    b = browser
    b.open(host.url("/docs"))
    b.wait_for_css("#docs-auth:not([hidden]) .scheme[data-scheme='bearerAuth']")
    assert "HTTP bearer" in b.text(".scheme[data-scheme='bearerAuth']")
    assert "No token set" in b.text("#docs-token-state")
    b.screenshot(os.path.join(BUILD_DIR, "screenshots", "docs-top.png"))
    # Operations that need the token say so; public ones do not.
    reg = "details.op[data-path='/api/registry'][data-method='get']"
    assert b.text(reg + " .badge.lock") == "token"
    assert b.count("details.op[data-path='/healthz'] .badge.lock") == 0

    def click(sel):
        # Into the middle of the window: the sticky header covers the top.
        b.js("document.querySelector(arguments[0]).scrollIntoView({block: 'center'});", sel)
        b.click(sel)

    def send(sel, status):
        b.js("document.querySelector(arguments[0]).open = true;", sel)
        click(sel + " .try-form button[type='submit']")
        b.wait_until(lambda: b.attr(sel + " .try-status", "data-status") == str(status),
                     msg="%s to answer %s (%s)" % (sel, status, b.text(sel + " .try-status")))
        return json.loads(b.text(sel + " .try-result"))

    # Without a token the host refuses, and the page shows what it said.
    body = send(reg, 401)
    assert body["error"]["code"] == "UNAUTHORIZED", body
    # With one, the same call goes through: the page sent it as a bearer token.
    b.type("#docs-token", TOKENS["vic"][1])
    click("#docs-token-form button[type='submit']")
    b.wait_for_text("#docs-token-state", "A token is set")
    assert b.js("return sessionStorage.getItem('oh.api_token');") == TOKENS["vic"][1]
    body = send(reg, 200)
    assert set(body) >= {"devices", "locks", "modules", "seq"}, body
    b.screenshot(os.path.join(BUILD_DIR, "screenshots", "docs-auth.png"))
    # A path parameter, and a body: the viewer may read but not reserve.
    dev = "details.op[data-path='/api/devices/{id}'][data-method='get']"
    b.js("document.querySelector(arguments[0]).open = true;", dev)
    b.type(dev + " input[name='id']", "nobody")
    assert send(dev, 404)["error"]["code"] == "NOT_FOUND"
    res = "details.op[data-path='/api/ndi/reserve'][data-method='post']"
    b.js("document.querySelector(arguments[0]).open = true;", res)
    assert json.loads(b.js("return document.querySelector(arguments[0]).value;",
                           res + " textarea.try-body")) == {"device_id": ""}
    b.type(res + " textarea.try-body", '{"device_id": "rpi-01"}')
    body = send(res, 403)
    assert body["error"]["code"] == "FORBIDDEN" and "vic" in body["error"]["message"], body
    b.screenshot(os.path.join(BUILD_DIR, "screenshots", "docs-try.png"))
    # The event stream is not tried from here.
    assert "EventSource" in b.text("details.op[data-path='/api/events'] .try")
    # The refusals above are on the console; nothing else may be.
    problems = [p for p in b.problems() if not re.search(r"\b40[134]\b", p)]
    assert not problems, problems
