"""
A real PostgreSQL for the tests of the shared store (test_ha.py): Debian's
server binaries, a cluster made with initdb in a temporary directory,
listening on a free 127.0.0.1 port with its unix socket in that directory.
The server refuses to run as root, so under root (CI) it runs as the
`postgres` user the Debian package creates (runuser), else as the caller.

Also a TCP proxy the tests put between a host and the database, which can
blackhole the connections it carries (nothing forwarded, nothing closed:
a cut cable), to cut one host off.
"""

import glob
import os
import pwd
import select
import shutil
import socket
import subprocess
import threading

from harness import LOCALHOST, free_port


def _bin_dir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return dirs[-1] if dirs else None


def unavailable_reason():
    d = _bin_dir()
    if not d or not os.path.exists(os.path.join(d, "initdb")):
        return "PostgreSQL server binaries are not installed (Debian package postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
    return None


class Postgres:
    def __init__(self, workdir):
        self.bin = _bin_dir()
        self.dir = workdir
        self.data = os.path.join(workdir, "data")
        self.port = free_port()
        self.log_path = os.path.join(workdir, "postgres.log")
        self.user = None
        os.makedirs(workdir, exist_ok=True)
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(workdir, pw.pw_uid, pw.pw_gid)
        self._run(["initdb", "-D", self.data, "-U", "oh", "--auth=trust", "-E", "UTF8",
                   "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = '%s'\nport = %d\nunix_socket_directories = '%s'\n"
                    "fsync = off\nfull_page_writes = off\nlog_min_messages = warning\n"
                    % (LOCALHOST, self.port, workdir))
        self.start()
        self.sql("CREATE DATABASE lab")

    def _run(self, argv, check=True):
        argv = [os.path.join(self.bin, argv[0])] + argv[1:]
        if self.user:
            argv = ["runuser", "-u", self.user, "--"] + argv
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              check=check, cwd=self.dir, timeout=60)

    def conninfo(self, port=None):
        return "host=%s port=%d dbname=lab user=oh connect_timeout=2" % (
            LOCALHOST, port or self.port)

    def start(self):
        self._run(["pg_ctl", "-D", self.data, "-l", self.log_path, "-w", "-t", "30", "start"])

    def stop(self, mode="fast"):
        self._run(["pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"], check=False)

    def restart(self):
        self.stop()
        self.start()

    def sql(self, query, db="postgres"):
        """Runs query with psql; returns its unaligned output, rows split."""
        cp = self._run(["psql", "-h", self.dir, "-p", str(self.port), "-U", "oh", "-d", db,
                        "-At", "-v", "ON_ERROR_STOP=1", "-c", query])
        return [line for line in cp.stdout.splitlines() if line]

    def close(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class Proxy:
    """127.0.0.1:port -> target port, one thread per direction per
    connection.  blackhole() stops forwarding without closing anything."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = free_port()
        self.holed = False
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((LOCALHOST, self.port))
        self._lsock.listen(16)
        self._socks = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                c, _ = self._lsock.accept()
            except OSError:
                return
            if self.holed:
                self._socks.append(c)   # held open, never answered
                continue
            try:
                u = socket.create_connection((LOCALHOST, self.target))
            except OSError:
                c.close()
                continue
            self._socks += [c, u]
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _pump(self, a, b):
        pair = {a: b, b: a}
        while not self._closed:
            try:
                ready, _, _ = select.select([a, b], [], [], 0.1)
            except (OSError, ValueError):
                return
            if self.holed:
                continue    # read nothing: the kernel buffers fill, nothing moves
            for s in ready:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    a.close()
                    b.close()
                    return
                try:
                    pair[s].sendall(data)
                except OSError:
                    return

    def blackhole(self):
        self.holed = True

    def resume(self):
        """Forwards again what the blackhole held back (the kernel kept it)."""
        self.holed = False

    def close(self):
        self._closed = True
        self._lsock.close()
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass

