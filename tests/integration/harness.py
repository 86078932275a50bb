"""
Black-box test harness: a real mosquitto broker, the real orchestrator-host and
orchestrator-device binaries, and MQTT/HTTP clients to drive them.

Everything listens on 127.0.0.1 on free ports and keeps its files in its own
temporary directory, so test files can run in parallel (ctest -j).  Run with
Debian's /usr/bin/python3 (python3-pytest, python3-paho-mqtt 1.6).

Environment:
  OH_BUILD_DIR   where orchestrator-host / orchestrator-device were built
                 (default: <source>/build)
  OH_SOURCE_DIR  the source tree (default: two levels above this file)
"""

import calendar
import copy
import fcntl
import itertools
import json
import os
import random
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

import paho.mqtt.client as paho

LOCALHOST = "127.0.0.1"
MOSQUITTO = os.environ.get("OH_MOSQUITTO", "/usr/sbin/mosquitto")

SOURCE_DIR = os.path.abspath(os.environ.get(
    "OH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_DIR = os.path.abspath(os.environ.get("OH_BUILD_DIR", os.path.join(SOURCE_DIR, "build")))
# Where the NDI tests load the NDI plugin from: the built-in by default, or
# the shared object the same sources build (OH_NDI_PLUGIN=so, or a path),
# so one set of tests proves both roads (tests/CMakeLists.txt runs both).
NDI_PLUGIN = os.environ.get("OH_NDI_PLUGIN") or "builtin:ndi"
if NDI_PLUGIN == "so":
    NDI_PLUGIN = os.path.join(BUILD_DIR, "plugins", "ndi.so")
HOST_BINARY = os.path.join(BUILD_DIR, "orchestrator-host")
DEVICE_BINARY = os.path.join(BUILD_DIR, "orchestrator-device")

# Lines that mean a sanitizer caught a memory or UB bug in a process we ran.
SANITIZER_PATTERNS = [
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
]

# Environment variables the daemons read; cleared from the inherited
# environment so a developer's shell cannot change what a test sees.
_DAEMON_ENV_PREFIXES = ("OH_MQTT_", "OH_HTTP_")

_unique = itertools.count(1)


def unique_name(prefix):
    """A name unique across processes and within this one."""
    return "%s-%d-%d-%s" % (prefix, os.getpid(), next(_unique), uuid.uuid4().hex[:6])


_issued_ports = set()
_ports_lock = threading.Lock()
_port_locks = []          # open lock files: held until this process exits
PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "oh-test-ports")


def _port_range():
    """Ports below the kernel's ephemeral range: no outgoing connection, of
    any process, is ever given one of them, so a port found free stays free
    until the daemon binds it.  (Port 0 would hand out an ephemeral port,
    which the many client connections of parallel test files then take.)"""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    if low < 12000:
        return None
    return 10000, low - 1


def _lock_port(port):
    """Takes the machine-wide claim on port (a lock file, released by the
    kernel when this process ends), so that test processes running side by
    side (ctest -j, both builds at once, pytest-xdist) never pick the same
    port.  False when another process holds it."""
    os.makedirs(PORT_LOCK_DIR, mode=0o1777, exist_ok=True)
    path = os.path.join(PORT_LOCK_DIR, "%d.lock" % port)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _port_locks.append(fd)
    return True


def _bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def free_port():
    """A TCP port on 127.0.0.1 that is free, below the ephemeral range, and
    claimed for this process: no other test process on the machine gets it,
    and this one does not hand it out twice."""
    span = _port_range()
    rng = random.Random("%d-%s" % (os.getpid(), uuid.uuid4().hex))
    for _ in range(500):
        if span is None:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((LOCALHOST, 0))
                port = s.getsockname()[1]
        else:
            port = rng.randint(*span)
        with _ports_lock:
            if port in _issued_ports:
                continue
            if not _lock_port(port):
                continue
            if not _bindable(port):
                continue        # keep the claim: something else uses it
            _issued_ports.add(port)
            return port
    raise RuntimeError("no free port found")


def wait_until(fn, timeout=5, interval=0.02, msg=""):
    """Calls fn() until it returns a truthy value, and returns that value.
    Exceptions raised by fn count as falsy; the last one is shown on timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last_exc = None
        except Exception as exc:  # noqa: BLE001 - we report it on timeout
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = " (last error: %r)" % (last_exc,) if last_exc is not None else ""
            raise AssertionError("timed out after %ss waiting for %s%s"
                                 % (timeout, msg or getattr(fn, "__name__", "condition"), detail))
        time.sleep(interval)    # the poll interval of this wait


def wait_exit(proc, timeout):
    """proc.wait(timeout), woken by the exit itself (a pidfd) rather than
    Popen's polling, whose sleeps grow to 50 ms: every test stops a broker and
    a host or two.  Raises subprocess.TimeoutExpired like Popen.wait."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return proc.wait(timeout)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(None if timeout is None else max(0, timeout) * 1000):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(fd)
    return proc.wait()


def port_accepts(port, host=LOCALHOST):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class _Remove:
    def __repr__(self):
        return "REMOVE"


# In config overrides, a value of REMOVE deletes the key from the generated config.
REMOVE = _Remove()


def deep_merge(base, overrides):
    """Returns a copy of base with overrides merged in (dicts recursively; any
    other value replaces; REMOVE deletes)."""
    out = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if value is REMOVE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def clean_env(extra=None):
    """os.environ without the daemons' own variables and proxies, plus extra
    (a value of None removes a variable)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_DAEMON_ENV_PREFIXES)
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def tail(text, lines=60):
    parts = text.splitlines()
    if len(parts) <= lines:
        return text
    return "[... %d lines cut ...]\n%s" % (len(parts) - lines, "\n".join(parts[-lines:]))


def rss_kb(pid, field="VmRSS"):
    """A process's memory figure from /proc/PID/status, in KiB (VmRSS, or
    VmHWM for the peak since the last clear_refs)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for %d" % (field, pid))


