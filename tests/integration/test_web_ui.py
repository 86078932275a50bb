"""
The web UI: the shell and its pages (/, /ui/devices, /ui/{module}, /docs),
the static files, the server-sent events at /api/events, and the same pages
in a headless Chromium (browser.py): live updates without reloading,
reconnecting by themselves, device data rendered as text only, and no
Content-Security-Policy violations; dark mode from prefers-color-scheme, a
banner while the broker is away, and a device card on a phone whose second
lines stay beside the "Device" label.  A screenshot of the devices page is
saved as $OH_BUILD_DIR/screenshots/devices.png.
"""

import json
import os
import re
import socket
import time

import pytest

import harness
from browser import Browser
from harness import LOCALHOST, wait_until
from sse import REGISTRY_EVENTS, EventStream

ROOT = "/lab"
XSS = "<img src=x onerror=alert(1)>"
XSS2 = "\"><script>alert(2)</script>"
SCREENSHOTS = os.path.join(harness.BUILD_DIR, "screenshots")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def meta(dev, **extra):
    m = {"device_id": dev, "modules": ["ndi"], "labels": ["studio-a"],
         "version": "dev-0.1.0", "ts": "2026-11-28T10:00:00Z"}
    m.update(extra)
    return m


def announce(mqtt, dev, online=True, **extra):
    """Publishes a device's retained meta and status, as an agent would."""
    mqtt.publish("%s/device/%s/meta" % (ROOT, dev), meta(dev, **extra), retain=True)
    mqtt.publish("%s/device/%s/status" % (ROOT, dev),
                 {"online": online, "device_id": dev, "ts": "2026-11-28T10:00:00Z"}, retain=True)


def check_security_headers(headers, what):
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, "%s: %s is %r" % (what, name, headers.get(name))
    csp = headers.get("Content-Security-Policy") or ""
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'"):
        assert directive in csp, "%s: CSP %r lacks %s" % (what, csp, directive)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp


@pytest.fixture
def host(make_host):
    h = make_host()
    h.wait_connected()
    return h


@pytest.fixture
def make_stream():
    streams = []

    def factory(host):
        s = EventStream(host)
        streams.append(s)
        return s

    yield factory
    for s in streams:
        s.close()


# --------------------------------------------------------------------------
# HTTP


def test_home_page_lists_plugins_and_broker_state(make_host, broker):
    # One plugin that loads (ndi) and one whose init fails, with a page it
    # declared before failing: the failure is shown, its page is not served.
    failing = os.path.join(harness.BUILD_DIR, "test-plugins", "abi_failing_init.so")
    plugins = [{"module": "ndi", "path": "builtin:ndi"}]
    if os.path.exists(failing):
        plugins.append({"module": "failing", "path": failing})
    host = make_host({"plugins": plugins})
    host.wait_connected()
    status, headers, html = host.request("GET", "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    check_security_headers(headers, "/")
    assert 'data-module="ndi"' in html
    assert re.search(r'id="broker-state"[^>]*data-state="connected"', html), html
    assert "mqtt://127.0.0.1:%d" % broker.port in html
    # Navigation: Home, Devices, API docs, and a link per plugin page.
    for href in ('href="/"', 'href="/ui/devices"', 'href="/docs"'):
        assert href in html
    # No inline script or style anywhere: the CSP would refuse them.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert not re.search(r"<style|\sstyle=", html), "inline style"
    if len(plugins) == 2:
        assert 'data-module="failing"' in html and "not loaded" in html
        status, body = host.get("/ui/failing")
        assert status == 404 and body["error"]["code"] == "NOT_FOUND", body
        status, _, _ = host.request("GET", "/ui/failing/page.js")
        assert status == 404


def test_home_page_says_when_the_broker_is_away(make_host, broker):
    host = make_host()
    host.wait_connected()
    broker.stop()
    host.wait_disconnected()
    _, _, html = host.request("GET", "/")
    assert re.search(r'id="broker-state"[^>]*data-state="disconnected"', html), html


def test_pages_static_files_and_headers(host):
    for path, ctype in [("/", "text/html"), ("/ui/devices", "text/html"), ("/docs", "text/html"),
                        ("/static/app.js", "text/javascript"),
                        ("/static/devices.js", "text/javascript"),
                        ("/static/home.js", "text/javascript"),
                        ("/static/docs.js", "text/javascript"),
                        ("/static/style.css", "text/css"),
                        ("/static/favicon.svg", "image/svg+xml")]:
        status, headers, body = host.request("GET", path)
        assert status == 200, (path, status, body[:200])
        assert headers["Content-Type"].startswith(ctype), (path, headers["Content-Type"])
        check_security_headers(headers, path)
        assert body
    # Every page's scripts and styles are the daemon's own.
    for path in ("/", "/ui/devices", "/docs"):
        _, _, html = host.request("GET", path)
        for url in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert url.startswith("/"), "%s refers to %s" % (path, url)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"<style|\sstyle=", html), path


