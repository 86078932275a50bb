"""
The durable scheduler: a cron job firing on a minute boundary, on time, and
scheduled again for the next one.  On its own because it waits for the next
minute (up to 61 s) and runs beside the rest of test_scheduler.py.
"""

import time

from test_scheduler import event, iso, parse_iso, schedule, wall_of
from test_scheduler import start  # noqa: F401 - the fixture


def test_cron_job_fires_on_the_minute(start):
    host, client = start()
    ack = schedule(client, cron="* * * * *", commands=[{"device_id": "rpi-03", "action": "record_start"}])
    job_id = ack["details"]["job_id"]
    due = parse_iso(ack["details"]["next_run"])
    assert due % 60 == 0 and 0 < due - time.time() <= 61
    m = client.wait_for("/lab/device/rpi-03/sched/cmd", timeout=due - time.time() + 5)
    assert abs(wall_of(m) - due) < 0.5
    fired = event(client, "FIRED", job_id)["payload"]["details"]
    assert fired["due"] == iso(due) and fired["lateness_ms"] < 50
    status, job = host.get("/api/sched/jobs/" + job_id)
    assert job["state"] == "scheduled"
    assert job["next_run"] == iso(due + 60)
    assert job["last_run"] is not None and job["last_result"]["code"] == "FIRED"
    assert job["spec"] == {"cron": "* * * * *"}
