"""
Same command, same verdict (issue 15): POST /api/ndi/send and the MQTT
command topic relay a start to the deployed agent's behaviour (the real
`orchestrator-device --simulate 1`) alike, and publish the same acks on
/lab/orchestrator/ndi/evt.

The agents live on other networks than the host and see NDI sources its
discovery does not (mDNS is link-local; discovery servers and groups
differ), so a source the host has not seen is relayed on both paths, the
DISPATCHED ack carrying a `warnings` entry that names it.  On both paths a
subscriber sees DISPATCHED, then the agent's outcome (COMPLETED), for the
same req_id, and so does the web page's event stream (/api/events), at
once, also while the browser keeps the POST's connection open.  The
contract is docs/protocol.md ("Ack and event shape",
"REST API").
"""

import json
import socket
import uuid

import pytest

from conftest import wait_until
from harness import unique_name
from test_ndi_rest import EVT, in_registry, ndi_config
from sse import EventStream

CMD = "/lab/orchestrator/ndi/cmd"
SEEN = "CAM-1"                       # in the host's static source list
UNSEEN = "FIELD-CAM (other subnet)"  # only the agent's network has it


@pytest.fixture
def host(make_host):
    h = make_host(ndi_config({"sources": [SEEN], "ack_timeout_s": 5}))
    h.wait_connected()
    return h


@pytest.fixture
def agent(host, make_device):
    """The id of one simulated agent, online in the host's registry."""
    prefix = unique_name("par") + "-"
    make_device({"heartbeat_interval_s": 60}, extra_args=["--simulate", "1", "--id-prefix", prefix])
    dev = prefix + "01"

    def online():
        st, d = host.get("/api/devices/" + dev)
        return st == 200 and d.get("online") is True

    wait_until(online, 10, msg="the simulated agent online in the registry")
    assert in_registry(host, dev)
    return dev


def events_for(watcher, req_id, since):
    return [m["payload"] for m in watcher.messages(EVT, since=since)
            if m["payload"].get("req_id") == req_id]


def wait_outcome(watcher, req_id, since):
    """Every evt message for req_id once its outcome arrived, in arrival order."""
    watcher.wait_for(EVT, lambda m: m["payload"]["req_id"] == req_id and
                     m["payload"]["code"] in ("COMPLETED", "FAILED", "TIMEOUT"),
                     since=since, timeout=10)
    return events_for(watcher, req_id, since)


def over_mqtt(app, watcher, dev, source):
    req_id = "mq-" + uuid.uuid4().hex[:10]
    mark = watcher.mark()
    app.publish(CMD, {"req_id": req_id, "actor": "app", "action": "start",
                      "params": {"device_id": dev, "source": source}})
    return wait_outcome(watcher, req_id, mark)


def over_rest(host, watcher, dev, source):
    req_id = "re-" + uuid.uuid4().hex[:10]
    mark = watcher.mark()
    status, reply = host.post("/api/ndi/send", {"device_id": dev, "source": source,
                                                "actor": "app", "req_id": req_id})
    assert status == 202, reply
    evts = wait_outcome(watcher, req_id, mark)
    # The reply is the DISPATCHED ack that was published.
    assert evts[0] == reply, (reply, evts)
    return evts


@pytest.mark.parametrize("path", ["mqtt", "rest"])
def test_an_unseen_source_is_relayed_with_a_warning(host, agent, make_mqtt, path):
    assert host.get("/api/ndi/sources")[1] == {"sources": [SEEN]}
    watcher = make_mqtt()
    watcher.subscribe(EVT)
    if path == "mqtt":
        evts = over_mqtt(make_mqtt(), watcher, agent, UNSEEN)
    else:
        evts = over_rest(host, watcher, agent, UNSEEN)

    # DISPATCHED, then the agent's outcome: nothing else, in that order.
    assert [e["code"] for e in evts] == ["DISPATCHED", "COMPLETED"], evts
    dispatched, done = evts
    assert dispatched["ok"] is True and dispatched["actor"] == "app"
    warnings = dispatched.get("warnings")
    assert isinstance(warnings, list) and len(warnings) == 1, dispatched
    assert all(isinstance(w, str) for w in warnings), warnings
    assert UNSEEN in warnings[0] and "source" in warnings[0], warnings
    # The simulated agent switched to the source the host never saw.
    assert done["details"]["input"] == UNSEEN and done["details"]["device_id"] == agent, done
    assert "warnings" not in done, done


def test_both_paths_publish_the_same_acks(host, agent, make_mqtt):
    watcher = make_mqtt()
    watcher.subscribe(EVT)
    app = make_mqtt()

    def shape(evts):
        """What must agree between the paths: the code sequence, ok, action,
        actor, whether a warning came, and the outcome's details."""
        return [(e["code"], e["ok"], e["action"], e["actor"], "warnings" in e,
                 {k: v for k, v in e["details"].items() if k != "topic"}) for e in evts]

    for source, warned in ((SEEN, False), (UNSEEN, True)):
        by_mqtt = over_mqtt(app, watcher, agent, source)
        by_rest = over_rest(host, watcher, agent, source)
        assert shape(by_mqtt) == shape(by_rest), (by_mqtt, by_rest)
        assert [e["code"] for e in by_rest] == ["DISPATCHED", "COMPLETED"], by_rest
        assert ("warnings" in by_rest[0]) is warned, by_rest[0]

    # A refusal is published on every path too: another actor's lease.
    status, _ = host.post("/api/ndi/reserve", {"device_id": agent, "actor": "user"})
    assert status == 200
    mark = watcher.mark()
    status, err = host.post("/api/ndi/send", {"device_id": agent, "source": SEEN,
                                              "actor": "app", "req_id": "re-denied"})
    assert status == 409 and err["error"]["code"] == "DENIED", err
    denied = watcher.wait_for(EVT, lambda m: m["payload"]["req_id"] == "re-denied",
                              since=mark)["payload"]
    assert denied["code"] == "DENIED" and denied["details"]["holder"] == "user", denied


def test_the_event_stream_gets_a_rest_commands_acks_at_once(host, agent):
    """The page's stream carries the DISPATCHED that the POST's handler
    published, and the agent's COMPLETED, while the client keeps its
    connection alive and sends nothing more, as a browser does.  (In
    Chromium the DISPATCHED, written to the stream from inside
    libmicrohttpd's run, used to wait for the next unrelated request, and
    the COMPLETED behind it: test_ndi_ui.py's causal-order test caught it.)"""
    stream = EventStream(host)
    try:
        stream.wait_for("registry")
        mark = stream.mark()
        body = json.dumps({"device_id": agent, "source": SEEN, "actor": "app",
                           "req_id": "re-stream"}).encode()
        s = socket.create_connection(("127.0.0.1", host.http_port))
        try:
            s.sendall(b"POST /api/ndi/send HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nConnection: keep-alive\r\n"
                      b"Content-Length: %d\r\n\r\n%s"
                      % (len(body), body))
            assert s.recv(65536).startswith(b"HTTP/1.1 202"), "no 202 for the send"

            def ack(code):
                return lambda e: e["payload"]["req_id"] == "re-stream" and \
                    e["payload"]["code"] == code

            stream.wait_for("orch_evt", ack("DISPATCHED"), timeout=3, since=mark)
            stream.wait_for("orch_evt", ack("COMPLETED"), timeout=3, since=mark)
        finally:
            s.close()
    finally:
        stream.close()
