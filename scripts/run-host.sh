#!/usr/bin/env bash
# Runs the host in the foreground.  When its broker is on loopback and
# nothing listens there, a local mosquitto is started for it (config and
# data under var/mosquitto/) and stopped again when the host exits.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/local-broker.sh

build=${BUILD:-build}
config=${1:-config/orchestrator-host.json}
bin="$build/orchestrator-host"

read -r mqtt_host mqtt_port http_bind http_port < <("$bin" --config "$config" --print-broker)
trap stop_local_broker EXIT
ensure_local_broker "$mqtt_host" "$mqtt_port" "$PWD/var/mosquitto"

"$bin" --config "$config" &
host_pid=$!
trap 'kill -TERM $host_pid 2>/dev/null || true' INT TERM
set +e
status=0
while :; do
	wait "$host_pid"
	status=$?
	kill -0 "$host_pid" 2>/dev/null || break
done
exit $status