def test_unknown_pages_and_files_are_404(host):
    for path in ("/ui/x", "/ui/x/page.js", "/static/x", "/static/nope.js", "/static/shell.html", "/static/devices.html",
                 "/ui/devices/page.js"):
        status, headers, text = host.request("GET", path)
        assert status == 404, (path, status)
        body = json.loads(text)
        assert body["error"]["code"] == "NOT_FOUND", (path, body)
        check_security_headers(headers, path)
    # An encoded way out of /static/ is not even a path (test_http_guard.py).
    status, _, text = host.request("GET", "/static/..%2fcore%2fhttp.c")
    assert status == 400 and json.loads(text)["error"]["code"] == "BAD_PATH"
    # A browser asking for an unknown page gets one, in the shell.
    status, headers, html = host.request("GET", "/ui/x", headers={"Accept": "text/html"})
    assert status == 404
    assert headers["Content-Type"].startswith("text/html")
    assert 'href="/ui/devices"' in html and "no page for" in html
    # The page's name is escaped on the way back.
    status, _, html = host.request("GET", "/ui/%3Cb%20x=%22y%22%3Ehi",
                                   headers={"Accept": "text/html"})
    assert status == 404 and "<b x=" not in html and "&lt;b x=&quot;y&quot;&gt;hi" in html


def test_openapi_describes_the_ui_routes(host):
    status, doc = host.get("/openapi.json")
    assert status == 200
    paths = doc["paths"]
    for p in ("/", "/ui/devices", "/ui/{module}", "/ui/{module}/page.js", "/static/{file}",
              "/docs", "/api/events"):
        assert "get" in paths.get(p, {}), p


def test_plugin_page_in_the_shell(host):
    _, body = host.get("/api/plugins")
    ndi = next(p for p in body["plugins"] if p["module"] == "ndi")
    assert ndi.get("ui") == "/ui/ndi", ndi
    status, headers, html = host.request("GET", "/ui/ndi")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert '<a href="/ui/ndi" aria-current="page">' in html
    assert 'href="/ui/devices"' in html
    if '<script src="/ui/ndi/page.js"' in html:
        status, headers, js = host.request("GET", "/ui/ndi/page.js")
        assert status == 200 and headers["Content-Type"].startswith("text/javascript")
        check_security_headers(headers, "/ui/ndi/page.js")


# --------------------------------------------------------------------------
# Server-sent events


