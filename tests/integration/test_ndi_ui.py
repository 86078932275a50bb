"""
The NDI page (/ui/ndi) in headless Chromium (tests/integration/browser.py):
a test device registered over MQTT shows up, Start reaches
/lab/device/{id}/ndi/cmd, and the page shows the device's ack as it
arrives; reserve/release show the lease holder; jobs can be added and
cancelled; device-supplied text such as <img src=x onerror=alert(1)> stays
text; the page fits a phone's width.  Issue 15: a command's codes show in
causal order (DISPATCHED before COMPLETED) when the device answers before
the POST returns, with the ack's warnings; the command buttons are disabled
while the broker is down.  Screenshots go to
$OH_BUILD_DIR/screenshots/.
"""

import os

import pytest

import harness
from browser import Browser
from conftest import wait_until
from test_ndi_rest import Device, in_registry, ndi_config

pytestmark = pytest.mark.skipif(not Browser.available(), reason=str(Browser.unavailable_reason()))

XSS = "<img src=x onerror=alert(1)>"
SHOTS = os.path.join(harness.BUILD_DIR, "screenshots")


@pytest.fixture
def host(make_host):
    h = make_host(ndi_config({"sources": ["CAM-1", "CAM-2"], "ack_timeout_s": 5}))
    h.wait_connected()
    return h


def choose_device(b, device_id):
    b.wait_for_css("#ndi-device option[value='%s']" % device_id)
    b.js("var s = document.getElementById('ndi-device'); s.value = arguments[0];"
         "s.dispatchEvent(new Event('change'));", device_id)


def ack_css(req_id, code):
    return "#ndi-acks tr[data-req-id='%s'] [data-code='%s']" % (req_id, code)


def test_start_reaches_the_device_and_the_ack_shows(host, make_mqtt, browser):
    d = Device(make_mqtt, "rpi-ui-1", ndi_status={"state": "idle", "fields": {
        "input": None, "recording": False}})
    wait_until(lambda: in_registry(host, d.id), 5, msg="the device in the registry")
    b = browser
    b.open(host.url("/ui/ndi"))
    choose_device(b, d.id)
    b.wait_for_css("#ndi-devices tr[data-device='rpi-ui-1']")
    b.type("#ndi-source", "CAM-2")
    b.type("#ndi-actor", "alice")

    mark = d.client.mark()
    b.click("[data-action='start']")
    cmd = d.next_cmd(since=mark)
    assert cmd["action"] == "start"
    assert cmd["actor"] == "orchestrator" and cmd["requested_by"] == "alice"
    assert cmd["params"] == {"device_id": d.id, "source": "CAM-2"}
    req_id = cmd["req_id"]
    b.wait_for_css(ack_css(req_id, "DISPATCHED"))

    d.module_status({"state": "running", "fields": {"input": "CAM-2", "recording": False}})
    d.ack(req_id, details={"pid": 4242, "input": "CAM-2"})
    b.wait_for_css(ack_css(req_id, "COMPLETED"))
    row = "#ndi-acks tr[data-req-id='%s']" % req_id
    assert "DISPATCHED" in b.text(row) and "COMPLETED" in b.text(row)
    assert "rpi-ui-1" in b.text(row) and "alice" in b.text(row)
    # The device's new input shows once the page refreshes after the ack.
    b.wait_for_text("#ndi-devices tr[data-device='rpi-ui-1'] .input", "CAM-2")

    # A command the device fails, and one it never answers.
    mark = d.client.mark()
    b.click("[data-action='record_start']")
    rec = d.next_cmd(since=mark)
    # As for start above: the device answers once the page shows the
    # dispatch.  (Answering first is test_acks_show_in_causal_order_...)
    b.wait_for_css(ack_css(rec["req_id"], "DISPATCHED"))
    d.ack(rec["req_id"], ok=False, code="MODULE_ERROR", error="no disk", action="record_start")
    b.wait_for_css(ack_css(rec["req_id"], "FAILED"))
    assert "no disk" in b.text("#ndi-acks tr[data-req-id='%s']" % rec["req_id"])

    b.full_screenshot(os.path.join(SHOTS, "ndi.png"))
    assert not b.problems(), b.problems()


