#!/usr/bin/python3
"""
A private RabbitMQ node for bench/run.sh (BENCH_BROKER=rabbitmq), started the
way the integration tests start theirs (tests/integration/rabbit.py): its own
epmd, Erlang distribution and data, only rabbitmq_mqtt, MQTT on 127.0.0.1 on a
free port, anonymous logins.

    bench/rabbit_node.py WORKDIR PORTFILE

Writes the MQTT port to PORTFILE once the node answers CONNECT, then runs
until SIGTERM or SIGINT, stops the node and removes its files (the logs stay
in WORKDIR).  Needs root (the node runs as the rabbitmq user) and Debian's
python3 with paho-mqtt.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))

import rabbit  # noqa: E402


def main():
    if len(sys.argv) != 3:
        print("usage: %s WORKDIR PORTFILE" % sys.argv[0], file=sys.stderr)
        return 2
    workdir, portfile = sys.argv[1], sys.argv[2]
    reason = rabbit.available()
    if reason:
        print("rabbit_node: %s" % reason, file=sys.stderr)
        return 1
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    node = rabbit.RabbitBroker(workdir)
    try:
        secs = node.start()
        print("rabbit_node: %s on 127.0.0.1:%d, up in %.1f s"
              % (node.nodename, node.port, secs), flush=True)
        tmp = portfile + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % node.port)
        os.rename(tmp, portfile)
        while not stop and node.running():
            time.sleep(0.2)
        if not node.running():
            print("rabbit_node: the node exited:\n%s" % node.log()[-4000:], file=sys.stderr)
            return 1
        return 0
    finally:
        node.close()


if __name__ == "__main__":
    sys.exit(main())
