#!/usr/bin/env bash
# The end-to-end demo: a loopback broker, the host, and three simulated
# devices.  Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/local-broker.sh

build=${BUILD:-build}
config=${1:-config/orchestrator-host.json}
host_bin="$build/orchestrator-host"
device_bin="$build/orchestrator-device"

read -r mqtt_host mqtt_port http_bind http_port < <("$host_bin" --config "$config" --print-broker)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	stop_local_broker
}
trap cleanup EXIT
trap 'exit 0' INT TERM
ensure_local_broker "$mqtt_host" "$mqtt_port" "$PWD/var/mosquitto"

"$host_bin" --config "$config" &
pids+=($!)
OH_MQTT_HOST=$mqtt_host OH_MQTT_PORT=$mqtt_port "$device_bin" --simulate 3 --id-prefix demo- &
pids+=($!)

echo
echo "demo running: open http://$http_bind:$http_port/ui/ndi   (Ctrl-C stops everything)"
echo
wait "${pids[0]}"