def test_events_stream_registry_and_orchestrator_events(host, mqtt, make_stream):
    s = make_stream(host)
    assert s.resp.status == 200
    assert s.resp.getheader("Content-Type").startswith("text/event-stream")
    check_security_headers(s.resp.headers, "/api/events")
    # On connect: the retry hint, the broker state and the current snapshot.
    s.wait_for("broker", lambda b: b == {"mqtt": "connected"})
    first = s.wait_for("registry", lambda snap: "devices" in snap and "locks" in snap)
    assert s.retry == 2000
    assert first["json"]["modules"] == ["ndi"]

    mark = s.mark()
    announce(mqtt, "sse-dev-1", labels=[XSS])
    # After the snapshot, only what changed: a delta with the new device.
    ev = s.wait_for("registry_delta", lambda d: "sse-dev-1" in d["devices"], since=mark)
    assert ev["json"]["devices"]["sse-dev-1"]["labels"] == [XSS]
    assert "\n" not in ev["data"]   # one data line

    # The host's own events, handed to the stream as it publishes them:
    # here the ack of a command that is not JSON.
    mark = s.mark()
    mqtt.publish(ROOT + "/orchestrator/ndi/cmd", "not json")
    ev = s.wait_for("orch_evt", lambda e: e["payload"]["code"] == "BAD_JSON", since=mark)
    assert ev["json"]["topic"] == ROOT + "/orchestrator/ndi/evt"
    assert ev["json"]["payload"]["ok"] is False

    # A reservation through the NDI plugin: the lease shows in the snapshot
    # and its ack comes through as an orchestrator event.
    mark = s.mark()
    mqtt.publish(ROOT + "/orchestrator/ndi/cmd", {"req_id": "r-2", "actor": "alice",
                                                   "action": "reserve",
                                                   "params": {"device_id": "sse-dev-1",
                                                              "lease_s": 60}})
    s.wait_for("orch_evt", lambda e: e["payload"]["req_id"] == "r-2", since=mark)
    ev = s.wait_for("registry_delta", lambda d: "ndi:sse-dev-1" in d["locks"], since=mark)
    assert ev["json"]["locks"]["ndi:sse-dev-1"]["holder"] == "alice"


def test_events_stream_broker_state(host, broker, make_stream):
    s = make_stream(host)
    s.wait_for("broker", lambda b: b["mqtt"] == "connected")
    mark = s.mark()
    broker.stop()
    s.wait_for("broker", lambda b: b["mqtt"] == "disconnected", timeout=10, since=mark)
    broker.start()
    s.wait_for("broker", lambda b: b["mqtt"] == "connected", timeout=20, since=mark)
    # And the registry is sent again after the reconnect (as a delta).
    s.wait_for(REGISTRY_EVENTS, timeout=10, since=mark)


def test_events_many_clients_come_and_go(host, mqtt, make_stream):
    streams = [make_stream(host) for _ in range(5)]
    for s in streams:
        s.wait_for("registry")
    # Some leave without a word; the others keep getting updates, and the
    # host notices the departed on its next write.
    for s in streams[:3]:
        s.close()
    marks = [s.mark() for s in streams[3:]]
    for i in range(5):
        announce(mqtt, "come-go-%d" % i)
    for s, m in zip(streams[3:], marks):
        s.wait_for("registry_delta", lambda d: "come-go-4" in d["devices"], since=m)
    assert host.health()[0] == 200


def test_a_client_that_does_not_read_is_dropped(host, mqtt, make_stream):
    # A client that connects and never reads: it is sent no more deltas
    # once its backlog is large, so its backlog stays bounded, and once it
    # has read nothing for 8 s the host drops it rather than hold its place
    # for ever.
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect((LOCALHOST, host.http_port))
    stuck.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:
        pad = "x" * 4000
        infos = []
        for i in range(250):
            infos.append(mqtt.publish("%s/device/big-%03d/meta" % (ROOT, i),
                                      meta("big-%03d" % i, pad=pad), wait=False))
        mqtt.wait_published(infos)
        # Each snapshot is now ~1 MB; a few more make the backlog overflow.
        for n in range(8):
            mqtt.publish("%s/device/big-000/status" % ROOT, {"online": True, "n": n})
            time.sleep(0.15)   # pacing: each its own snapshot, not coalesced into one
        deadline = time.monotonic() + 20
        n = 8
        while "dropping an event-stream client" not in host.log():
            assert time.monotonic() < deadline, "the host did not drop the stuck client"
            # The check runs when there is something to send.
            mqtt.publish("%s/device/big-000/status" % ROOT, {"online": True, "n": n})
            n += 1
            time.sleep(0.5)    # pacing the pokes; the loop waits on the log line above
        # Everyone else is fine.
        s = make_stream(host)
        s.wait_for("registry", lambda snap: "big-249" in snap["devices"])
        assert host.health()[0] == 200
    finally:
        stuck.close()


# --------------------------------------------------------------------------
# In the browser


# `browser` and `phone_browser` (conftest.py): the file's one Chromium,
# reset for each test.