def test_timeout_shows(make_host, make_mqtt, browser):
    h = make_host(ndi_config({"ack_timeout_s": 1}))
    h.wait_connected()
    d = Device(make_mqtt, "rpi-ui-2")
    wait_until(lambda: in_registry(h, d.id), 5)
    b = browser
    b.open(h.url("/ui/ndi"))
    choose_device(b, d.id)
    mark = d.client.mark()
    b.click("[data-action='stop']")
    cmd = d.next_cmd(since=mark)
    b.wait_for_css(ack_css(cmd["req_id"], "TIMEOUT"), timeout=5)
    assert not b.problems(), b.problems()


def test_reserve_release_and_refusals(host, make_mqtt, browser):
    d = Device(make_mqtt, "rpi-ui-3")
    wait_until(lambda: in_registry(host, d.id), 5)
    b = browser
    b.open(host.url("/ui/ndi"))
    choose_device(b, d.id)
    b.type("#ndi-actor", "alice")
    b.click("[data-lease='reserve']")
    b.wait_for_text("#ndi-device-info [data-field='lease-holder']", "alice")
    b.wait_for_text("#ndi-devices tr[data-device='rpi-ui-3'] .holder", "alice")

    # Someone else cannot drive it: the page shows the refusal and the holder.
    b.type("#ndi-actor", "bob")
    b.type("#ndi-source", "CAM-1")
    b.click("[data-action='start']")
    b.wait_for_text("#ndi-error", "DENIED")
    assert "alice" in b.text("#ndi-error")
    b.wait_for_css("#ndi-acks [data-code='DENIED']")

    b.type("#ndi-actor", "alice")
    b.click("[data-lease='release']")
    b.wait_until(lambda: "alice" not in b.text("#ndi-device-info [data-field='lease-holder']"),
                 msg="the lease to be gone")
    # Chrome logs every non-2xx fetch; the 409 above was the point.
    problems = b.problems(ignore=["status of 409"])
    assert not problems, problems


def test_jobs_can_be_added_and_cancelled(host, make_mqtt, browser):
    assert host.get("/api/ndi/jobs")[0] == 200
    d = Device(make_mqtt, "rpi-ui-4")
    wait_until(lambda: in_registry(host, d.id), 5)
    b = browser
    b.open(host.url("/ui/ndi"))
    choose_device(b, d.id)
    b.type("#ndi-source", "CAM-1")
    b.js("var w = document.getElementById('ndi-job-when'); w.value = 'cron';"
         "w.dispatchEvent(new Event('change'));")
    b.type("#ndi-job-cron", "0 3 * * *")
    b.type("#ndi-job-name", "nightly start")
    b.click("#ndi-job-form button[type='submit']")
    b.wait_for_text("#ndi-jobs tbody", "nightly start")
    assert "start rpi-ui-4" in b.text("#ndi-jobs tbody")
    jobs = host.get("/api/ndi/jobs")[1]["jobs"]
    assert [j["name"] for j in jobs] == ["nightly start"]
    assert jobs[0]["commands"] == [{"device_id": d.id, "action": "start",
                                    "params": {"source": "CAM-1"}}]
    b.click("#ndi-jobs [data-cancel]")
    b.wait_until(lambda: b.count("#ndi-jobs tbody tr") == 0, msg="the job to be cancelled")
    assert host.get("/api/ndi/jobs")[1]["jobs"] == []
    assert not b.problems(), b.problems()


def test_device_text_is_never_markup(host, make_mqtt, browser):
    d = Device(make_mqtt, "rpi-xss", capabilities={"ndi": {"note": XSS}},
               ndi_status={"state": XSS, "fields": {"input": XSS, "recording": False}})
    wait_until(lambda: in_registry(host, d.id), 5)
    # A lease holder and a device error carrying markup too.
    assert host.post("/api/ndi/reserve", {"device_id": d.id, "actor": XSS})[0] == 200
    b = browser
    b.open(host.url("/ui/ndi"))
    choose_device(b, d.id)
    b.wait_for_text("#ndi-devices tr[data-device='rpi-xss'] .input", XSS)
    b.wait_for_text("#ndi-device-info [data-field='lease-holder']", XSS)
    b.type("#ndi-actor", XSS)
    mark = d.client.mark()
    b.click("[data-action='stop']")
    cmd = d.next_cmd(since=mark)
    b.wait_for_css(ack_css(cmd["req_id"], "DISPATCHED"))   # see the record_start above
    d.ack(cmd["req_id"], ok=False, code="MODULE_ERROR", error=XSS, action="stop")
    b.wait_for_css(ack_css(cmd["req_id"], "FAILED"))
    assert XSS in b.text("#ndi-acks tr[data-req-id='%s']" % cmd["req_id"])
    assert b.count("main img") == 0
    assert b.recorded()["alerts"] == []
    assert not b.problems(), b.problems()


