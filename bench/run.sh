#!/bin/bash
# The benchmark suite: `make bench` (BUILD=build in the environment).
#
# Starts its own mosquitto and orchestrator-host instances on free 127.0.0.1
# ports, drives them with build/bench/oh-bench and wrk, prints one line per
# figure ("name value unit") and writes the same to $BUILD/bench/results.txt
# and $BUILD/bench/results.json.  Every scenario is measured against the
# broker alone in the same run, because absolute times on a small shared
# machine drift from run to run; the ratios are what the targets are about.
#
# Placement: the host runs pinned to CPU 0 (`taskset -c 0`) in every scenario,
# as it would on a small box next to other work; wrk runs on CPU 1.  The
# broker and the load tool are left to the kernel.  See docs/performance.md.
#
# Environment knobs (defaults are the documented run):
#   BENCH_LAT_N=5000 BENCH_TPUT_N=50000 BENCH_DEVICES=1000 BENCH_UPDATES=20
#   BENCH_WRK_SECS=5 BENCH_MEM_STEPS="1000 10000 100000" BENCH_KEEP=1 (keep logs)
set -euo pipefail

BUILD=${BUILD:-build}
HOST_BIN=$BUILD/orchestrator-host
BENCH_BIN=$BUILD/bench/oh-bench
MOSQUITTO=${OH_MOSQUITTO:-/usr/sbin/mosquitto}
OUT=$BUILD/bench
LAT_N=${BENCH_LAT_N:-5000}
TPUT_N=${BENCH_TPUT_N:-50000}
DEVICES=${BENCH_DEVICES:-1000}
UPDATES=${BENCH_UPDATES:-20}
WRK_SECS=${BENCH_WRK_SECS:-5}
MEM_STEPS=${BENCH_MEM_STEPS:-"1000 10000 100000"}
SCHED_JOBS=${BENCH_SCHED_JOBS:-100000}

for f in "$HOST_BIN" "$BENCH_BIN" "$MOSQUITTO"; do
	[ -x "$f" ] || { echo "bench: $f is missing (run make build)" >&2; exit 1; }
done
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/oh-bench.XXXXXX)
RESULTS=$OUT/results.txt
: >"$RESULTS"
PIDS=()

cleanup() {
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [ -n "${BENCH_KEEP:-}" ]; then
		echo "bench: logs kept in $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# A port on 127.0.0.1 nothing listens on (random pick, checked with ss).
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 30000))
		if ! ss -Htln "sport = :$p" | grep -q .; then
			echo "$p"
			return
		fi
	done
	echo "bench: no free port" >&2
	exit 1
}

emit() {   # name value unit
	printf '%s %s %s\n' "$1" "$2" "$3" | tee -a "$RESULTS"
}

# Runs oh-bench, showing and recording its figures.
bench() {
	timeout 300 "$BENCH_BIN" "$@" --port "$BROKER_PORT" | tee -a "$RESULTS"
}

value() {  # the value of figure $1 from this run
	awk -v n="$1" '$1 == n { v = $2 } END { if(v == "") v = "nan"; print v }' "$RESULTS"
}

ratio() {  # name a b unit: a / b
	emit "$1" "$(awk -v a="$(value "$2")" -v b="$(value "$3")" \
		'BEGIN { if(b + 0 == 0 || a == "nan") print "nan"; else printf "%.3g", a / b }')" "${4:-ratio}"
}

wait_port() {
	for _ in $(seq 200); do
		ss -Htln "sport = :$1" | grep -q . && return 0
		sleep 0.05
	done
	echo "bench: nothing listens on port $1" >&2
	return 1
}

# ---- broker -----------------------------------------------------------------
BROKER_PORT=$(free_port)
cat >"$WORK/mosquitto.conf" <<EOF
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 1000000
max_inflight_messages 0
max_inflight_bytes 0
max_queued_bytes 0
persistence false
log_dest stderr
log_type error
log_type warning
EOF
[ "$(id -u)" = 0 ] && echo "user root" >>"$WORK/mosquitto.conf"
"$MOSQUITTO" -c "$WORK/mosquitto.conf" 2>"$WORK/mosquitto.log" &
BROKER_PID=$!
PIDS+=("$BROKER_PID")
wait_port "$BROKER_PORT"

# ---- hosts --------------------------------------------------------------------
# start_host NAME ROOT: a fresh host with its own topic root (so retained
# messages of one scenario never reach another), state dir and HTTP port.
# Sets HOST_PID and HTTP_PORT.
start_host() {
	local name=$1 root=$2
	HTTP_PORT=$(free_port)
	mkdir -p "$WORK/$name"
	cat >"$WORK/$name/host.json" <<EOF
{
  "mqtt": {"host": "127.0.0.1", "port": $BROKER_PORT, "client_id": "oh-bench-$name-$$"},
  "http": {"bind": "127.0.0.1", "port": $HTTP_PORT},
  "topic_root": "$root",
  "state_dir": "$WORK/$name",
  "snapshot_interval_ms": 200,
  "stale_after_s": 600,
  "log_level": "warn",
  "plugins": [{"module": "ndi", "path": "builtin:ndi",
               "settings": {"ack_timeout_s": 86400}}]
}
EOF
	taskset -c 0 "$HOST_BIN" --config "$WORK/$name/host.json" >"$WORK/$name/host.log" 2>&1 &
	HOST_PID=$!
	PIDS+=("$HOST_PID")
	for _ in $(seq 200); do
		if curl -s --noproxy '*' "http://127.0.0.1:$HTTP_PORT/healthz" 2>/dev/null |
				grep -q '"mqtt": *"connected"'; then
			return 0
		fi
		kill -0 "$HOST_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "bench: host $name did not come up; its log:" >&2
	cat "$WORK/$name/host.log" >&2
	exit 1
}