def sanitized(binary):
    """Whether binary was built with AddressSanitizer (RSS and timing
    figures mean little there)."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def sanitizer_findings(text):
    """The log lines that report a sanitizer error."""
    return [line for line in text.splitlines() if any(p in line for p in SANITIZER_PATTERNS)]


# --------------------------------------------------------------------------
# Processes


class _Process:
    """A child process whose stdout+stderr go to one log file (appended to on
    every start).  Records how every run ended, for the teardown checks."""

    name = "process"

    def __init__(self, workdir):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.log_path = os.path.join(workdir, self.name + ".log")
        self.proc = None
        self.runs = []         # dicts: argv, returncode, killed_by_test, hung
        self._current = None

    def _spawn(self, argv, env=None, cwd=None):
        with open(self.log_path, "ab") as log:
            log.write(("=== %s: %s\n" % (time.strftime("%H:%M:%S"), " ".join(argv))).encode())
            log.flush()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         cwd=cwd or self.workdir, start_new_session=True)
        self._current = {"argv": argv, "returncode": None, "killed_by_test": False, "hung": False}
        self.runs.append(self._current)
        return self.proc

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _reap(self):
        if self.proc is not None and self._current is not None:
            rc = self.proc.poll()
            if rc is not None:
                self._current["returncode"] = rc
        return self.proc.returncode if self.proc else None

    def stop(self, timeout=10):
        """SIGTERM, then wait; SIGKILL (and record a hang) after timeout.
        Returns the exit code (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                wait_exit(self.proc, timeout)
            except subprocess.TimeoutExpired:
                self._current["hung"] = True
                self._current["killed_by_test"] = True
                self.proc.kill()
                self.proc.wait()
        return self._reap()

    def kill(self):
        """SIGKILL, deliberately: a test simulating a crash."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._current["killed_by_test"] = True
            self.proc.kill()
            self.proc.wait()
        return self._reap()

    def wait(self, timeout=10):
        """Waits for the process to exit on its own; returns the exit code."""
        wait_exit(self.proc, timeout)
        return self._reap()

    def log(self):
        return read_text(self.log_path)

    def problems(self):
        """What went wrong with this process that should fail the test."""
        self._reap()
        out = []
        for run in self.runs:
            rc = run["returncode"]
            if run["hung"]:
                out.append("%s did not exit within the timeout after SIGTERM" % self.name)
            elif rc is not None and rc < 0 and not run["killed_by_test"]:
                try:
                    sig = signal.Signals(-rc).name
                except ValueError:
                    sig = str(-rc)
                out.append("%s died with signal %s" % (self.name, sig))
        for line in sanitizer_findings(self.log()):
            out.append("%s: %s" % (self.name, line.strip()))
        return out


class Broker(_Process):
    """A mosquitto on 127.0.0.1 with a generated config.

    Broker(persistence=True) keeps retained messages across stop()/start().
    extra_conf is appended to the config verbatim.  Broker(stock=True) runs
    mosquitto with its default limits (1000 queued and 20 in-flight messages
    per client, no TCP_NODELAY), as a lab's unedited install would: only the
    listener, allow_anonymous and persistence lines are written."""

    name = "mosquitto"

    def __init__(self, workdir=None, port=None, persistence=False, extra_conf="", start=True,
                 stock=False):
        if workdir is None:
            import tempfile
            workdir = tempfile.mkdtemp(prefix="oh-broker-")
        super().__init__(workdir)
        self.host = LOCALHOST
        self.port = port or free_port()
        self._fixed_port = port is not None
        self.persistence = persistence
        self.extra_conf = extra_conf
        self.stock = stock
        self.conf_path = os.path.join(workdir, "mosquitto.conf")
        self._write_conf()
        if start:
            self.start()

    def _write_conf(self):
        lines = [
            "listener %d %s" % (self.port, LOCALHOST),
        ]
        if "allow_anonymous" not in self.extra_conf:
            lines.append("allow_anonymous true")
        if not self.stock:
            lines += ["set_tcp_nodelay true", "max_queued_messages 100000"]
        lines.append("persistence %s" % ("true" if self.persistence else "false"))
        if self.persistence:
            lines.append("persistence_location %s/" % self.workdir)
            if not self.stock:
                lines.append("autosave_interval 1")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # As root, mosquitto would switch to the "mosquitto" user and then
            # fail to write its files in our private temp dir.
            lines.append("user root")
        if self.extra_conf:
            lines.append(self.extra_conf)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=10):
        """(Re)starts on the same port and waits until it accepts TCP."""
        if self.running():
            return
        for attempt in range(5):
            self._spawn([MOSQUITTO, "-c", self.conf_path])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if port_accepts(self.port):
                    return
                time.sleep(0.005)    # the poll interval: mosquitto says nothing when it listens
            self._reap()
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError("mosquitto did not accept on port %d within %ss:\n%s"
                                     % (self.port, timeout, tail(self.log())))
            # Exited: most likely someone else took the port in the meantime.
            # Pick another one, unless a test depends on this port already.
            if self._fixed_port or len(self.runs) > attempt + 1 or attempt == 4:
                raise AssertionError("mosquitto exited (%s) on port %d:\n%s"
                                     % (self.proc.returncode, self.port, tail(self.log())))
            self.runs.pop()
            self.port = free_port()
            self._write_conf()

    def stop(self, timeout=10):
        """SIGTERM, and a connection to wake it: mosquitto 2.0 notices the
        signal only when its event loop wakes, which with clients gone can
        be 100 ms later (every test stops one)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            port_accepts(self.port)
        return super().stop(timeout)

    def restart(self):
        self.stop()
        self.start()

    def problems(self):
        # The broker is a tool, not the system under test: report only hangs.
        return [p for p in super().problems() if "did not exit" in p]


class Host(_Process):
    """The orchestrator-host under test, with a generated JSON config."""

    name = "orchestrator-host"

    def __init__(self, workdir, config, env=None, args=None, binary=None):
        super().__init__(workdir)
        self.binary = binary or HOST_BINARY
        self.config = config
        self.config_path = os.path.join(workdir, "host.json")
        self.env = dict(env or {})
        self.args = list(args or [])
        self.write_config(config)

    # --- config ---------------------------------------------------------

    @property
    def http_port(self):
        override = self.env.get("OH_HTTP_PORT")
        if override:
            return int(override)
        return int(self.config.get("http", {}).get("port", 8080))

    @property
    def state_dir(self):
        return self.config.get("state_dir")

    def write_config(self, config_or_text):
        """Writes the config file: a dict (as JSON, and kept as .config) or raw text."""
        if isinstance(config_or_text, (dict, list)):
            if isinstance(config_or_text, dict):
                self.config = config_or_text
            text = json.dumps(config_or_text, indent=2)
        else:
            text = config_or_text
        with open(self.config_path, "w") as f:
            f.write(text)

    # --- process --------------------------------------------------------

    def argv(self, args=None):
        return [self.binary, "--config", self.config_path] + list(self.args if args is None else args)

    def start(self, wait=True, timeout=10):
        """Starts the daemon; with wait, until /healthz answers."""
        if self.running():
            raise AssertionError("host already running")
        if not os.path.exists(self.binary):
            raise AssertionError("%s does not exist: build the project first" % self.binary)
        self._started_wall = time.time()
        self._spawn(self.argv(), env=clean_env(self.env))
        if wait:
            self.wait_ready(timeout)
        return self

    def restart(self, wait=True, timeout=10):
        """Stops (SIGTERM) and starts again with the same config and state dir."""
        self.stop()
        return self.start(wait=wait, timeout=timeout)

    def run(self, args, timeout=10, env=None):
        """Runs the binary once in the foreground (e.g. --version,
        --check-config); returns CompletedProcess with text stdout/stderr.
        args replaces the default argument list entirely."""
        e = dict(self.env)
        e.update(env or {})
        cp = subprocess.run([self.binary] + list(args), stdin=subprocess.DEVNULL,
                            capture_output=True, env=clean_env(e), cwd=self.workdir,
                            timeout=timeout)
        cp.stdout = cp.stdout.decode("utf-8", "replace")
        cp.stderr = cp.stderr.decode("utf-8", "replace")
        with open(self.log_path, "ab") as log:
            log.write(("=== run %s -> %d\n%s%s" % (" ".join(args), cp.returncode,
                                                    cp.stdout, cp.stderr)).encode())
        if cp.returncode < 0:
            self.runs.append({"argv": args, "returncode": cp.returncode,
                              "killed_by_test": False, "hung": False})
        return cp

    def wait_exit(self, timeout=10):
        """Waits for the daemon to exit on its own (e.g. after a config error)."""
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("host still running after %ss:\n%s" % (timeout, tail(self.log())))

    def _check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            self._reap()
            raise AssertionError("host exited with %s:\n%s" % (self.proc.returncode, tail(self.log())))

    def wait_ready(self, timeout=10):
        """Until GET /healthz answers at all (any status)."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                return self.get("/healthz", timeout=1)
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() >= deadline:
                raise AssertionError("host did not answer /healthz within %ss:\n%s"
                                     % (timeout, tail(self.log())))
            time.sleep(0.01)    # the poll interval of this wait

    def health(self):
        return self.get("/healthz", timeout=2)

    # A plain harness Broker this host talks to (conftest's make_host sets
    # it when it knows): wait_connected() then waits for the subscriptions
    # too (wait_subscribed).
    birth_broker = None

    def wait_connected(self, timeout=10):
        """Until /healthz says "mqtt": "connected" and, with birth_broker,
        the broker has the host's subscriptions; returns the healthz body."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            self._check_alive()
            try:
                last = self.get("/healthz", timeout=1)
                if isinstance(last[1], dict) and last[1].get("mqtt") == "connected":
                    if self.birth_broker is not None:
                        self.wait_subscribed(self.birth_broker,
                                             max(1.0, deadline - time.monotonic()))
                    return last[1]
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise AssertionError("host not connected to MQTT within %ss (last /healthz: %r):\n%s"
                                     % (timeout, last, tail(self.log())))
            time.sleep(0.02)    # the poll interval of this wait

    def wait_subscribed(self, broker, timeout=10):
        """Until broker has this run's subscriptions.  /healthz says
        "connected" once the CONNACK came; the host then subscribes and,
        after its SUBSCRIBEs on the same connection, publishes its retained
        birth ({root}/orchestrator/status, online, node = its client id), so
        a broker holding the birth holds the subscriptions.  Before that, a
        message a test publishes can reach no subscription of the host."""
        if self.config.get("ha"):
            # A host of a pair: only the leader's birth is retained, and the
            # standby's plain one may be gone before we subscribe
            # (docs/ha.md); test_ha.py waits on the roles instead.
            return
        root = self.config.get("topic_root", "/lab")
        node = (self.config.get("mqtt") or {}).get("client_id")
        since = int(getattr(self, "_started_wall", 0))
        topic = root + "/orchestrator/status"

        def this_birth(m):
            p = m["payload"]
            if p.get("online") is not True or (node and p.get("node") != node):
                return False
            # The ts of this run, not a previous run's birth still retained.
            return calendar.timegm(time.strptime(p["ts"], "%Y-%m-%dT%H:%M:%SZ")) >= since

        c = MqttClient(broker.host, broker.port)
        try:
            c.subscribe(topic)
            c.wait_for(topic, this_birth, timeout)
        except AssertionError as exc:
            raise AssertionError("host's subscriptions not in place: %s\n%s"
                                 % (exc, tail(self.log())))
        finally:
            c.close()

    def wait_disconnected(self, timeout=10):
        return wait_until(lambda: self.get("/healthz")[1].get("mqtt") == "disconnected",
                          timeout, 0.05, "host /healthz to say mqtt disconnected")

    # --- HTTP -----------------------------------------------------------

    def url(self, path):
        return "http://%s:%d%s" % (LOCALHOST, self.http_port, path)

    def request(self, method, path, body=None, raw=None, headers=None, timeout=10):
        """Any request; body is JSON-encoded, raw (bytes or str) is sent as is.
        Returns (status, headers, body text)."""
        data = None
        hdrs = dict(headers or {})
        if raw is not None:
            data = raw.encode() if isinstance(raw, str) else raw
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url(path), data=data, method=method, headers=hdrs)
        try:
            with _opener.open(req, timeout=timeout) as resp:
                return resp.status, resp.headers, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.headers, err.read().decode("utf-8", "replace")

    def _json_request(self, method, path, body=None, headers=None, timeout=10):
        status, _, text = self.request(method, path, body=body, headers=headers, timeout=timeout)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def get(self, path, headers=None, timeout=10):
        """(status, parsed JSON or text)."""
        return self._json_request("GET", path, headers=headers, timeout=timeout)

    def post(self, path, body=None, headers=None, timeout=10):
        return self._json_request("POST", path, body=body, headers=headers, timeout=timeout)

    def put(self, path, body=None, headers=None, timeout=10):
        return self._json_request("PUT", path, body=body, headers=headers, timeout=timeout)

    def delete(self, path, headers=None, timeout=10):
        return self._json_request("DELETE", path, headers=headers, timeout=timeout)