def test_page_fits_a_phone(host, make_mqtt, phone_browser):
    d = Device(make_mqtt, "rpi-phone")
    wait_until(lambda: in_registry(host, d.id), 5)
    b = phone_browser
    b.open(host.url("/ui/ndi"))
    b.wait_for_css("#ndi-devices tr[data-device='rpi-phone']")
    assert b.js("return window.innerWidth;") == 390
    overflow = b.js("return document.documentElement.scrollWidth - window.innerWidth;")
    assert overflow <= 0, "page is %d px wider than the phone" % overflow
    b.full_screenshot(os.path.join(SHOTS, "ndi-phone.png"))
    assert not b.problems(), b.problems()


# ------------------------------------------------------------ issue 15


def simulated_agent(host, make_device):
    """The deployed agent's behaviour: orchestrator-device --simulate 1,
    which answers a command within milliseconds.  Returns its id."""
    prefix = harness.unique_name("ui") + "-"
    make_device({"heartbeat_interval_s": 60}, extra_args=["--simulate", "1", "--id-prefix", prefix])
    dev = prefix + "01"
    wait_until(lambda: (host.get("/api/devices/" + dev)[1] or {}).get("online") is True, 10,
               msg="the simulated agent online")
    return dev


def result_codes(b, req_id):
    return b.js("return Array.from(document.querySelectorAll("
                "\"#ndi-acks tr[data-req-id='\" + arguments[0] + \"'] .result [data-code]\"))"
                ".map(function (e) { return e.getAttribute('data-code'); });", req_id)


def test_acks_show_in_causal_order_when_the_device_answers_first(host, make_device, browser):
    dev = simulated_agent(host, make_device)
    b = browser
    b.open(host.url("/ui/ndi"))
    b.wait_until(lambda: b.attr("#live-state", "data-state") == "open", msg="live updates")
    choose_device(b, dev)
    b.type("#ndi-source", "CAM-2")
    # The agent answers within milliseconds, and its COMPLETED reaches the
    # page on the event stream.  The POST's reply (the real one) is handed
    # to the page only once a COMPLETED shows, as a slow link would: the
    # order the issue saw ("COMPLETED → DISPATCHED"), every time.
    b.js("""
        window.__sent = 0; window.__raced = false;
        var f = window.fetch;
        window.fetch = function (u) {
          var p = f.apply(this, arguments);
          if (String(u).indexOf('/api/ndi/send') < 0) return p;
          return p.then(function (resp) {
            return new Promise(function (res) {
              var t0 = Date.now();
              (function later() {
                var done = document.querySelector("#ndi-acks [data-code='COMPLETED']");
                if (done || Date.now() - t0 > 8000) {
                  window.__raced = !!done; window.__sent++; res(resp);
                } else setTimeout(later, 20);
              })();
            });
          });
        };""")
    b.click("[data-action='start']")
    row = "#ndi-acks tr[data-req-id]"
    b.wait_for_css(row + " [data-code='COMPLETED']", timeout=10)
    req_id = b.attr(row, "data-req-id")
    b.wait_until(lambda: b.js("return window.__sent;") == 1, timeout=10, msg="the POST's reply")
    assert b.js("return window.__raced;"), "the device did not answer before the POST returned"
    b.wait_until(lambda: b.attr("[data-action='start']", "disabled") is None, msg="the reply handled")
    assert result_codes(b, req_id) == ["DISPATCHED", "COMPLETED"], b.text(row)
    assert "DISPATCHED → COMPLETED" in b.text(row), b.text(row)
    assert b.count(row + " .ack-warning") == 0

    # A source the host's discovery has not seen is relayed (the agent is on
    # another network), and the page shows the ack's warning.
    b.type("#ndi-source", "FIELD-CAM")
    b.click("[data-action='start']")
    row = "#ndi-acks tr[data-req-id]:not([data-req-id='%s'])" % req_id
    b.wait_for_css(row + " [data-code='COMPLETED']", timeout=10)
    b.wait_until(lambda: "FIELD-CAM" in b.text(row + " .ack-warning"), msg="the warning")
    assert result_codes(b, b.attr(row, "data-req-id")) == ["DISPATCHED", "COMPLETED"]
    assert not b.problems(), b.problems()


