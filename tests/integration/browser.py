"""
A small driver for Debian's headless Chromium (packages chromium,
chromium-driver, python3-selenium), for the web UI tests.  No browser is
ever downloaded: the binaries are /usr/bin/chromium and /usr/bin/chromedriver
(override with OH_CHROMIUM / OH_CHROMEDRIVER).

    with Browser() as b:            # or Browser.available() to decide to skip
        b.open(host.url("/ui/devices"))
        b.wait_for_css("tr[data-device='dev-1']")
        b.text("#device-summary")
        b.screenshot(path)
        assert not b.problems()      # console errors, CSP violations, alerts

Before any page script runs, every page gets a recorder (CDP
Page.addScriptToEvaluateOnNewDocument) that keeps CSP violations, uncaught
errors and alert()/confirm()/prompt() calls in window.__oh, so a test can
tell "nothing executed" from "nothing was looked at".  The browser's console
(goog:loggingPrefs) is collected too: Chrome reports CSP refusals there.

A Chromium takes two seconds of CPU to start, so a test file shares one
(conftest's `browser` fixture): Browser.reset() brings it back to a blank
page in a plain desktop window, or a phone's (mobile emulation), with
nothing recorded.  At most OH_BROWSER_SLOTS (1) browsers run at once on the
machine, across test processes: a slot is a lock file held while a browser
lives (Chromium under heavy load lost its renderer).
"""

import fcntl
import os
import shutil
import tempfile
import time

CHROMIUM = os.environ.get("OH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("OH_CHROMEDRIVER", "/usr/bin/chromedriver")

CHROME_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-quic",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    # Never talk to anything but loopback, whatever a page asks for.
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1;localhost",
]

# Runs in every document before its own scripts.
_RECORDER = r"""
(function () {
  var rec = window.__oh = {csp: [], errors: [], alerts: []};
  document.addEventListener('securitypolicyviolation', function (e) {
    rec.csp.push(e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' +
                 (e.sourceFile || '') + ':' + (e.lineNumber || 0));
  });
  window.addEventListener('error', function (e) {
    rec.errors.push(String(e.message || e.type) + ' ' + (e.filename || '') + ':' + (e.lineno || 0));
  }, true);
  window.addEventListener('unhandledrejection', function (e) {
    rec.errors.push('unhandled rejection: ' + String(e.reason));
  });
  ['alert', 'confirm', 'prompt'].forEach(function (name) {
    window[name] = function (msg) { rec.alerts.push(name + ':' + String(msg)); return null; };
  });
})();
"""


class BrowserUnavailable(Exception):
    pass


def _import_selenium():
    try:
        from selenium import webdriver  # noqa: F401
        return True
    except ImportError:
        return False