class Device(_Process):
    """An orchestrator-device agent with a generated JSON config."""

    name = "orchestrator-device"

    def __init__(self, workdir, config, extra_args=None, env=None, binary=None):
        super().__init__(workdir)
        self.binary = binary or DEVICE_BINARY
        self.config = config
        self.config_path = os.path.join(workdir, "device.json")
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)

    def start(self):
        if self.running():
            raise AssertionError("device already running")
        self._spawn([self.binary, "--config", self.config_path] + self.extra_args,
                    env=clean_env(self.env))
        return self

    def restart(self):
        self.stop()
        return self.start()


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --------------------------------------------------------------------------
# MQTT client


def _decode(raw):
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw


def encode_payload(payload):
    if payload is None:
        return b""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload).encode()


def _mqtt_string(data):
    return len(data).to_bytes(2, "big") + data


def _mqtt_packet(first_byte, body):
    """A packet: the fixed header (with the variable-length remaining
    length) and body."""
    n = len(body)
    length = bytearray()
    while True:
        digit, n = n % 128, n // 128
        length.append(digit | (0x80 if n else 0))
        if not n:
            break
    return bytes([first_byte]) + bytes(length) + body


def bulk_publish(host, port, messages, qos=1, retain=False, window=1000, timeout=60,
                 client_id=None):
    """Publishes many messages over one MQTT 3.1.1 connection and returns
    once the broker acknowledged every one (QoS 1; QoS 0: once all are
    written).  messages: (topic, payload) pairs, the payload as
    encode_payload() takes it.  At most `window` unacknowledged at a time,
    in order: the traffic a paho client with max_inflight_messages=window
    sends, without paho's per-message bookkeeping (0.1 ms of CPU each, which
    for tens of thousands of messages is seconds of a busy machine)."""
    if qos not in (0, 1):
        raise ValueError("qos 0 or 1")
    deadline = time.monotonic() + timeout
    cid = (client_id or unique_name("oh-bulk")).encode()
    connect = _mqtt_string(b"MQTT") + bytes([4, 0x02, 0, 0]) + _mqtt_string(cid)
    flags = 0x30 | (qos << 1) | (1 if retain else 0)
    with socket.create_connection((host, port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(_mqtt_packet(0x10, connect))
        pending = b""
        while len(pending) < 4:
            chunk = s.recv(4)
            if not chunk:
                raise AssertionError("bulk_publish: %s:%d closed before CONNACK" % (host, port))
            pending += chunk
        if pending[0] != 0x20 or pending[3] != 0:
            raise AssertionError("bulk_publish: CONNACK refused: %r" % pending[:4])
        pending = pending[4:]
        inflight = set()
        next_id = 0
        it = iter(messages)
        done = False
        while not done or inflight:
            out = bytearray()
            while not done and (qos == 0 or len(inflight) < window) and len(out) < 256 * 1024:
                try:
                    topic_name, payload = next(it)
                except StopIteration:
                    done = True
                    break
                body = _mqtt_string(topic_name.encode())
                if qos:
                    next_id = next_id % 65535 + 1
                    inflight.add(next_id)
                    body += next_id.to_bytes(2, "big")
                out += _mqtt_packet(flags, body + encode_payload(payload))
            if out:
                s.sendall(out)
            if qos == 0 or not inflight or (not done and len(inflight) < window):
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("bulk_publish: %d message(s) not acknowledged within %ss"
                                     % (len(inflight), timeout))
            s.settimeout(left)
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("bulk_publish: the broker closed the connection with %d "
                                     "message(s) unacknowledged" % len(inflight))
            pending += chunk
            while len(pending) >= 4:
                if pending[0] != 0x40 or pending[1] != 2:
                    raise AssertionError("bulk_publish: expected PUBACK, got %r" % pending[:8])
                inflight.discard(int.from_bytes(pending[2:4], "big"))
                pending = pending[4:]
        s.sendall(b"\xe0\x00")          # DISCONNECT


class MqttClient:
    """A paho client on its own loop thread that records every message."""

    def __init__(self, broker_host, broker_port, client_id=None, clean_session=True,
                 timeout=10, will=None, username=None, password=None):
        self.client_id = client_id or unique_name("oh-test")
        self.host = broker_host
        self.port = broker_port
        self._cond = threading.Condition()
        self._messages = []
        self._acked = set()
        self._subscriptions = {}   # filter -> qos, renewed on reconnect
        self._connected = False
        self.connect_count = 0
        self.client = paho.Client(client_id=self.client_id, clean_session=clean_session,
                                  protocol=paho.MQTTv311)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        if username is not None:
            self.client.username_pw_set(username, password)
        if will:
            self.client.will_set(will["topic"], encode_payload(will.get("payload")),
                                 will.get("qos", 1), will.get("retain", False))
        self.client.connect_async(broker_host, broker_port, keepalive=30)
        self.client.loop_start()
        self.wait_connected(timeout)

    # --- callbacks (paho thread) -----------------------------------------

    def _on_connect(self, client, userdata, flags, rc):
        # No Nagle delay between a test's small packets and the next.
        sock = client.socket()
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        with self._cond:
            if rc != 0:
                return
            self._connected = True
            self.connect_count += 1
            subs = list(self._subscriptions.items())
            self._cond.notify_all()
        if self.connect_count > 1 and subs:
            client.subscribe(subs)

    def _on_disconnect(self, client, userdata, rc):
        with self._cond:
            self._connected = False
            self._cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted_qos):
        with self._cond:
            self._acked.add(mid)
            self._cond.notify_all()

    def _on_publish(self, client, userdata, mid):
        # paho marks the message info published before it calls this.
        with self._cond:
            self._cond.notify_all()

    def _on_message(self, client, userdata, msg):
        m = {"topic": msg.topic, "payload": _decode(msg.payload), "raw": bytes(msg.payload),
             "retain": bool(msg.retain), "qos": msg.qos, "time": time.monotonic()}
        with self._cond:
            self._messages.append(m)
            self._cond.notify_all()

    # --- API ------------------------------------------------------------

    @property
    def connected(self):
        return self._connected

    def wait_connected(self, timeout=10):
        with self._cond:
            if not self._cond.wait_for(lambda: self._connected, timeout):
                raise AssertionError("MQTT client %s could not connect to %s:%d within %ss"
                                     % (self.client_id, self.host, self.port, timeout))

    def subscribe(self, topic_filter, qos=1, timeout=10):
        """Subscribes and waits for the SUBACK."""
        with self._cond:
            self._subscriptions[topic_filter] = qos
        rc, mid = self.client.subscribe(topic_filter, qos)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise AssertionError("subscribe %s failed: %s" % (topic_filter, paho.error_string(rc)))
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._acked, timeout):
                raise AssertionError("no SUBACK for %s within %ss" % (topic_filter, timeout))

    def unsubscribe(self, topic_filter):
        with self._cond:
            self._subscriptions.pop(topic_filter, None)
        self.client.unsubscribe(topic_filter)

    def publish(self, topic, payload=None, qos=1, retain=False, wait=True, timeout=10):
        """Publishes a dict/list (as JSON), str or bytes; for qos > 0 and
        wait, returns once the broker acknowledged it.  Returns paho's
        MQTTMessageInfo."""
        info = self.client.publish(topic, encode_payload(payload), qos=qos, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN, paho.MQTT_ERR_QUEUE_SIZE):
            raise AssertionError("publish to %s failed: %s" % (topic, paho.error_string(info.rc)))
        if wait and qos > 0:
            self.wait_published([info], timeout)
        return info

    def wait_published(self, infos, timeout=30):
        """Waits until every MQTTMessageInfo in infos (of this client)
        completed: woken by each PUBACK, not polling."""
        deadline = time.monotonic() + timeout
        with self._cond:
            for info in infos:
                while not info.is_published():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise AssertionError("publish (mid %s) not acknowledged within %ss"
                                             % (info.mid, timeout))
                    self._cond.wait(min(remaining, 0.5))

    def mark(self):
        """The number of messages received so far; pass as since= to look only at later ones."""
        with self._cond:
            return len(self._messages)

    def messages(self, topic_filter="#", since=0):
        with self._cond:
            return [m for m in self._messages[since:]
                    if paho.topic_matches_sub(topic_filter, m["topic"])]

    def clear(self):
        with self._cond:
            self._messages.clear()

    def _describe(self, topic_filter):
        with self._cond:
            msgs = list(self._messages)
        lines = ["received %d message(s) in all:" % len(msgs)]
        for m in msgs[-30:]:
            raw = m["raw"]
            shown = raw[:300].decode("utf-8", "replace") + ("..." if len(raw) > 300 else "")
            lines.append("  %s%s %s" % (m["topic"], " (retained)" if m["retain"] else "", shown))
        if len(msgs) > 30:
            lines.insert(1, "  [... %d earlier ...]" % (len(msgs) - 30))
        return "\n".join(lines)

    def wait_for(self, topic_filter, predicate=None, timeout=5, since=0):
        """The first message (received since subscribe, or yet to come; with
        since, only after that mark) whose topic matches the filter and for
        which predicate(message) is true.  A predicate that raises counts as
        false."""

        def ok(m):
            if not paho.topic_matches_sub(topic_filter, m["topic"]):
                return False
            if predicate is None:
                return True
            try:
                return bool(predicate(m))
            except Exception:  # noqa: BLE001 - a predicate poking at a different shape
                return False

        deadline = time.monotonic() + timeout
        index = since
        with self._cond:
            while True:
                while index < len(self._messages):
                    m = self._messages[index]
                    index += 1
                    if ok(m):
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        raise AssertionError("no message on %s matching the predicate within %ss; %s"
                             % (topic_filter, timeout, self._describe(topic_filter)))

    def close(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