def assert_clean(b, what):
    problems = b.problems()
    assert not problems, "%s: %s" % (what, "\n".join(problems))


def test_browser_home_page(host, browser):
    b = browser
    b.open(host.url("/"))
    b.wait_for_css("#plugin-list li[data-module='ndi']")
    assert b.text("#broker-state") == "connected"
    b.wait_until(lambda: b.attr("#live-state", "data-state") == "open", msg="live updates")
    b.wait_until(lambda: b.text("#online-count") == "0", msg="device counts from the stream")
    assert b.attr("nav a[aria-current='page']", "href") == "/"
    b.screenshot(os.path.join(SCREENSHOTS, "home.png"))
    assert_clean(b, "/")


def test_browser_devices_live_and_escaped(make_host, mqtt, browser):
    host = make_host({"stale_after_s": 1.5})
    host.wait_connected()
    b = browser
    announce(mqtt, "dev-alpha", labels=["studio-a", "rack-2"])
    b.open(host.url("/ui/devices"))
    b.wait_for_css("tr[data-device='dev-alpha']")
    assert b.text("tr[data-device='dev-alpha'] .badge") == "online"
    assert b.texts("tr[data-device='dev-alpha'] .labels .chip") == ["studio-a", "rack-2"]
    assert b.texts("tr[data-device='dev-alpha'] .modules .chip") == ["ndi"]
    # Marks the document: a reload would lose it.
    b.js("window.__not_reloaded = 42;")

    # A new device arrives with markup in every field it controls.
    announce(mqtt, "dev-xss", labels=[XSS, "ok-label"], modules=["ndi", XSS],
             name=XSS2, hostname=XSS, version=XSS)
    row = "tr[data-device='dev-xss']"
    b.wait_for_css(row)
    assert b.js("return window.__not_reloaded;") == 42, "the page was reloaded"
    assert b.texts(row + " .labels .chip") == [XSS, "ok-label"]
    assert b.texts(row + " .modules .chip") == ["ndi", XSS]
    assert b.text(row + " .device-name") == XSS2
    # Text, not markup: no element was made from it and nothing ran.
    assert b.count("#devices img, #devices script, main img") == 0
    # A window, not a wait: an onerror would fire after its image's request
    # failed, and a probe image of our own would log a 404 the page's
    # problem check rejects.  (The count above already shows no image.)
    time.sleep(0.3)
    assert b.recorded()["alerts"] == []
    assert b.alert_text() is None

    # A lease shows its holder.
    mqtt.publish(ROOT + "/orchestrator/ndi/cmd", {"req_id": "ui-1", "actor": "alice",
                                                   "action": "reserve",
                                                   "params": {"device_id": "dev-alpha",
                                                              "lease_s": 120}})
    b.wait_for_text("tr[data-device='dev-alpha'] .leases", "alice")
    assert "ndi" in b.text("tr[data-device='dev-alpha'] .leases")

    # Offline, and stale (online but silent for longer than stale_after_s).
    mqtt.publish("%s/device/dev-xss/status" % ROOT, {"online": False}, retain=True)
    b.wait_until(lambda: b.text(row + " .badge") == "offline", msg="dev-xss offline")
    b.wait_until(lambda: b.text("tr[data-device='dev-alpha'] .badge") == "stale", timeout=10,
                 msg="dev-alpha stale")
    mqtt.publish("%s/device/dev-alpha/status" % ROOT, {"online": True}, retain=True)
    b.wait_until(lambda: b.text("tr[data-device='dev-alpha'] .badge") == "online",
                 msg="dev-alpha back online")
    summary = b.text("#device-summary")
    assert summary.startswith("2 devices"), summary

    # The filter narrows the table.
    b.type("#device-filter", "rack-2")
    b.wait_until(lambda: b.count("#devices tbody tr") == 1, msg="filtered table")
    b.type("#device-filter", "")
    b.wait_until(lambda: b.count("#devices tbody tr") == 2, msg="unfiltered table")

    path = b.screenshot(os.path.join(SCREENSHOTS, "devices.png"))
    assert os.path.getsize(path) > 1000
    assert b.js("return window.__not_reloaded;") == 42
    assert_clean(b, "/ui/devices")


def test_browser_devices_on_a_phone(host, mqtt, phone_browser):
    announce(mqtt, "dev-phone", labels=[XSS])
    b = phone_browser
    b.open(host.url("/ui/devices"))
    b.wait_for_css("tr[data-device='dev-phone']")
    assert b.js("return window.innerWidth;") == 390
    # The table fits the screen: no sideways scrolling of the page.
    assert b.js("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
    assert b.texts("tr[data-device='dev-phone'] .labels .chip") == [XSS]
    b.screenshot(os.path.join(SCREENSHOTS, "devices-phone.png"))
    assert_clean(b, "/ui/devices on a phone")


def test_browser_reconnects_by_itself(make_host, broker, mqtt, browser):
    host = make_host()
    host.wait_connected()
    b = browser
    b.open(host.url("/ui/devices"))
    b.wait_until(lambda: b.attr("#live-state", "data-state") == "open", msg="live updates")
    b.js("window.__not_reloaded = 7;")

    # The broker goes away and comes back: the badge follows.
    broker.stop()
    b.wait_until(lambda: b.text("#broker-state") == "disconnected", timeout=10,
                 msg="broker badge: disconnected")
    broker.start()
    b.wait_until(lambda: b.text("#broker-state") == "connected", timeout=20,
                 msg="broker badge: connected")

    # The daemon restarts: the page reconnects and catches up, no reload.
    host.restart()
    host.wait_connected()
    announce(mqtt, "dev-after-restart")
    b.wait_for_css("tr[data-device='dev-after-restart']", timeout=20)
    assert b.attr("#live-state", "data-state") == "open"
    assert b.js("return window.__not_reloaded;") == 7
    # The dropped connection is the only thing the console may mention.
    problems = [p for p in b.problems() if "api/events" not in p]
    assert not problems, problems


def test_browser_docs_page(host, browser):
    b = browser
    b.open(host.url("/docs"))
    b.wait_for_css("details.op")
    paths = set(b.texts("details.op .path"))
    for p in ("/healthz", "/api/registry", "/api/events", "/ui/{module}", "/openapi.json"):
        assert p in paths, (p, sorted(paths))
    # Operations open to show parameters and responses.
    sel = "details.op[data-path='/api/devices/{id}'][data-method='get']"
    b.click(sel + " > summary")
    b.wait_until(lambda: b.js("return document.querySelector(arguments[0]).open;", sel))
    assert "id" in b.texts(sel + " table.params code")
    assert "404" in b.texts(sel + " .responses code")
    b.full_screenshot(os.path.join(SCREENSHOTS, "docs.png"))
    # Filtering.
    b.type("#docs-filter", "healthz")
    b.wait_until(lambda: b.js("return Array.from(document.querySelectorAll('details.op'))"
                              ".filter(function (d) { return !d.hidden; }).length;") == 1)
    # Nothing from anywhere else.
    origin = host.url("")
    for url in b.resources():
        assert url.startswith(origin), url
    assert_clean(b, "/docs")


def test_browser_unknown_page(host, browser):
    b = browser
    b.open(host.url("/ui/nothing-here"))
    b.wait_for_css("main .error")
    assert "nothing-here" in b.text("main .error")
    # The 404 itself is reported on the console; nothing else may be.
    problems = [p for p in b.problems() if "404" not in p]
    assert not problems, problems


def test_browser_plugin_page(host, browser):
    _, body = host.get("/api/plugins")
    ndi = next(p for p in body["plugins"] if p["module"] == "ndi")
    assert ndi.get("ui") == "/ui/ndi", ndi
    b = browser
    b.open(host.url("/ui/ndi"))
    b.wait_until(lambda: b.attr("#live-state", "data-state") == "open", msg="live updates")
    assert b.attr("nav a[aria-current='page']", "href") == "/ui/ndi"
    assert b.text("#broker-state") == "connected"
    assert b.count("main > h1") == 1
    b.screenshot(os.path.join(SCREENSHOTS, "ndi-shell.png"))
    assert_clean(b, "/ui/ndi")


# --------------------------------------------------------------------------
# Issue 15: dark mode, the broker banner, the device card on a phone


def background(b, selector="body"):
    return b.js("return getComputedStyle(document.querySelector(arguments[0])).backgroundColor;",
                selector)


@pytest.mark.parametrize("path", ["/", "/ui/devices", "/ui/ndi", "/docs"])
def test_browser_dark_mode_follows_the_system(host, browser, path):
    b = browser
    b.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "light"}]})
    b.open(host.url(path))
    b.wait_for_css("main h1")
    light = background(b), background(b, "header.top")
    b.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    b.open(host.url(path))
    b.wait_for_css("main h1")
    assert b.js("return matchMedia('(prefers-color-scheme: dark)').matches;") is True
    dark = background(b), background(b, "header.top")
    text = b.js("return getComputedStyle(document.body).color;")

    def luminance(css):
        r, g, bl = [int(v) for v in re.findall(r"\d+", css)[:3]]
        return 0.2126 * r + 0.7152 * g + 0.0722 * bl

    # A dark page with light text, where the light scheme is the reverse.
    assert luminance(light[0]) > 200 and luminance(light[1]) > 200, light
    assert luminance(dark[0]) < 60 and luminance(dark[1]) < 60, dark
    assert luminance(text) > 180, text
    b.full_screenshot(os.path.join(SCREENSHOTS, "dark%s.png" % path.replace("/", "-").rstrip("-")))
    assert_clean(b, path + " in dark mode")