def test_commands_are_disabled_while_the_broker_is_down(make_host, broker, make_mqtt, browser):
    h = make_host(ndi_config())
    h.wait_connected()
    d = Device(make_mqtt, "rpi-ui-5")
    wait_until(lambda: in_registry(h, d.id), 5)
    b = browser
    b.open(h.url("/ui/ndi"))
    b.wait_until(lambda: b.attr("#live-state", "data-state") == "open", msg="live updates")
    choose_device(b, d.id)

    def disabled(selector):
        return b.js("return Array.from(document.querySelectorAll(arguments[0]))"
                    ".map(function (e) { return e.matches(':disabled'); });", selector)

    assert disabled("[data-action]") == [False] * 5
    assert b.js("return document.getElementById('broker-banner').hidden;") is True

    broker.stop()
    b.wait_until(lambda: not b.js("return document.getElementById('broker-banner').hidden;"),
                 timeout=10, msg="the broker banner")
    assert disabled("[data-action]") == [True] * 5
    # The host's own: leases and jobs still work without the broker.
    assert disabled("[data-lease]") == [False] * 3
    assert disabled("#ndi-job-form button") == [False]
    b.click("[data-action='start']")            # a disabled button does nothing
    assert b.count("#ndi-acks tbody tr") == 0
    b.full_screenshot(os.path.join(SHOTS, "ndi-broker-down.png"))

    broker.start()
    b.wait_until(lambda: b.js("return document.getElementById('broker-banner').hidden;"),
                 timeout=20, msg="the banner to go")
    assert disabled("[data-action]") == [False] * 5
    problems = [p for p in b.problems() if "api/events" not in p]
    assert not problems, problems


# ------------------------------------------------------------ issue 18


def test_matrix_click_routes_and_the_device_follows(host, make_device, browser):
    dev = simulated_agent(host, make_device)
    b = browser
    b.open(host.url("/ui/ndi"))
    b.wait_until(lambda: b.attr("#live-state", "data-state") == "open", msg="live updates")
    cell = "#ndi-matrix [data-cell='%s'][data-source='%s']"
    b.wait_for_css(cell % (dev, "CAM-2"))
    b.type("#ndi-actor", "alice")
    b.click(cell % (dev, "CAM-2"))
    # The host sends the commands; the page follows over the event stream.
    b.wait_for_css((cell % (dev, "CAM-2")) + "[data-desired][data-actual]", timeout=10)
    b.wait_for_css("#ndi-matrix tr[data-device='%s'] [data-route-state='converged']" % dev)
    route = host.get("/api/ndi/routes/" + dev)[1]
    assert route["owner"] == "alice" and route["actual"]["source"] == "CAM-2", route
    # The recording toggle of the row.
    b.click("#ndi-matrix [data-rec='%s']" % dev)
    wait_until(lambda: (host.get("/api/ndi/routes/" + dev)[1].get("actual") or {}).get("recording") is True,
               10, msg="the device recording")
    # Save the routes as a preset; it is listed with Apply and Schedule.
    b.type("#ndi-preset-name", "lecture")
    b.click("#ndi-preset-save")
    b.wait_for_css("#ndi-presets [data-apply='lecture']")
    assert host.get("/api/ndi/presets/lecture")[1]["routes"] == {
        dev: {"source": "CAM-2", "recording": True}}
    b.type("#ndi-preset-cron", "55 8 * * 1-5")
    b.click("#ndi-presets [data-schedule='lecture']")
    b.wait_until(lambda: any(j.get("name") == "preset lecture" for j in host.get("/api/ndi/jobs")[1]["jobs"]),
                 msg="the scheduled preset")
    assert not b.problems(), b.problems()


# ------------------------------------------------------------ incremental updates

# Records the page's requests (installed after it has loaded).
COUNT_FETCHES = """
window.__fetched = [];
var f = window.fetch;
window.fetch = function (url) {
  window.__fetched.push(String(url));
  return f.apply(this, arguments);
};"""


def route_events(client, since):
    return [m["payload"]["details"] for m in client.messages("/lab/orchestrator/ndi/evt", since)
            if m["payload"].get("code") == "ROUTE_STATE"]


