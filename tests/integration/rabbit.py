"""
A private RabbitMQ node (Debian's rabbitmq-server, 3.10) as a second real MQTT
broker for the integration tests.

    from rabbit import RabbitBroker

    rb = RabbitBroker(str(tmp_path / "rabbit"))
    rb.start()                      # waits until an MQTT CONNECT gets CONNACK 0
    client = MqttClient(rb.host, rb.port)
    ...
    rb.restart()                    # same ports, same data dir
    rb.close()                      # stop; keep the logs in workdir, drop the data

Every node is private, so several test files can run one each in parallel
(ctest -j): it runs as the "rabbitmq" system user with its own HOME and Erlang
cookie, a unique node name (rabbit-<unique>@localhost), its own data, log,
config and enabled-plugins files (only rabbitmq_mqtt), its own epmd on a free
127.0.0.1 port, the Erlang distribution on 127.0.0.1 on a free port, no AMQP
listener, and MQTT on 127.0.0.1:<free port> with anonymous logins (as guest).
Nothing is read from /etc/rabbitmq or /var/lib/rabbitmq.

The node's files live in a directory that the rabbitmq user can reach: the
given workdir if every directory above it lets that user through, else a fresh
/tmp/oh-rabbit-* directory (pytest's temporary directories are 0700 root), with
a symlink "node" to it in workdir.  close() copies the logs into workdir and
removes such a /tmp directory.

Must run as root (to switch to the rabbitmq user), or as that user itself.
"""

import atexit
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import string
import subprocess
import tempfile
import time
import uuid
import weakref

import paho.mqtt.client as paho

from harness import LOCALHOST, clean_env, free_port, port_accepts, read_text, tail

RABBITMQ_BIN = os.environ.get("OH_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin")
RABBITMQ_SERVER = os.path.join(RABBITMQ_BIN, "rabbitmq-server")
EPMD = shutil.which("epmd") or "/usr/bin/epmd"
RABBITMQ_USER = "rabbitmq"

# The applications a node with only rabbitmq_mqtt needs; their dependencies
# (from the .app files) are added.  A private plugins directory with just these
# (symlinks) boots markedly faster than the full one (71 applications): RabbitMQ
# 3.10 scans every module of the loaded applications at boot.
_ROOT_APPS = ("rabbit", "rabbitmq_prelaunch", "rabbit_common", "rabbitmq_mqtt")

# Keeps the Erlang distribution (the node's and the CLI tools') on loopback.
_DIST_LOOPBACK = "-kernel inet_dist_use_interface {127,0,0,1}"


# Nodes not stopped yet: stopped at interpreter exit, so that an aborted test
# run leaves no beam or epmd behind.
_live = weakref.WeakSet()


@atexit.register
def _stop_all():
    for node in list(_live):
        try:
            node.stop(timeout=15)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def available():
    """Why a RabbitBroker cannot run here ("" if it can): for pytest.skip."""
    if not os.path.exists(RABBITMQ_SERVER):
        return "%s is not installed (apt-get install rabbitmq-server)" % RABBITMQ_SERVER
    if not os.path.exists(EPMD):
        return "epmd is not installed"
    try:
        pwd.getpwnam(RABBITMQ_USER)
    except KeyError:
        return "there is no %s user" % RABBITMQ_USER
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != RABBITMQ_USER:
        return "RabbitBroker needs root (to run the node as %s)" % RABBITMQ_USER
    return ""


def _real_home():
    """The installed RabbitMQ's home: the directory with sbin/, escript/ and
    plugins/ (/usr/lib/rabbitmq/lib/rabbitmq_server-<version> on Debian)."""
    return os.path.dirname(os.path.dirname(os.path.realpath(RABBITMQ_SERVER)))


def _app_deps(app_file):
    with open(app_file) as f:
        text = f.read()
    out = []
    for key in ("applications", "included_applications"):
        m = re.search(r"\{\s*%s\s*,\s*\[([^\]]*)\]" % key, text)
        if m:
            out += [x.strip().strip("'\"") for x in m.group(1).split(",") if x.strip()]
    return out


