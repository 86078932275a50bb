"""
A raw client of the host's server-sent events (GET /api/events), shared by
the test files: events are read on a thread and kept in order, and a
Mirror applies the registry events (one whole snapshot, then deltas) the
way the web UI does, so a test can compare the result with GET
/api/registry.
"""

import http.client
import json
import socket
import threading
import time

from harness import LOCALHOST


class EventStream:
    """GET /api/events with http.client on a reader thread; events are kept
    as dicts {event, id, data, json} (comments as {"comment": text}).
    headers: extra request headers (Last-Event-ID); rcvbuf: a small
    receive buffer, so that what the client does not read stays with the
    host instead of the kernel; read=False: read nothing until resume();
    pause() stops reading (after the line being read)."""

    def __init__(self, host, timeout=30, headers=None, rcvbuf=None, read=True):
        self.conn = http.client.HTTPConnection(LOCALHOST, host.http_port, timeout=timeout)
        if rcvbuf:   # set before connecting: it sets the window offered
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect((LOCALHOST, host.http_port))
            self.conn.sock = sock
        h = {"Accept": "text/event-stream"}
        h.update(headers or {})
        self.conn.request("GET", "/api/events", headers=h)
        self.sock = self.conn.sock
        self.events = []
        self.retry = None
        self.ended = False
        self._cond = threading.Condition()
        self._reading = threading.Event()
        if read:
            self._reading.set()
        self.resp = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if read:
            self._wait_response()

    def _wait_response(self):
        with self._cond:
            self._cond.wait_for(lambda: self.resp is not None or self.ended, 10)

    def resume(self):
        """Starts reading again (or at all, when opened with read=False)."""
        self._reading.set()
        self._wait_response()

    def pause(self):
        self._reading.clear()

    def _run(self):
        self._reading.wait()
        name, data, ev_id = None, [], None
        try:
            resp = self.conn.getresponse()
            with self._cond:
                self.resp = resp
                self._cond.notify_all()
            while True:
                self._reading.wait()
                line = resp.readline()
                if not line:
                    break
                line = line.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if data or name:
                        text = "\n".join(data)
                        try:
                            parsed = json.loads(text)
                        except ValueError:
                            parsed = None
                        self._add({"event": name or "message", "id": ev_id, "data": text,
                                   "json": parsed})
                    name, data, ev_id = None, [], None
                elif line.startswith(":"):
                    self._add({"comment": line[1:].strip()})
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("id:"):
                    ev_id = line[3:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:][1:] if line[5:].startswith(" ") else line[5:])
                elif line.startswith("retry:"):
                    self.retry = int(line[6:].strip())
        except Exception:  # noqa: BLE001 - any way the stream ends, it ended
            pass
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    def _add(self, ev):
        with self._cond:
            ev["index"] = len(self.events)
            self.events.append(ev)
            self._cond.notify_all()

    def mark(self):
        with self._cond:
            return len(self.events)

    def wait_ended(self, timeout=10):
        with self._cond:
            return self._cond.wait_for(lambda: self.ended, timeout)

    def wait_for(self, name, pred=None, timeout=5, since=0):
        """The first event called name (after mark since) for whose parsed
        data pred is true.  name may be a tuple of names."""
        names = name if isinstance(name, tuple) else (name,)
        deadline = time.monotonic() + timeout
        i = since
        with self._cond:
            while True:
                while i < len(self.events):
                    ev = self.events[i]
                    i += 1
                    if ev.get("event") not in names:
                        continue
                    try:
                        if pred is None or pred(ev["json"]):
                            return ev
                    except (KeyError, TypeError, AttributeError):
                        pass
                left = deadline - time.monotonic()
                if left <= 0 or self.ended:
                    got = [e.get("event") or ":" + e.get("comment", "") for e in self.events]
                    raise AssertionError("no %s event matching within %ss (ended: %s); got %s"
                                         % (name, timeout, self.ended, got[-40:]))
                self._cond.wait(left)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()
        self._thread.join(5)


REGISTRY_EVENTS = ("registry", "registry_delta")


class Mirror:
    """The registry as a client that applies the stream's registry events
    sees it: a whole snapshot replaces it, a delta (which must be made for
    the state held: since == seq) updates it."""

    def __init__(self):
        self.state = None
        self.applied = 0
        self._pos = {}

    def apply(self, ev):
        d = ev["json"]
        assert ev["id"] == str(d["seq"]), ev
        if ev["event"] == "registry":
            self.state = d
        else:
            assert self.state is not None and d["since"] == self.state["seq"], (d, self.state)
            self.state["devices"].update(d["devices"])
            for gone in d["removed"]:
                self.state["devices"].pop(gone, None)
            for k in ("locks", "modules", "ts", "seq"):
                self.state[k] = d[k]
        self.applied += 1

    def follow(self, stream, pred=None, timeout=10):
        """Applies the stream's registry events in order, from the first not
        applied yet, until pred(state) holds (pred None: just the next
        one); the last event applied (None if pred held already)."""
        deadline = time.monotonic() + timeout
        if pred is not None and self.state is not None and pred(self.state):
            return None
        while True:
            ev = stream.wait_for(REGISTRY_EVENTS, timeout=max(0.01, deadline - time.monotonic()),
                                 since=self._pos.get(id(stream), 0))
            self.apply(ev)
            self._pos[id(stream)] = ev["index"] + 1
            if pred is None or pred(self.state):
                return ev

    def drain(self, stream):
        """Applies the registry events the stream has already received (a
        stream that ended: the whole events it got before it was cut)."""
        for ev in stream.events[self._pos.get(id(stream), 0):]:
            if ev.get("event") in REGISTRY_EVENTS:
                self.apply(ev)
            self._pos[id(stream)] = ev["index"] + 1
