"""
The relay example's page (/ui/relay, examples/relay/relay.c) in headless
Chromium: headed once (by the shell, with the title the plugin gave
oh_ui_page), an empty-state message while no relay device is known, and a
row per device once one is.  The plugin is built out of tree against the
installed headers, as test_plugin_abi.py does (its relay_so fixture).
"""

import os
import uuid

import pytest

import harness
from browser import Browser
from test_plugin_abi import installed, relay_so  # noqa: F401 - fixtures

pytestmark = pytest.mark.skipif(not Browser.available(), reason=str(Browser.unavailable_reason()))

ROOT = "/lab"
SHOTS = os.path.join(harness.BUILD_DIR, "screenshots")


def headings(b, text):
    return b.js("var t = arguments[0];"
                "return Array.from(document.querySelectorAll('h1, h2, h3, h4'))"
                ".filter(function (e) { return e.textContent.trim() === t; }).length;", text)


def test_relay_page_heading_once_and_empty_state(make_host, make_mqtt, relay_so, browser):  # noqa: F811
    host = make_host({"plugins": [
        {"module": "ndi", "path": "builtin:ndi"},
        {"module": "relay", "path": relay_so},
    ]})
    host.wait_connected()
    b = browser
    b.open(host.url("/ui/relay"))
    b.wait_for_css("#relays")
    assert headings(b, "Relays") == 1, b.texts("h1, h2, h3")
    assert b.text("main > h1") == "Relays"
    # No device yet: the page says so, once its first load is done.
    b.wait_until(lambda: b.js("var e = document.getElementById('relays-empty');"
                              "return !!e && !e.hidden && e.getBoundingClientRect().height > 0;"),
                 msg="the empty-state message")
    assert "No relay devices" in b.text("#relays-empty")
    assert b.count("#relays tbody tr") == 0

    dev = "rl-" + uuid.uuid4().hex[:8]
    device = make_mqtt()
    device.publish(ROOT + "/device/%s/meta" % dev, {"device_id": dev, "modules": ["relay"]},
                   retain=True)
    device.publish(ROOT + "/device/%s/status" % dev, {"online": True, "device_id": dev},
                   retain=True)
    b.wait_for_css("#relays tr[data-device='%s']" % dev, timeout=10)
    assert b.js("return document.getElementById('relays-empty').hidden;") is True
    assert headings(b, "Relays") == 1
    b.screenshot(os.path.join(SHOTS, "relay.png"))
    assert not b.problems(), b.problems()