def _minimal_plugins(plugins_dir, roots=_ROOT_APPS):
    """{directory name: path} of the applications in plugins_dir that roots
    need (transitively); OTP's own applications are not in plugins_dir."""
    dirs = {}
    for d in os.listdir(plugins_dir):
        path = os.path.join(plugins_dir, d)
        if os.path.isdir(path):
            dirs[d.rsplit("-", 1)[0]] = d
    need, todo = set(), list(roots)
    while todo:
        app = todo.pop()
        if app in need or app not in dirs:
            continue
        need.add(app)
        todo += _app_deps(os.path.join(plugins_dir, dirs[app], "ebin", app + ".app"))
    return {dirs[a]: os.path.join(plugins_dir, dirs[a]) for a in need}


def _user_can_traverse(path, uid, gids):
    """Whether uid (in groups gids) may search every directory from / to path."""
    path = os.path.abspath(path)
    parts = []
    while True:
        parts.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for d in parts:
        try:
            st = os.stat(d)
        except OSError:
            return False
        if uid == 0:
            continue
        if st.st_uid == uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in gids:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return False
    return True


class RabbitBroker:
    """A RabbitMQ node with the MQTT plugin on 127.0.0.1:<port>.

    RabbitBroker(workdir=None, port=None, extra_conf="", start=False,
                 all_plugins=False)
      port         the MQTT port (default: a free one; a fixed one is never
                   changed, a free one may be re-picked if the first boot
                   finds it taken)
      extra_conf   lines appended to rabbitmq.conf (new-style sysctl format)
      all_plugins  put every installed plugin on the code path (slower boot)

    start(timeout=90) -> seconds; stop(timeout=30); kill() (SIGKILL, a crash);
    restart(); close(); running(); mqtt_ready(); rabbitmqctl(*args);
    pids(); env(); log(); problems().

    Attributes: host, port (MQTT), dist_port, epmd_port, nodename, nodedir
    (its files), log_path (the node's log), stdout_path, last_start_seconds.

    RabbitMQ 3.10.8 MQTT quirks, as observed with this class: retained
    messages reach exact-topic subscriptions only, never wildcard ones; a '.'
    in a topic comes out as '/' ("a/rpi.01/b" is delivered as "a/rpi/01/b"
    and matches "a/+/+/b", not "a/+/b"); QoS 2 is granted and delivered as
    QoS 1; MQTT 5 CONNECT is dropped without a CONNACK; retained messages
    survive stop()/start() but not kill().

    Duck-types harness._Process (name, log_path, log(), stop(), problems()),
    so it can go into a test item's _oh_processes to get its log attached to
    failure reports."""

    name = "rabbitmq"

    def __init__(self, workdir=None, port=None, extra_conf="", start=False, all_plugins=False):
        self._own_workdir = workdir is None
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="oh-rabbit-work-")
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.host = LOCALHOST
        self.port = port or free_port()
        self._fixed_port = port is not None
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.extra_conf = extra_conf
        self.all_plugins = all_plugins
        self.nodename = "rabbit-%d-%s@localhost" % (os.getpid(), uuid.uuid4().hex[:8])

        pw = pwd.getpwnam(RABBITMQ_USER)
        self._uid, self._gid = pw.pw_uid, pw.pw_gid
        gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if RABBITMQ_USER in g.gr_mem}
        if _user_can_traverse(self.workdir, self._uid, gids):
            self.nodedir = os.path.join(self.workdir, "node")
            os.makedirs(self.nodedir, exist_ok=True)
            self._private_nodedir = False
        else:
            self.nodedir = tempfile.mkdtemp(prefix="oh-rabbit-", dir="/tmp")
            self._private_nodedir = True
            link = os.path.join(self.workdir, "node")
            if not os.path.lexists(link):
                os.symlink(self.nodedir, link)
        self.home = os.path.join(self.nodedir, "home")
        self.mnesia_base = os.path.join(self.nodedir, "mnesia")
        self.log_base = os.path.join(self.nodedir, "log")
        self.log_path = os.path.join(self.log_base, "rabbit.log")
        self.stdout_path = os.path.join(self.nodedir, "rabbitmq-server.out")
        self.epmd_log_path = os.path.join(self.nodedir, "epmd.out")
        self.rabbitmq_home = os.path.join(self.nodedir, "rabbitmq-home")
        self.conf_path = os.path.join(self.nodedir, "rabbitmq.conf")
        self.plugins_path = os.path.join(self.nodedir, "enabled_plugins")
        self.cookie = "".join(secrets.choice(string.ascii_uppercase) for _ in range(32))

        self.proc = None        # the rabbitmq-server script (its own process group)
        self.epmd = None
        self.runs = []          # dicts: returncode, hung, killed_by_test, stray
        self.last_start_seconds = None
        self._setup_files()
        _live.add(self)
        if start:
            self.start()

    # --- files ---------------------------------------------------------------

    def _chown(self, path):
        if os.geteuid() == 0:
            os.chown(path, self._uid, self._gid)

    def _write(self, path, text, mode=0o600):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        self._chown(path)

    def _setup_files(self):
        for d in (self.nodedir, self.home, self.mnesia_base, self.log_base):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o700)
            self._chown(d)
        self._setup_home()
        cookie = os.path.join(self.home, ".erlang.cookie")
        if not os.path.exists(cookie):
            self._write(cookie, self.cookie, 0o400)
        self._write(self.plugins_path, "[rabbitmq_mqtt].\n")
        self._write(os.path.join(self.nodedir, "rabbitmq-env.conf"), "# private node: empty\n")
        self._write_conf()

    def _setup_home(self):
        """A RabbitMQ home of symlinks: the real sbin/ and escript/, and a
        plugins/ with only what rabbitmq_mqtt needs (unless all_plugins)."""
        real = _real_home()
        home = self.rabbitmq_home
        if os.path.isdir(home):
            return
        os.makedirs(os.path.join(home, "plugins"))
        for d in ("sbin", "escript"):
            os.symlink(os.path.join(real, d), os.path.join(home, d))
        real_plugins = os.path.join(real, "plugins")
        if self.all_plugins:
            apps = {d: os.path.join(real_plugins, d) for d in os.listdir(real_plugins)}
        else:
            apps = _minimal_plugins(real_plugins)
        for name, path in apps.items():
            os.symlink(path, os.path.join(home, "plugins", name))
        for d in (home, os.path.join(home, "plugins")):
            os.chmod(d, 0o755)

    def _write_conf(self):
        lines = [
            "listeners.tcp = none",
            "listeners.ssl = none",
            "mqtt.listeners.tcp.1 = %s:%d" % (LOCALHOST, self.port),
            "mqtt.listeners.ssl = none",
            "mqtt.allow_anonymous = true",
            "mqtt.default_user = guest",
            "mqtt.default_pass = guest",
            "mqtt.vhost = /",
            "mqtt.exchange = amq.topic",
            "log.console = false",
            "log.file.level = info",
            "disk_free_limit.absolute = 10MB",
        ]
        if self.extra_conf:
            lines.append(self.extra_conf)
        self._write(self.conf_path, "\n".join(lines) + "\n")

    def env(self):
        """The environment of the node, its epmd and the CLI tools."""
        base = {k: v for k, v in clean_env().items()
                if not k.startswith(("RABBITMQ_", "ERL_")) and k not in ("NOTIFY_SOCKET", "ERLANG_COOKIE")}
        base.update({
            "HOME": self.home,
            "USER": RABBITMQ_USER,
            "LOGNAME": RABBITMQ_USER,
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
            "RABBITMQ_SCRIPTS_DIR": os.path.join(self.rabbitmq_home, "sbin"),
            "RABBITMQ_PLUGINS_DIR": os.path.join(self.rabbitmq_home, "plugins"),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_CONF_ENV_FILE": os.path.join(self.nodedir, "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": self.conf_path,
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(self.nodedir, "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": self.plugins_path,
            "RABBITMQ_MNESIA_BASE": self.mnesia_base,
            "RABBITMQ_MNESIA_DIR": os.path.join(self.mnesia_base, self.nodename),
            "RABBITMQ_LOG_BASE": self.log_base,
            "RABBITMQ_LOGS": self.log_path,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": _DIST_LOOPBACK,
            "RABBITMQ_CTL_ERL_ARGS": _DIST_LOOPBACK,
            # The CLI tools' own distribution port: any free one (the default
            # range 35672-35682 is shared by every node on the machine).
            "RABBITMQ_CTL_DIST_PORT_MIN": "0",
            "RABBITMQ_CTL_DIST_PORT_MAX": "0",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": LOCALHOST,
        })
        return base

    def _script(self, name):
        return os.path.join(self.rabbitmq_home, "sbin", name)

    def _as_user(self, argv):
        if os.geteuid() != 0:
            return list(argv)
        return ["setpriv", "--reuid=%d" % self._uid, "--regid=%d" % self._gid,
                "--init-groups", "--"] + list(argv)

    # --- processes ---------------------------------------------------------

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self, argv, log_path):
        with open(log_path, "ab") as log:
            log.write(("=== %s: %s\n" % (time.strftime("%H:%M:%S"), " ".join(argv))).encode())
            log.flush()
            return subprocess.Popen(self._as_user(argv), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=self.env(), cwd=self.nodedir,
                                    start_new_session=True)

    def _start_epmd(self, timeout):
        if self.epmd is not None and self.epmd.poll() is None:
            return True
        self.epmd = self._spawn([EPMD, "-port", str(self.epmd_port), "-address", LOCALHOST],
                                self.epmd_log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.epmd.poll() is not None:
                return False
            if port_accepts(self.epmd_port):
                return True
            time.sleep(0.02)    # the poll interval: epmd says nothing when it listens
        raise AssertionError("epmd did not accept on port %d within %ss:\n%s"
                             % (self.epmd_port, timeout, tail(read_text(self.epmd_log_path))))

    def mqtt_ready(self, timeout=2):
        """Whether an MQTT 3.1.1 CONNECT gets a CONNACK with rc 0 now."""
        result = {}

        def on_connect(client, userdata, flags, rc):
            result["rc"] = rc

        c = paho.Client(client_id="oh-rabbit-probe-%s" % uuid.uuid4().hex[:8],
                        clean_session=True, protocol=paho.MQTTv311)
        c.on_connect = on_connect
        try:
            c.connect(self.host, self.port, keepalive=10)
            deadline = time.monotonic() + timeout
            while "rc" not in result and time.monotonic() < deadline:
                if c.loop(timeout=0.1) != paho.MQTT_ERR_SUCCESS:
                    break
            if result.get("rc") == 0:
                c.disconnect()
                return True
            return False
        except OSError:
            return False
        finally:
            try:
                c.socket() and c.socket().close()
            except OSError:
                pass

    def start(self, timeout=90):
        """Starts epmd and the node (same ports and data as before on a
        restart) and waits until MQTT CONNECT is answered with CONNACK 0.
        Returns the seconds it took (also in last_start_seconds)."""
        if self.running():
            return 0.0
        t0 = time.monotonic()
        first = not self.runs
        for attempt in range(4):
            if not self._start_epmd(timeout=10):
                if self._fixed_port or not first or attempt == 3:
                    raise AssertionError("epmd exited on port %d:\n%s"
                                         % (self.epmd_port, tail(read_text(self.epmd_log_path))))
                self.epmd_port = free_port()
                continue
            log_marks = [(path, os.path.getsize(path) if os.path.exists(path) else 0)
                         for path in (self.log_path, self.stdout_path)]
            self.proc = self._spawn([self._script("rabbitmq-server")], self.stdout_path)
            self.runs.append({"returncode": None, "hung": False, "killed_by_test": False,
                              "stray": []})
            deadline = t0 + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if port_accepts(self.port) and self.mqtt_ready():
                    self.last_start_seconds = time.monotonic() - t0
                    return self.last_start_seconds
                time.sleep(0.05)    # the poll interval of this wait
            if self.proc.poll() is None:
                self.stop()
                raise AssertionError("RabbitMQ did not answer MQTT on port %d within %ss:\n%s"
                                     % (self.port, timeout, tail(self.log())))
            self._reap()
            # Exited during boot: most likely a port was taken in the meantime
            # by another test.  Retry on fresh ports, only on the first start.
            clash = any("eaddrinuse" in read_text(path)[size:].lower() for path, size in log_marks)
            self._stop_epmd()
            if not clash or self._fixed_port or not first or attempt == 3:
                raise AssertionError("RabbitMQ exited (%s) while starting:\n%s"
                                     % (self.proc.returncode, tail(self.log())))
            self.runs.pop()
            self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
            self._write_conf()
        raise AssertionError("RabbitMQ could not start")

    def _reap(self):
        if self.proc is not None and self.runs:
            rc = self.proc.poll()
            if rc is not None:
                self.runs[-1]["returncode"] = rc
        return self.proc.returncode if self.proc else None

    def pids(self):
        """The processes of this node that are running: every process we
        start for it (epmd, the script, beam, beam's helpers such as
        erl_child_setup and inet_gethost, which have process groups of their
        own) carries RABBITMQ_NODENAME=<our node> in its environment."""
        mark = b"RABBITMQ_NODENAME=" + self.nodename.encode() + b"\0"
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            pid = int(entry)
            try:
                with open("/proc/%d/environ" % pid, "rb") as f:
                    environ = f.read() + b"\0"
                with open("/proc/%d/stat" % pid, "rb") as f:
                    st = f.read()
            except OSError:
                continue
            if mark not in environ:
                continue
            state = st[st.rfind(b")") + 2:].split()[:1]
            if state != [b"Z"]:
                out.append(pid)
        return out

    def _stop_epmd(self, timeout=5):
        if self.epmd is None:
            return
        if self.epmd.poll() is None:
            self.epmd.send_signal(signal.SIGTERM)
            try:
                self.epmd.wait(timeout)
            except subprocess.TimeoutExpired:
                self.epmd.kill()
                self.epmd.wait()

    def stop(self, timeout=30):
        """SIGTERM to the rabbitmq-server script (which stops the node
        gracefully), then epmd; SIGKILL whatever is left after timeout (and
        record the hang).  Returns the script's exit code."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.runs[-1]["hung"] = True
                self.runs[-1]["killed_by_test"] = True
                self._killpg(self.proc.pid)
                self.proc.wait()
        self._reap()
        # beam's helpers (erl_child_setup, inet_gethost) exit with it; give
        # them a moment before calling them strays.
        self._stop_epmd()
        deadline = time.monotonic() + 5
        stray = self.pids()
        while stray and time.monotonic() < deadline:
            time.sleep(0.05)    # the poll interval: strays are not our children to wait for
            stray = self.pids()
        if stray and self.runs:
            self.runs[-1]["stray"] = stray
            for pid in stray:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        return self.proc.returncode if self.proc else None

    def _killpg(self, pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def kill(self):
        """SIGKILL to the whole node (a crash); epmd keeps running."""
        if self.proc is not None and self.proc.poll() is None:
            self.runs[-1]["killed_by_test"] = True
            self._killpg(self.proc.pid)
            self.proc.wait()
        return self._reap()

    def restart(self, timeout=90):
        """stop() and start() on the same ports and data dir."""
        self.stop()
        return self.start(timeout=timeout)

    def close(self):
        """stop(), copy the logs into workdir, and remove the node's /tmp
        directory when it has one (without a workdir given to the
        constructor: remove everything).  The object is unusable afterwards."""
        self.stop()
        _live.discard(self)
        if self._own_workdir:
            if self._private_nodedir:
                shutil.rmtree(self.nodedir, ignore_errors=True)
            shutil.rmtree(self.workdir, ignore_errors=True)
            return
        if self._private_nodedir and os.path.isdir(self.nodedir):
            for src, name in ((self.log_path, "rabbit.log"),
                              (self.stdout_path, "rabbitmq-server.out"),
                              (self.epmd_log_path, "epmd.out")):
                if os.path.exists(src):
                    shutil.copyfile(src, os.path.join(self.workdir, name))
            shutil.rmtree(self.nodedir, ignore_errors=True)
            link = os.path.join(self.workdir, "node")
            if os.path.islink(link):
                os.unlink(link)
            self.nodedir = self.workdir
            self.log_path = os.path.join(self.workdir, "rabbit.log")
            self.stdout_path = os.path.join(self.workdir, "rabbitmq-server.out")
            self.epmd_log_path = os.path.join(self.workdir, "epmd.out")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- CLI and logs ------------------------------------------------------

    def rabbitmqctl(self, *args, timeout=60, check=True):
        """Runs rabbitmqctl against this node (as the rabbitmq user, same
        cookie); returns CompletedProcess with text output."""
        cp = subprocess.run(self._as_user([self._script("rabbitmqctl"), "-n", self.nodename] + list(args)),
                            stdin=subprocess.DEVNULL, capture_output=True, env=self.env(),
                            cwd=self.nodedir, timeout=timeout, text=True)
        if check and cp.returncode != 0:
            raise AssertionError("rabbitmqctl %s -> %d:\n%s%s"
                                 % (" ".join(args), cp.returncode, cp.stdout, cp.stderr))
        return cp

    def log(self):
        """The node's log, then the server script's output (boot errors that
        never reach the log file end up there)."""
        text = read_text(self.log_path)
        out = read_text(self.stdout_path)
        if out.strip():
            text += "\n--- rabbitmq-server output (%s) ---\n%s" % (self.stdout_path, out)
        return text

    def problems(self):
        """Like harness.Broker: the broker is a tool, so only a hang on stop
        and processes left behind count."""
        self._reap()
        out = []
        for run in self.runs:
            if run["hung"]:
                out.append("rabbitmq did not exit within the timeout after SIGTERM")
            if run["stray"]:
                out.append("rabbitmq left processes behind: %s" % run["stray"])
        return out