def test_browser_device_card_on_a_phone(host, mqtt, phone_browser):
    # The id, name and version stack in the value column of the "Device"
    # row of the card, never under its label.
    announce(mqtt, "dev-card", name="Studio A camera", version="dev-0.1.0")
    b = phone_browser
    b.open(host.url("/ui/devices"))
    cell = "tr[data-device='dev-card'] td[data-label='Device']"
    b.wait_for_css(cell + " .device-name")
    geo = b.js("""
        var td = document.querySelector(arguments[0]);
        function box(e) { var r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }
        var label = getComputedStyle(td, '::before');
        return {td: box(td), id: box(td.querySelector('.device-id')),
                name: box(td.querySelector('.device-name')),
                version: box(Array.from(td.children).filter(function (e) {
                    return e.textContent === 'dev-0.1.0'; })[0]),
                label: label.content, labelWidth: parseFloat(label.width),
                padLeft: parseFloat(getComputedStyle(td).paddingLeft)};
    """, cell)
    assert b.js("return window.innerWidth;") == 390
    assert geo["label"] == '"Device"', geo
    # The label's column: from the cell's padding edge, as wide as the label.
    label_right = geo["td"][0] + geo["labelWidth"]
    for part in ("id", "name", "version"):
        assert geo[part][0] >= label_right - 1, (part, geo)
        assert abs(geo[part][0] - geo["id"][0]) <= 1, (part, geo)
    # Stacked: the version below the name, the name below the id.
    assert geo["id"][3] <= geo["name"][1] + 1 and geo["name"][3] <= geo["version"][1] + 1, geo
    assert b.js("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
    b.screenshot(os.path.join(SCREENSHOTS, "devices-card-phone.png"))
    assert_clean(b, "/ui/devices card on a phone")


def test_browser_broker_down_shows_a_banner(make_host, broker, browser):
    host = make_host()
    host.wait_connected()
    b = browser
    b.open(host.url("/ui/devices"))
    b.wait_until(lambda: b.attr("#live-state", "data-state") == "open", msg="live updates")
    assert b.js("return document.getElementById('broker-banner').hidden;") is True
    broker.stop()
    b.wait_until(lambda: b.js("return !document.getElementById('broker-banner').hidden;"),
                 timeout=10, msg="the broker banner")
    assert "broker" in b.text("#broker-banner").lower()
    assert b.js("var r = document.getElementById('broker-banner').getBoundingClientRect();"
                "return r.width > 200 && r.height > 10;"), "the banner is not visible"
    broker.start()
    b.wait_until(lambda: b.js("return document.getElementById('broker-banner').hidden;"),
                 timeout=20, msg="the banner to go")
    problems = [p for p in b.problems() if "api/events" not in p]
    assert not problems, problems
