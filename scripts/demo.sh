#!/usr/bin/env bash
# The end-to-end demo: a loopback broker, the host, and three simulated
# devices.  Ctrl-C stops them all.
#
# The demo is a world of its own, so that it runs beside `make run`: its own
# state directory, broker and MQTT client id, and the default ports (1883,
# 8080) only when they are free, else the next free ones.  Sharing any of
# them would mean two hosts on one state.db, or on one broker and topic root,
# fighting over the same devices.
#
#   DEMO_DIR        state, generated config and broker data (default var/demo)
#   DEMO_MQTT_PORT  first broker port to try (default 1883)
#   DEMO_HTTP_PORT  first HTTP port to try (default 8080)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/local-broker.sh

build=${BUILD:-build}
host_bin="$build/orchestrator-host"
device_bin="$build/orchestrator-device"
mkdir -p "${DEMO_DIR:-var/demo}"
dir=$(cd "${DEMO_DIR:-var/demo}" && pwd)

# Prints the first port from $1 on where nothing on loopback accepts.
free_port_from() {
	local port=$1
	for _ in $(seq 20); do
		if ! listening 127.0.0.1 "$port"; then
			echo "$port"
			return 0
		fi
		port=$((port + 1))
	done
	echo "demo: no free port in $1..$((port - 1)) on 127.0.0.1" >&2
	return 1
}

mqtt_port=$(free_port_from "${DEMO_MQTT_PORT:-1883}")
http_port=$(free_port_from "${DEMO_HTTP_PORT:-8080}")
if [ "$http_port" = "$mqtt_port" ]; then
	http_port=$(free_port_from $((http_port + 1)))
fi
config="$dir/host.json"
cat > "$config" <<JSON
{
  "mqtt": {"host": "127.0.0.1", "port": $mqtt_port, "client_id": "orchestrator-demo-${HOSTNAME:-$(uname -n)}"},
  "http": {"bind": "127.0.0.1", "port": $http_port},
  "topic_root": "/lab",
  "state_dir": "$dir",
  "timezone": "UTC",
  "plugins": [
    {"module": "ndi", "path": "builtin:ndi", "settings": {"sources": ["NDI-Source-1", "NDI-Source-2"]}}
  ]
}
JSON

# How many demo devices the host's registry holds (0 when it does
# not answer); plain bash, as the demo installs no HTTP client.
devices_online() {
	local reply
	reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$http_port" &&
		printf 'GET /api/registry HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && cat <&3) 2>/dev/null) || reply=""
	grep -o '"demo-[0-9]*":{' <<<"$reply" | sort -u | wc -l
}

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

# The host first: it refuses at once, in one line, when another demo holds
# $dir, and then there is no broker to start.
"$host_bin" --config "$config" &
pids+=($!)
until listening 127.0.0.1 "$http_port"; do
	if ! kill -0 "${pids[0]}" 2>/dev/null; then
		status=0
		wait "${pids[0]}" || status=$?
		pids=()
		echo "demo: orchestrator-host did not start (exit status $status; see above)" >&2
		exit 1
	fi
	sleep 0.05
done
ensure_local_broker 127.0.0.1 "$mqtt_port" "$dir/mosquitto"
OH_MQTT_HOST=127.0.0.1 OH_MQTT_PORT=$mqtt_port "$device_bin" --simulate 3 --id-prefix demo- &
pids+=($!)

# The address only once the page has something to show: the host connected
# to the broker (it tried before the broker was there, and retries after a
# backoff) and the three devices in its registry.  --probe: see
# docs/deploy.md.
deadline=$((SECONDS + 30))
until "$host_bin" --probe "http://127.0.0.1:$http_port/healthz" >/dev/null 2>&1 &&
	[ "$(devices_online)" -ge 3 ]; do
	if ! kill -0 "${pids[0]}" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
		echo "demo: orchestrator-host did not connect to the broker on 127.0.0.1:$mqtt_port" \
			"within 30 s (see above)" >&2
		exit 1
	fi
	sleep 0.1
done

echo
echo "demo running: open http://127.0.0.1:$http_port/ui/ndi   (Ctrl-C stops everything)"
echo
wait "${pids[0]}"