class Browser:
    """One headless Chromium with a fresh profile, driven by chromedriver."""

    def __init__(self, width=1280, height=900, timeout=10, mobile=False, log_dir=None):
        why = Browser.unavailable_reason()
        if why:
            raise BrowserUnavailable(why)
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.timeout = timeout
        self.size = (width, height)
        self._slot = _take_slot()
        self.profile = tempfile.mkdtemp(prefix="oh-chromium-")
        self._logs = []
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in CHROME_ARGS + os.environ.get("OH_CHROMIUM_ARGS", "").split():
            opts.add_argument(a)
        opts.add_argument("--user-data-dir=" + self.profile)
        opts.add_argument("--window-size=%d,%d" % (width, height))
        if mobile:
            opts.add_experimental_option("mobileEmulation", {
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0}})
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # Let a test see an alert instead of selenium raising on the next call.
        opts.set_capability("unhandledPromptBehavior", "ignore")
        # chromedriver's log with Chrome's own output, for when a browser
        # dies (conftest attaches it to the report); OH_CHROMEDRIVER_LOG=
        # verbose for every DevTools message too.
        self._own_log_dir = log_dir is None
        log_dir = log_dir or tempfile.mkdtemp(prefix="oh-chromedriver-")
        os.makedirs(log_dir, exist_ok=True)
        self.log_path = os.path.join(log_dir, "chromedriver-%s.log" % os.path.basename(self.profile))
        args = ["--enable-chrome-logs"]
        if os.environ.get("OH_CHROMEDRIVER_LOG") == "verbose":
            args.append("--verbose")
        # No system D-Bus: Chrome aborts when its bus connection drops, and
        # test_ndi_discovery.py starts and stops a system bus of its own.
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent/oh-test-no-bus")
        service = Service(CHROMEDRIVER, log_output=self.log_path, service_args=args, env=env) \
            if _service_takes_log_output() \
            else Service(CHROMEDRIVER, log_path=self.log_path, service_args=args, env=env)
        try:
            self.driver = webdriver.Chrome(service=service, options=opts)
        except Exception:
            shutil.rmtree(self.profile, ignore_errors=True)
            _release_slot(self._slot)
            raise
        self.driver.set_page_load_timeout(timeout)
        self.driver.set_script_timeout(timeout)
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _RECORDER})

    # --- availability -----------------------------------------------------

    @staticmethod
    def unavailable_reason():
        """None when a browser can be started here, else why not."""
        for path in (CHROMIUM, CHROMEDRIVER):
            if not os.access(path, os.X_OK):
                return "%s is not installed" % path
        if not _import_selenium():
            return "python3-selenium is not installed"
        return None

    @staticmethod
    def available():
        return Browser.unavailable_reason() is None

    # --- navigation and queries ---------------------------------------------

    def open(self, url):
        """Loads url and waits for the document to be complete."""
        self.driver.get(url)
        self.wait_until(lambda: self.js("return document.readyState") == "complete",
                        msg="%s to load" % url)
        return self

    def reload(self):
        self.driver.refresh()
        return self

    @property
    def url(self):
        return self.driver.current_url

    def js(self, script, *args):
        """Runs script (a function body; use `return`) in the page."""
        return self.driver.execute_script(script, *args)

    def wait_until(self, fn, timeout=None, interval=0.05, msg="condition"):
        """Calls fn() until truthy and returns its value; exceptions count as
        false (the last one is reported on timeout)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        last = None
        while True:
            try:
                v = fn()
                if v:
                    return v
                last = None
            except Exception as exc:  # noqa: BLE001 - reported on timeout
                last = exc
            if time.monotonic() >= deadline:
                raise AssertionError("browser: timed out waiting for %s%s\nconsole: %s"
                                     % (msg, " (last error: %r)" % (last,) if last else "",
                                        self.console()))
            time.sleep(interval)    # the poll interval of this wait

    def find(self, selector):
        """The elements matching a CSS selector (possibly none)."""
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def wait_for_css(self, selector, timeout=None):
        """The first element matching selector, once there is one."""
        return self.wait_until(lambda: (self.find(selector) or [None])[0], timeout,
                               msg="an element matching %r" % selector)

    def wait_for_text(self, selector, text, timeout=None):
        """Until the element's text contains text; returns the element's text."""
        return self.wait_until(lambda: text in self.text(selector) and self.text(selector),
                               timeout, msg="%r in the text of %r" % (text, selector))

    def text(self, selector):
        """textContent of the first match, "" when there is none.  (Not
        selenium's .text, which drops hidden elements and reflows spaces.)"""
        return self.js("var e = document.querySelector(arguments[0]);"
                       "return e ? e.textContent : '';", selector)

    def texts(self, selector):
        return self.js("return Array.from(document.querySelectorAll(arguments[0]))"
                       ".map(function (e) { return e.textContent; });", selector)

    def attr(self, selector, name):
        return self.js("var e = document.querySelector(arguments[0]);"
                       "return e ? e.getAttribute(arguments[1]) : null;", selector, name)

    def count(self, selector):
        return self.js("return document.querySelectorAll(arguments[0]).length;", selector)

    def click(self, selector):
        self.wait_for_css(selector).click()
        return self

    def type(self, selector, text):
        """Replaces the field's text as a user would: erased (WebDriver's
        clear() fires only "change"; a user erasing it fires "input" too,
        which is what pages listen to), then typed."""
        el = self.wait_for_css(selector)
        el.clear()
        self.js("arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", el)
        if text:
            el.send_keys(text)
        return self

    def screenshot(self, path):
        """Saves a PNG of the viewport (directories are created)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if not self.driver.save_screenshot(path):
            raise AssertionError("screenshot to %s failed" % path)
        return path

    def full_screenshot(self, path):
        """A PNG of the whole page, grown to the document's height."""
        height = self.js("return Math.max(document.body.scrollHeight, window.innerHeight);")
        width = self.js("return window.innerWidth;")
        self.driver.set_window_size(width, min(int(height) + 150, 4000))
        return self.screenshot(path)

    # --- what went wrong ------------------------------------------------------

    def console(self):
        """Every console entry since the browser started (level, message)."""
        try:
            self._logs.extend(self.driver.get_log("browser"))
        except Exception:  # noqa: BLE001 - the log is best effort
            pass
        return [(e.get("level"), e.get("message", "")) for e in self._logs]

    def console_errors(self, ignore=()):
        """SEVERE console entries, minus those containing one of ignore."""
        return [m for lvl, m in self.console()
                if lvl == "SEVERE" and not any(i in m for i in ignore)]

    def recorded(self):
        """The page's recorder: {"csp": [...], "errors": [...], "alerts": [...]}."""
        return self.js("return window.__oh || {csp: [], errors: [], alerts: []};")

    def csp_violations(self):
        rec = self.recorded()
        from_console = [m for _, m in self.console() if "Content Security Policy" in m]
        return list(rec.get("csp", [])) + from_console

    def alert_text(self):
        """The text of an open native dialog, or None."""
        try:
            return self.driver.switch_to.alert.text
        except Exception:  # noqa: BLE001 - NoAlertPresentException and friends
            return None

    def problems(self, ignore=()):
        """Everything that should fail a UI test: console errors, CSP
        violations, uncaught errors, dialogs."""
        out = []
        rec = self.recorded()
        out += ["CSP: " + v for v in rec.get("csp", [])]
        out += ["error: " + v for v in rec.get("errors", [])]
        out += ["dialog: " + v for v in rec.get("alerts", [])]
        alert = self.alert_text()
        if alert is not None:
            out.append("native dialog open: " + alert)
        out += ["console: " + m for m in self.console_errors(ignore)]
        return [p for p in out if not any(i in p for i in ignore)]

    def resources(self):
        """URLs the page loaded (Resource Timing), for "no external resources"."""
        return self.js("return performance.getEntriesByType('resource')"
                       ".map(function (e) { return e.name; });")

    # --- life cycle ------------------------------------------------------------

    name = "chromium"

    def log(self):
        """chromedriver's log, with what Chrome wrote to stderr."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        """False once the browser or its session is gone."""
        try:
            return self.driver.execute_script("return 1;") == 1
        except Exception:  # noqa: BLE001 - any failure means it is no use
            return False

    def reset(self, width=1280, height=900, mobile=False):
        """Back to a blank page in a width x height window, with no console
        entries, no cookies, nothing in the cache, and no emulated media or
        network conditions: what the next test of
        a shared browser starts from.  mobile=True emulates a phone of that
        size (as chromedriver's mobileEmulation does: a mobile viewport at
        pixel ratio 2, with touch)."""
        if self.alert_text() is not None:
            try:
                self.driver.switch_to.alert.dismiss()
            except Exception:  # noqa: BLE001 - gone meanwhile
                pass
        self.driver.get("about:blank")
        self.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        self.driver.execute_cdp_cmd("Network.clearBrowserCache", {})
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        self.driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
        self.driver.execute_cdp_cmd("Emulation.setEmitTouchEventsForMouse", {"enabled": False})
        # What a test may have emulated: a colour scheme, a slow network.
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "", "features": []})
        self.driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        if self.driver.get_window_size() != {"width": width, "height": height}:
            self.driver.set_window_size(width, height)
        if mobile:
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 2.0, "mobile": True})
            self.driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled",
                                        {"enabled": True, "maxTouchPoints": 1})
            self.driver.execute_cdp_cmd("Emulation.setEmitTouchEventsForMouse",
                                        {"enabled": True, "configuration": "mobile"})
        try:
            self.driver.get_log("browser")      # drains what earlier pages logged
        except Exception:  # noqa: BLE001 - the log is best effort
            pass
        self._logs = []
        return self

    def close(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
            if self._own_log_dir:
                shutil.rmtree(os.path.dirname(self.log_path), ignore_errors=True)
            _release_slot(self._slot)
            self._slot = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _service_takes_log_output():
    import inspect
    from selenium.webdriver.chrome.service import Service
    try:
        return "log_output" in inspect.signature(Service.__init__).parameters
    except (TypeError, ValueError):
        return False


# --- browsers running at once, machine-wide ----------------------------------------

SLOT_DIR = os.path.join(tempfile.gettempdir(), "oh-test-browser-slots")


def _take_slot(timeout=300):
    """Waits for one of OH_BROWSER_SLOTS lock files; returns its descriptor
    (the kernel releases it if this process dies)."""
    slots = max(1, int(os.environ.get("OH_BROWSER_SLOTS", "1")))
    os.makedirs(SLOT_DIR, mode=0o1777, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for n in range(slots):
            fd = os.open(os.path.join(SLOT_DIR, "slot-%d.lock" % n), os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError:
                os.close(fd)
        if time.monotonic() >= deadline:
            raise BrowserUnavailable("no browser slot free within %ss (%d in use)" % (timeout, slots))
        time.sleep(0.1)    # the poll interval: a slot's lock gives no notice when freed


def _release_slot(fd):
    if fd is not None:
        try:
            os.close(fd)        # closing the descriptor drops the lock
        except OSError:
            pass