def test_route_and_status_events_update_the_page_without_refetching_lists(host, make_mqtt, browser):
    """ROUTE_STATE events and registry deltas are applied to the page's
    copy: N route changes (two routes, one unroute) and M status changes
    show without GET /api/ndi/routes or /api/ndi/devices (the old page
    refetched a whole list for each); a newcomer's module status is asked
    for alone (?ids=)."""
    d1 = Device(make_mqtt, "rpi-inc-1", ndi_status={"state": "running", "fields": {
        "input": "CAM-1", "recording": False}})
    d2 = Device(make_mqtt, "rpi-inc-2", ndi_status={"state": "running", "fields": {
        "input": "CAM-2", "recording": False}})
    for d in (d1, d2):
        wait_until(lambda: in_registry(host, d.id), 5, msg="the device in the registry")
    b = browser
    b.open(host.url("/ui/ndi"))
    b.wait_until(lambda: b.attr("#live-state", "data-state") == "open", msg="live updates")
    row = "#ndi-matrix tr[data-device='%s']"
    b.wait_for_css((row % d2.id) + " [data-cell][data-source='CAM-2'][data-actual]")
    # Past the page's start-up requests (the 1 s spacing of the device list).
    b.wait_until(lambda: b.js("return performance.getEntriesByType('resource').filter(function (e) {"
                              " return /api\\/ndi\\/devices/.test(e.name); }).length") >= 2,
                 msg="the start-up device lists")
    b.js(COUNT_FETCHES)

    # Routes to what the devices show: converged at once, no command.
    for d, src in ((d1, "CAM-1"), (d2, "CAM-2")):
        assert host.put("/api/ndi/routes/" + d.id, {"source": src, "actor": "alice"})[0] == 200
        b.wait_for_css((row % d.id) + "[data-state='converged']")
    assert host.delete("/api/ndi/routes/" + d2.id)[0] == 200
    b.wait_for_css((row % d2.id) + "[data-state='unrouted']")
    # Status changes: the routed device's state and the device table's.
    state = "#ndi-devices tr[data-device='%s'] [data-state='%s']"
    for online in (False, True):
        d1.set_status(online)
        b.wait_for_css((row % d1.id) + "[data-state='%s']" % ("converged" if online else "offline"))
        d2.set_status(online)
        b.wait_for_css(state % (d2.id, "online" if online else "offline"))

    d3 = Device(make_mqtt, "rpi-inc-4", ndi_status={"state": "running", "fields": {
        "input": "CAM-2", "recording": True}})
    b.wait_for_text("#ndi-devices tr[data-device='%s'] .recording" % d3.id, "yes")

    fetched = b.js("return window.__fetched")
    assert "/api/ndi/routes" not in fetched, fetched
    # At most the page's 10 s refresh of module status.
    assert fetched.count("/api/ndi/devices") <= 1, fetched
    assert "/api/ndi/devices?ids=" + d3.id in fetched, fetched
    assert not b.problems(), b.problems()


def test_unroute_and_forgetting_publish_the_removal(host, make_mqtt):
    d = Device(make_mqtt, "rpi-inc-3", ndi_status={"state": "running", "fields": {
        "input": "CAM-1", "recording": False}})
    wait_until(lambda: in_registry(host, d.id), 5, msg="the device in the registry")
    watch = make_mqtt()
    watch.subscribe("/lab/orchestrator/ndi/evt")

    def removal(since):
        return watch.wait_for("/lab/orchestrator/ndi/evt", lambda m: m["payload"]["code"] == "ROUTE_STATE"
                              and m["payload"]["details"]["state"] == "removed", since=since)["payload"]

    for how in ("unroute", "forgotten"):
        assert host.put("/api/ndi/routes/" + d.id, {"source": "CAM-1", "actor": "alice"})[0] == 200
        mark = watch.mark()
        if how == "unroute":
            assert host.delete("/api/ndi/routes/" + d.id)[0] == 200
        else:
            assert host.delete("/api/devices/" + d.id)[0] in (200, 204)
        ev = removal(mark)
        assert ev["ok"] is True and ev["action"] == "route", ev
        assert ev["details"] == {"device_id": d.id, "state": "removed", "reason": how}, ev
        assert host.get("/api/ndi/routes/" + d.id)[0] == 404