stop_host() {
	kill "$HOST_PID" 2>/dev/null || true
	wait "$HOST_PID" 2>/dev/null || true
}

rss_kb() {  # pid field (VmRSS or VmHWM)
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

emit_rss() {  # name
	emit "${1}_rss" "$(awk -v k="$(rss_kb "$HOST_PID" VmRSS)" 'BEGIN { printf "%.1f", k / 1024 }')" MB
	emit "${1}_hwm" "$(awk -v k="$(rss_kb "$HOST_PID" VmHWM)" 'BEGIN { printf "%.1f", k / 1024 }')" MB
}

echo "# orchestrator-host benchmark: $(nproc) CPUs, $(uname -sr), $(date -u +%FT%TZ)"

# ---- 1. relay latency -----------------------------------------------------------
start_host relay /lab
bench latency --mode direct --n "$LAT_N" --name broker_latency --root /lab
bench latency --mode relay --n "$LAT_N" --name relay_latency --root /lab
ratio relay_latency_p50_ratio relay_latency_p50 broker_latency_p50
ratio relay_latency_p99_ratio relay_latency_p99 broker_latency_p99

# ---- 2. relay throughput ---------------------------------------------------------
for q in 0 1; do
	bench throughput --mode direct --qos $q --n "$TPUT_N" --name broker_tput_qos$q --root /lab
	bench throughput --mode relay --qos $q --n "$TPUT_N" --name relay_tput_qos$q --root /lab
	ratio relay_tput_qos${q}_ratio relay_tput_qos${q}_rate broker_tput_qos${q}_rate
done
emit_rss relay_host_after_tput
stop_host

# ---- 3. registry ingest, 4. REST ---------------------------------------------------
start_host registry /reg
bench registry --http-port "$HTTP_PORT" --root /reg --devices "$DEVICES" --updates "$UPDATES" \
	--conns 8 --name registry
ratio registry_rate_ratio registry_rate registry_broker_rate

# wrk_run NAME PATH: requests/s and latency percentiles, 32 keep-alive connections.
wrk_run() {
	local name=$1 path=$2 code
	code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT$path")
	if [ "$code" != 200 ]; then
		emit "${name}_rps" "n/a" "(GET $path answered $code)"
		return
	fi
	emit "${name}_body_bytes" "$(curl -s --noproxy '*' -o /dev/null -w '%{size_download}' \
		"http://127.0.0.1:$HTTP_PORT$path")" bytes
	taskset -c 1 wrk -t1 -c32 -d"${WRK_SECS}s" --latency "http://127.0.0.1:$HTTP_PORT$path" \
		>"$WORK/wrk-$name.txt" 2>&1 || true
	awk -v n="$name" '
		function ms(s) {
			if(s ~ /us$/) return s / 1000; if(s ~ /ms$/) return s + 0
			if(s ~ /m$/) return s * 60000; if(s ~ /s$/) return s * 1000; return s }
		/Requests\/sec:/ { printf "%s_rps %s req/s\n", n, $2 }
		$1 == "50%" { printf "%s_p50 %.3f ms\n", n, ms($2) }
		$1 == "99%" { printf "%s_p99 %.3f ms\n", n, ms($2) }
		/Non-2xx/ { printf "%s_non2xx %s count\n", n, $NF }
		/Socket errors/ { printf "%s_socket_errors %s\n", n, "1 count" }
	' "$WORK/wrk-$name.txt" | tee -a "$RESULTS"
}
wrk_run rest_registry /api/registry
wrk_run rest_ndi_devices /api/ndi/devices
emit_rss registry_host_after_rest
stop_host

# ---- 5. memory -------------------------------------------------------------------
start_host memory /mem
sleep 1
emit_rss mem_idle
prev=0
for n in $MEM_STEPS; do
	bench populate --http-port "$HTTP_PORT" --root /mem --from "$prev" --to "$n" --conns 8 \
		--timeout 240 --name "mem_populate_$n"
	sleep 1   # a snapshot interval or five: let the last snapshot go out
	emit_rss "mem_${n}"
	prev=$n
done
emit "mem_registry_get_secs" "$(curl -s --noproxy '*' -o /dev/null -w '%{time_total}' \
	"http://127.0.0.1:$HTTP_PORT/api/registry")" s
emit_rss mem_after_get
stop_host

# ---- 6. scheduler --------------------------------------------------------------------
if [ -x bench/scheduler.sh ] && grep -q scheduler "$HOST_BIN" 2>/dev/null; then
	# shellcheck source=/dev/null
	. bench/scheduler.sh
else
	emit scheduler_lateness_p99 "n/a" "(scheduler not built)"
fi

# ---- results.json ------------------------------------------------------------------
awk -v machine="$(nproc) CPUs, $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(uname -sr)" \
	-v when="$(date -u +%FT%TZ)" '
	BEGIN { printf "{\n  \"machine\": \"%s\",\n  \"date\": \"%s\",\n  \"figures\": {", machine, when }
	!/^#/ && NF >= 2 {
		unit = ""; for(i = 3; i <= NF; i++) unit = unit (i > 3 ? " " : "") $i
		gsub(/"/, "\\\"", unit)
		v = ($2 ~ /^-?[0-9.eE+-]+$/) ? $2 : "null"
		printf "%s\n    \"%s\": {\"value\": %s, \"unit\": \"%s\"}", (n++ ? "," : ""), $1, v, unit
	}
	END { printf "\n  }\n}\n" }' "$RESULTS" >"$OUT/results.json"
echo "# written: $RESULTS and $OUT/results.json"
