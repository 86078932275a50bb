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
# Broker: mosquitto (default), or BENCH_BROKER=rabbitmq for a private
# RabbitMQ 3.10 node started by bench/rabbit_node.py as the integration tests
# start theirs (needs root and rabbitmq-server); its figures go to
# results-rabbitmq.txt/.json, so both runs can sit side by side.
#
# Environment knobs (defaults are the documented run):
#   BENCH_LAT_N=5000 BENCH_TPUT_N=50000 BENCH_DEVICES=1000 BENCH_UPDATES=20
#   BENCH_WRK_SECS=5 BENCH_MEM_STEPS="1000 10000 100000" BENCH_KEEP=1 (keep logs)
#   BENCH_ROUTES=10000
#   BENCH_SSE_CLIENTS=1000 BENCH_SSE_DEVICES=10000 BENCH_SSE_RATE=5000 BENCH_SSE_SECS=10
#   BENCH_BURST_N=50000 BENCH_START_N=100000
#   BENCH_HA_TRIALS=20 BENCH_HA_ROUNDS=9 (bench/ha_bench.py)
#   BENCH_SECTIONS="latency tput rest mem burst start sched sse routes ha audit" (default: all of them;
#   BENCH_MILLION=1 adds a 1,000,000-device step to mem)
set -euo pipefail

BUILD=${BUILD:-build}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BROKER=${BENCH_BROKER:-mosquitto}
case $BROKER in
mosquitto) SUFFIX= ;;
rabbitmq) SUFFIX=-rabbitmq ;;
*) echo "bench: BENCH_BROKER must be mosquitto or rabbitmq, not \"$BROKER\"" >&2; exit 2 ;;
esac
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

NEEDED=("$HOST_BIN" "$BENCH_BIN")
[ "$BROKER" = mosquitto ] && NEEDED+=("$MOSQUITTO")
for f in "${NEEDED[@]}"; do
	[ -x "$f" ] || { echo "bench: $f is missing (run make build)" >&2; exit 1; }
done
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/oh-bench.XXXXXX)
# Private copies, so a rebuild during the run cannot pull the binaries away.
cp "$HOST_BIN" "$WORK/orchestrator-host"
cp "$BENCH_BIN" "$WORK/oh-bench"
HOST_BIN=$WORK/orchestrator-host
BENCH_BIN=$WORK/oh-bench
RESULTS=$OUT/results$SUFFIX.txt
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

# A port on 127.0.0.1 no socket uses (random pick below the kernel's
# ephemeral range, checked with ss; start_host retries if it races).
free_port() {
	local p lo
	lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	for _ in $(seq 100); do
		p=$((10000 + RANDOM % (lo - 10000)))
		if ! ss -Htan "sport = :$p" | grep -q .; then
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
	timeout "${TOOL_TIMEOUT:-300}" "$BENCH_BIN" "$@" --port "$BROKER_PORT" | tee -a "$RESULTS"
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
start_rabbitmq() {
	# The launcher writes the MQTT port once the node answers CONNECT, and
	# stops the node on SIGTERM (cleanup above).
	/usr/bin/python3 "$SRC/bench/rabbit_node.py" "$WORK/rabbit" "$WORK/rabbit.port" \
		>"$WORK/rabbit-node.log" 2>&1 &
	BROKER_PID=$!
	PIDS+=("$BROKER_PID")
	for _ in $(seq 1200); do
		[ -s "$WORK/rabbit.port" ] && break
		if ! kill -0 "$BROKER_PID" 2>/dev/null; then
			echo "bench: RabbitMQ did not start:" >&2
			cat "$WORK/rabbit-node.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	BROKER_PORT=$(cat "$WORK/rabbit.port")
	wait_port "$BROKER_PORT"
}

start_mosquitto() {
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
}

if [ "$BROKER" = rabbitmq ]; then
	start_rabbitmq
else
	start_mosquitto
fi

# ---- hosts --------------------------------------------------------------------
# The bench's device never acks, and NDI ack_timeout_s is a day, so every
# command stays pending: a host with limits.max_pending_per_device (default
# 1000) would refuse the rest of a run's commands to bench-dev.
# BENCH_MILLION=1 adds a step of 1,000,000 devices to the memory scenario,
# past the default limits.max_devices.
LIMITS=
if grep -aq max_pending_per_device "$HOST_BIN"; then
	LIMITS='
  "limits": {"max_pending": 10000000, "max_pending_per_device": 10000000, "max_devices": 2000000},'
fi
[ -n "${BENCH_MILLION:-}" ] && MEM_STEPS="$MEM_STEPS 1000000"

# start_host NAME ROOT: a fresh host with its own topic root (so retained
# messages of one scenario never reach another), state dir and HTTP port.
# Sets HOST_PID and HTTP_PORT.
start_host() {
	local try
	for try in 1 2 3; do
		start_host_once "$1" "$2" && return 0
	done
	echo "bench: host $1 did not come up; its log:" >&2
	cat "$WORK/$1/host.log" >&2
	exit 1
}

start_host_once() {
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
  "log_level": "warn",$LIMITS${HOST_EXTRA:-}
  "plugins": [{"module": "ndi", "path": "builtin:ndi",
               "settings": {"ack_timeout_s": ${ACK_TIMEOUT:-86400}}}]
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
	kill "$HOST_PID" 2>/dev/null || true
	wait "$HOST_PID" 2>/dev/null || true
	return 1
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

# Whether section $1 is to run (BENCH_SECTIONS).
want() {
	[[ " ${BENCH_SECTIONS:-all} " == *" all "* || " ${BENCH_SECTIONS:-} " == *" $1 "* ]]
}

echo "# orchestrator-host benchmark: $(nproc) CPUs, $(uname -sr), $(date -u +%FT%TZ), broker $BROKER"

# ---- 1. relay latency -----------------------------------------------------------
if want latency; then
start_host relay /lab
# Relay and broker-alone round trips alternate trip by trip (--mode both).
bench latency --mode both --n "$LAT_N" --name latency --root /lab
ratio latency_p50_ratio latency_relay_p50 latency_broker_p50
ratio latency_p99_ratio latency_relay_p99 latency_broker_p99
# The floor: a bare relay (oh-bench barerelay: libmosquitto, no JSON, its own
# process) on a root no host listens on.  A second run, so the figures above
# keep their two-way alternation; this one alternates relay, broker and bare.
bench latency --mode all --n "$LAT_N" --name latency_floor --root /lab --bare-root /bare
emit latency_bare_p50 "$(value latency_floor_bare_p50)" us
emit latency_bare_p99 "$(value latency_floor_bare_p99)" us
ratio latency_bare_p50_ratio latency_floor_bare_p50 latency_floor_broker_p50
ratio latency_bare_p99_ratio latency_floor_bare_p99 latency_floor_broker_p99
ratio latency_relay_vs_bare_p50 latency_floor_relay_p50 latency_floor_bare_p50
ratio latency_relay_vs_bare_p99 latency_floor_relay_p99 latency_floor_bare_p99

emit_rss relay_host_after_latency
stop_host
fi

# ---- 2. relay throughput ---------------------------------------------------------
# A fresh host per relay run, so a host still digesting one burst cannot
# slow the next; each run gives up 3 s after the last delivery or at 30 s.
want tput &&
for q in 0 1; do
	bench throughput --mode direct --qos $q --n "$TPUT_N" --timeout 30 --name broker_tput_qos$q --root /lab
	start_host tput$q /lab
	bench throughput --mode relay --qos $q --n "$TPUT_N" --timeout 30 --name relay_tput_qos$q --root /lab
	ratio relay_tput_qos${q}_ratio relay_tput_qos${q}_rate broker_tput_qos${q}_rate
	emit_rss relay_host_after_tput_qos$q
	stop_host
	# The floor: the bare relay (see latency) passing the same commands.
	bench throughput --mode bare --qos $q --n "$TPUT_N" --timeout 30 --name bare_tput_qos$q \
		--bare-root /bare
	ratio relay_tput_qos${q}_bare_ratio bare_tput_qos${q}_rate broker_tput_qos${q}_rate
	ratio relay_tput_qos${q}_vs_bare relay_tput_qos${q}_rate bare_tput_qos${q}_rate
done

# ---- 3. registry ingest, 4. REST ---------------------------------------------------
if want rest; then
start_host registry /reg
bench registry --http-port "$HTTP_PORT" --root /reg --devices "$DEVICES" --updates "$UPDATES" \
	--conns 8 --name registry
ratio registry_rate_ratio registry_rate registry_broker_rate

# wrk_run NAME PATH [HEADER]: requests/s and latency percentiles, 32
# keep-alive connections, against WRK_PORT (default: the host's).
wrk_run() {
	local name=$1 path=$2 header=${3:-X-Bench: plain} port=${WRK_PORT:-$HTTP_PORT} code want=200
	case $header in If-None-Match:*) want=304 ;; esac
	code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -H "$header" "http://127.0.0.1:$port$path")
	if [ "$code" != "$want" ]; then
		emit "${name}_rps" "n/a" "(GET $path answered $code)"
		return
	fi
	emit "${name}_body_bytes" "$(curl -s --noproxy '*' -o /dev/null -w '%{size_download}' \
		-H "$header" "http://127.0.0.1:$port$path")" bytes
	taskset -c 1 wrk -t1 -c32 -d"${WRK_SECS}s" --latency -H "$header" "http://127.0.0.1:$port$path" \
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

# The same bodies compressed (the gzip copy is made once per snapshot, in
# slices: ask until it is there), and not modified (If-None-Match).
for ep in registry:/api/registry ndi_devices:/api/ndi/devices; do
	for _ in $(seq 100); do
		curl -s --noproxy '*' -o /dev/null -D - -H 'Accept-Encoding: gzip' \
			"http://127.0.0.1:$HTTP_PORT${ep#*:}" | grep -qi '^content-encoding: gzip' && break
		sleep 0.02
	done
	wrk_run "rest_${ep%%:*}_gzip" "${ep#*:}" 'Accept-Encoding: gzip'
	etag=$(curl -s --noproxy '*' -o /dev/null -D - "http://127.0.0.1:$HTTP_PORT${ep#*:}" |
		awk -F': ' 'tolower($1) == "etag" { sub(/\r$/, "", $2); print $2 }')
	wrk_run "rest_${ep%%:*}_304" "${ep#*:}" "If-None-Match: $etag"
done
emit rest_gzip_compressions "$(curl -s --noproxy '*' "http://127.0.0.1:$HTTP_PORT/metrics" |
	awk '$1 == "oh_http_gzip_compressions_total" { print $2 }')" count
emit_rss registry_host_after_rest

# The physical reference: Debian's nginx serving the very same bytes as
# static files, on the host's CPU, with the same wrk settings, in the same
# run.  The plain targets are ratios to it.
NGINX=${OH_NGINX:-/usr/sbin/nginx}
if [ -x "$NGINX" ]; then
	mkdir -p "$WORK/nginx/www/api/ndi" "$WORK/nginx/logs" "$WORK/nginx/tmp"
	curl -s --noproxy '*' -o "$WORK/nginx/www/api/registry" "http://127.0.0.1:$HTTP_PORT/api/registry"
	curl -s --noproxy '*' -o "$WORK/nginx/www/api/ndi/devices" "http://127.0.0.1:$HTTP_PORT/api/ndi/devices"
	NGINX_PORT=$(free_port)
	# Debian's nginx.conf where it matters (sendfile, tcp_nopush), one
	# worker like the host's one loop, no access log (the host keeps none),
	# keep-alive connections as long-lived as the host's.
	{
		[ "$(id -u)" = 0 ] && echo "user root;"
		cat <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
	sendfile on;
	tcp_nopush on;
	access_log off;
	keepalive_requests 1000000;
	default_type application/json;
	client_body_temp_path $WORK/nginx/tmp;
	proxy_temp_path $WORK/nginx/tmp;
	fastcgi_temp_path $WORK/nginx/tmp;
	uwsgi_temp_path $WORK/nginx/tmp;
	scgi_temp_path $WORK/nginx/tmp;
	server {
		listen 127.0.0.1:$NGINX_PORT;
		root $WORK/nginx/www;
	}
}
EOF
	} >"$WORK/nginx/nginx.conf"
	taskset -c 0 "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' \
		2>"$WORK/nginx/logs/stderr.log" &
	NGINX_PID=$!
	PIDS+=("$NGINX_PID")
	wait_port "$NGINX_PORT"
	WRK_PORT=$NGINX_PORT wrk_run nginx_registry /api/registry
	WRK_PORT=$NGINX_PORT wrk_run nginx_ndi_devices /api/ndi/devices
	# The ratio itself from alternating 1 s runs, host then nginx, WRK_SECS
	# times each: on a shared machine the load changes from one 5 s run to
	# the next by more than the difference being measured (as the latency
	# scenario alternates trip by trip).
	for ep in registry:/api/registry ndi_devices:/api/ndi/devices; do
		for _ in $(seq "$WRK_SECS"); do
			for who in rest:$HTTP_PORT nginx:$NGINX_PORT; do
				taskset -c 1 wrk -t1 -c32 -d1s "http://127.0.0.1:${who#*:}${ep#*:}" 2>&1 |
					awk '/requests in/ { n = $1; s = $4; sub(/s,?$/, "", s); print n, s }' \
					>>"$WORK/alt-${who%%:*}-${ep%%:*}.txt"
			done
		done
		for who in rest nginx; do
			emit "${who}_${ep%%:*}_alternating_rps" "$(awk '{ n += $1; s += $2 }
				END { if(s > 0) printf "%.0f", n / s; else print "nan" }' \
				"$WORK/alt-$who-${ep%%:*}.txt")" req/s
		done
		ratio "rest_${ep%%:*}_vs_nginx" "rest_${ep%%:*}_alternating_rps" "nginx_${ep%%:*}_alternating_rps"
	done
	kill "$NGINX_PID" 2>/dev/null || true
	wait "$NGINX_PID" 2>/dev/null || true
	stop_host
else
	emit nginx_registry_rps "n/a" "(no $NGINX: apt-get install nginx-light)"
	stop_host
fi
ratio rest_registry_gzip_vs_plain rest_registry_gzip_rps rest_registry_rps
ratio rest_ndi_devices_gzip_vs_plain rest_ndi_devices_gzip_rps rest_ndi_devices_rps
fi

# gzip_time NAME: the gzip copy of the registry snapshot, how long the loop
# spent making it in all and in its longest slice (the host's metrics).
metric() {
	curl -s --noproxy '*' "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
gzip_time() {
	local before after
	before=$(metric oh_http_gzip_seconds_total)
	for _ in $(seq 500); do
		curl -s --noproxy '*' -o "$WORK/gz" -D "$WORK/gz.h" -H 'Accept-Encoding: gzip' \
			"http://127.0.0.1:$HTTP_PORT/api/registry"
		grep -qi '^content-encoding: gzip' "$WORK/gz.h" && break
		sleep 0.02
	done
	after=$(metric oh_http_gzip_seconds_total)
	emit "${1}_registry_bytes" "$(curl -s --noproxy '*' -o /dev/null -w '%{size_download}' \
		"http://127.0.0.1:$HTTP_PORT/api/registry")" bytes
	emit "${1}_gzip_bytes" "$(stat -c %s "$WORK/gz")" bytes
	emit "${1}_gzip_ms" "$(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.1f", (b - a) * 1000 }')" ms
	emit "${1}_gzip_slice_max_ms" "$(awk -v a="$(metric oh_http_gzip_slice_max_seconds)" \
		'BEGIN { printf "%.2f", a * 1000 }')" ms
}

# ---- 5. memory -------------------------------------------------------------------
if want mem; then
start_host memory /mem
sleep 1
emit_rss mem_idle
# The cost per update at each size: the host's own time merging meta and
# status (oh_registry_merge_seconds_total), in ns per message, over the same
# mix at every size: 40,000 messages, a meta (unchanged) and a status (its
# seq and cpu moved) for each of the first min(n, 20000) devices, in as many
# sweeps as that takes.  Five such rounds: the figure is the fastest round
# (on a shared machine a round that waited for the CPU only looks slower),
# the median beside it.
update_cost() {  # n
	local k=$(( $1 < 20000 ? $1 : 20000 )) sweeps m0 s0 m1 s1 r all=()
	sweeps=$(( 20000 / k ))
	if [ -z "$(metric oh_registry_merges_total)" ]; then   # a host before the metric
		emit "mem_${1}_ns_per_update" n/a "(no oh_registry_merges_total)"
		return
	fi
	for r in 1 2 3 4 5; do
		m0=$(metric oh_registry_merges_total)
		s0=$(metric oh_registry_merge_seconds_total)
		bench populate --http-port 0 --root /mem --from 0 --to "$k" --sweeps "$sweeps" \
			--seq $(( r * sweeps )) --conns 8 --timeout 600 --name "mem_update_$1" >/dev/null
		for _ in $(seq 600); do
			m1=$(metric oh_registry_merges_total)
			awk -v a="$m1" -v b="$m0" -v k="$(( 2 * k * sweeps ))" 'BEGIN { exit !(a - b >= k) }' && break
			sleep 0.1
		done
		s1=$(metric oh_registry_merge_seconds_total)
		all+=("$(awk -v a="$s1" -v b="$s0" -v m="$m1" -v l="$m0" \
			'BEGIN { printf "%.0f", (a - b) * 1e9 / (m - l) }')")
	done
	read -r lo med < <(printf '%s\n' "${all[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[1], v[3] }')
	emit "mem_${1}_ns_per_update" "$lo" "ns (fastest of 5 rounds: ${all[*]})"
	emit "mem_${1}_ns_per_update_median" "$med" ns
	ratio "mem_${1}_update_vs_1000" "mem_${1}_ns_per_update" mem_1000_ns_per_update
	ratio "mem_${1}_update_median_vs_1000" "mem_${1}_ns_per_update_median" mem_1000_ns_per_update_median
}
# Devices are registered 100,000 at a time: the host's subscription is QoS 0,
# and a host more than max_queued_messages behind loses messages, so 900,000
# at once left a "1,000,000-device" registry with 760,000 to 850,000.  The
# count the host holds is printed (mem_N_devices) and divides the RSS.
prev=0
for n in $MEM_STEPS; do
	from=$prev
	while [ "$from" -lt "$n" ]; do
		to=$(( from + 100000 < n ? from + 100000 : n ))
		TOOL_TIMEOUT=1500 bench populate --http-port "$HTTP_PORT" --root /mem --from "$from" --to "$to" \
			--conns 8 --timeout 1400 --name "mem_populate_$to"
		from=$to
	done
	sleep 1   # a snapshot interval or five: let the last snapshot go out
	emit_rss "mem_${n}"
	emit "mem_${n}_devices" "$(metric oh_devices)" count
	emit "mem_${n}_bytes_per_device" "$(awk -v r="$(value "mem_${n}_rss")" -v i="$(value mem_idle_rss)" \
		-v n="$(value "mem_${n}_devices")" 'BEGIN { printf "%.0f", (r - i) * 1048576 / n }')" bytes
	[ "$n" = 10000 ] && gzip_time mem_10000
	update_cost "$n"
	prev=$n
done
read -r get_code get_bytes get_secs < <(curl -s --noproxy '*' -o /dev/null \
	-w '%{http_code} %{size_download} %{time_total}\n' "http://127.0.0.1:$HTTP_PORT/api/registry")
emit "mem_registry_get_secs" "$get_secs" "s (HTTP $get_code)"
emit "mem_registry_get_bytes" "$get_bytes" bytes
emit_rss mem_after_get
stop_host
fi

# ---- 5b. a burst to a silent device ------------------------------------------------
# BURST_N commands relayed to a device nobody serves, on a host whose NDI
# ack_timeout_s is 5: RSS before, its peak (VmHWM) over the commands, and 30 s
# after the last TIMEOUT.  Targets: after within 25% of before, the peak at
# most 1 KB per pending command.
BURST_N=${BENCH_BURST_N:-50000}
if want burst; then
ACK_TIMEOUT=5 start_host burst /burst
sleep 1
emit_rss burst_before
bench burst --root /burst --n "$BURST_N" --device-id silent-dev --timeout 120 --name burst
emit_rss burst_drained
sleep 30
emit_rss burst_after_30s
ratio burst_after_vs_before burst_after_30s_rss burst_before_rss
emit burst_peak_bytes_per_command "$(awk -v p="$(value burst_after_30s_hwm)" -v b="$(value burst_before_rss)" \
	-v n="$BURST_N" 'BEGIN { printf "%.0f", (p - b) * 1048576 / n }')" bytes
stop_host
fi

# ---- 5c. start-up -----------------------------------------------------------------
# A host that knew START_N devices (stored, and retained on the broker) is
# stopped; START_N jobs and START_N leases are written into its state.db;
# then the seconds from exec to the first /api/registry listing every
# device.  Target: 3 s.
START_N=${BENCH_START_N:-100000}
if want start; then
start_host start /start
bench populate --http-port "$HTTP_PORT" --root /start --from 0 --to "$START_N" --conns 8 \
	--timeout 240 --name start_populate
stop_host   # a clean stop stores every device
"$BENCH_BIN" jobs --db "$WORK/start/state.db" --n "$START_N" --fire-at $(( $(date +%s) + 86400 )) \
	--window 1 --fire-n 0 --leases "$START_N"
sync "$WORK/start"/state.db*
t0=$(date +%s.%N)
start_host start /start
bench startwait --http-port "$HTTP_PORT" --devices "$START_N" --at "$t0" --timeout 60 --name start_registry
emit_rss start_after
stop_host
fi

# ---- 6. scheduler --------------------------------------------------------------------
# SCHED_JOBS one-off jobs written straight into a fresh host's state.db (the
# format src/core/scheduler.c persists), SCHED_FIRE of them due within a
# SCHED_WINDOW-second window a little after start-up, the rest days later.
# A device subscriber measures each firing's lateness (arrival - due time);
# relay round trips run before the window and again while the jobs fire.
SCHED_FIRE=${BENCH_SCHED_FIRE:-1000}
SCHED_WINDOW=${BENCH_SCHED_WINDOW:-5}
if ! want sched; then
	:
elif grep -aq SCHEDULED "$HOST_BIN"; then
	mkdir -p "$WORK/sched"
	FIRE_AT=$(( $(date +%s) + ${BENCH_SCHED_LEAD:-15} ))
	t0=$(date +%s.%N)
	"$BENCH_BIN" jobs --db "$WORK/sched/state.db" --n "$SCHED_JOBS" --fire-at "$FIRE_AT" \
		--window "$SCHED_WINDOW" --fire-n "$SCHED_FIRE"
	# Written back to disk now, not by the kernel's writeback in the middle
	# of the firing window, which a host that has been running for a while
	# never sees.
	sync "$WORK/sched"/state.db*
	t1=$(date +%s.%N)
	emit sched_jobs_write_secs "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" s
	start_host sched /sched
	t2=$(date +%s.%N)
	emit sched_host_start_secs "$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')" s
	emit_rss "sched_${SCHED_JOBS}_jobs"
	if [ "$(date +%s)" -ge $((FIRE_AT - 2)) ]; then
		echo "bench: the host took too long to start; raise BENCH_SCHED_LEAD" >&2
	fi
	bench latency --mode both --n 2000 --root /sched --name sched_idle_latency
	# The reference: the broker alone passing on a due second's commands
	# (SCHED_FIRE / SCHED_WINDOW), published at once straight to a device;
	# first publish to last arrival, the median of three bursts.  No host
	# can make a second's last command arrive sooner.  At QoS 1 as the host
	# sends them here; at QoS 0 (the broker's floor without acknowledgements)
	# after the window, where a lost message's 3 s wait cannot delay it.
	broker_burst() {  # name qos
		local k
		for k in 1 2 3; do
			bench throughput --mode direct --qos "$2" --n $((SCHED_FIRE / SCHED_WINDOW)) --timeout 10 \
				--name "$1_$k" --root /sched >/dev/null
		done
		emit "$1_ms" "$(for k in 1 2 3; do value "$1_${k}_secs"; done |
			sort -g | awk 'NR == 2 { printf "%.3f", $1 * 1000 }')" ms
	}
	broker_burst sched_broker_burst 1
	"$BENCH_BIN" schedwatch --port "$BROKER_PORT" --root /sched --fire-n "$SCHED_FIRE" \
		--timeout $(( FIRE_AT - $(date +%s) + SCHED_WINDOW + 15 )) --name sched \
		>"$WORK/schedwatch.txt" &
	WATCH_PID=$!
	PIDS+=("$WATCH_PID")
	for _ in $(seq 100); do
		grep -qs ready "$WORK/schedwatch.txt" && break
		sleep 0.05
	done
	bench latency --mode both --n 1000000 --warmup 0 --at "$FIRE_AT" --duration "$SCHED_WINDOW" \
		--root /sched --name sched_firing_latency
	wait "$WATCH_PID" || true
	grep -v '^#' "$WORK/schedwatch.txt" | tee -a "$RESULTS"
	broker_burst sched_broker_burst_qos0 0
	# "Relay latency unchanged while they fire": relay/broker ratio while
	# firing, and relay p50/p99 while firing over relay p50/p99 before.
	ratio sched_lateness_p99_vs_broker_burst sched_lateness_p99 sched_broker_burst_ms
	ratio sched_firing_latency_p50_ratio sched_firing_latency_relay_p50 sched_firing_latency_broker_p50
	ratio sched_firing_latency_p99_ratio sched_firing_latency_relay_p99 sched_firing_latency_broker_p99
	ratio sched_firing_vs_idle_relay_p50 sched_firing_latency_relay_p50 sched_idle_latency_relay_p50
	ratio sched_firing_vs_idle_relay_p99 sched_firing_latency_relay_p99 sched_idle_latency_relay_p99
	emit_rss sched_after_firing
	stop_host
else
	emit sched_lateness_p99 "n/a" "(scheduler not built)"
fi

# ---- 7. event streams ----------------------------------------------------------------
# SSE_CLIENTS clients hold GET /api/events open on a host with SSE_DEVICES
# devices while SSE_RATE status updates a second arrive for SSE_SECS
# seconds; each client applies the deltas to its own copy, and all copies
# are compared with GET /api/registry at the end (oh-bench sse).  Host CPU
# is its utime+stime over the window.  The reference is the same registry
# events sent as whole snapshots, the old behaviour.
if want sse; then
SSE_CLIENTS=${BENCH_SSE_CLIENTS:-1000}
SSE_DEVICES=${BENCH_SSE_DEVICES:-10000}
SAVED_LIMITS=$LIMITS
LIMITS="
  \"limits\": {\"max_sse_clients\": $((SSE_CLIENTS + 100)), \"max_http_connections\": $((SSE_CLIENTS + 200)),
             \"max_http_connections_per_client\": $((SSE_CLIENTS + 200))},"
start_host sse /sse
LIMITS=$SAVED_LIMITS
bench populate --http-port "$HTTP_PORT" --root /sse --from 0 --to "$SSE_DEVICES" --conns 8 \
	--timeout 120 --name sse_populate
sleep 1
emit_rss sse_before
bench sse --http-port "$HTTP_PORT" --root /sse --devices "$SSE_DEVICES" --conns "$SSE_CLIENTS" \
	--rate "${BENCH_SSE_RATE:-5000}" --duration "${BENCH_SSE_SECS:-10}" --pid "$HOST_PID" \
	--timeout 60 --name sse
emit_rss sse_after
stop_host
fi

# ---- 8. routes ------------------------------------------------------------------------
# ROUTES_N NDI routes restored from a fresh host's store, their devices
# showing the routed source (retained statuses, so nothing is sent).  Then a
# site restart: the broker restarts (its retained statuses are gone) and all
# the agents come back at once, idle; the host must start every one of them
# again, one command per device, while relay round trips of an unrelated
# device measure what reconciling costs the commands nobody routed.
ROUTES_N=${BENCH_ROUTES:-10000}
restart_broker() {
	kill "$BROKER_PID" 2>/dev/null || true
	wait "$BROKER_PID" 2>/dev/null || true
	"$MOSQUITTO" -c "$WORK/mosquitto.conf" 2>>"$WORK/mosquitto.log" &
	BROKER_PID=$!
	PIDS+=("$BROKER_PID")
	wait_port "$BROKER_PORT"
}
host_connected() {
	for _ in $(seq 200); do
		curl -s --noproxy '*' "http://127.0.0.1:$HTTP_PORT/healthz" 2>/dev/null |
			grep -q '"mqtt": *"connected"' && return 0
		sleep 0.05
	done
	echo "bench: the host did not reconnect" >&2
	return 1
}
# routes_scenario NAME ROUTED: the scenario above with ROUTED of the
# ROUTES_N devices routed (0: the control, the same burst with nothing to
# reconcile, which tells what the burst itself costs the relay).
routes_scenario() {
	local name=$1 routed=$2 dir=$WORK/$1
	mkdir -p "$dir"
	[ "$routed" -gt 0 ] && "$BENCH_BIN" routes --db "$dir/state.db" --n "$routed"
	timeout 120 "$BENCH_BIN" fleet --mode announce --n "$ROUTES_N" --root "/$name" --port "$BROKER_PORT" \
		--timeout 60 >/dev/null
	start_host "$name" "/$name"
	sleep 4   # the host's start-up grace for restored routes (STARTUP_GRACE_MS) and then some
	emit_rss "${name}_${routed}_restored"
	bench latency --mode both --n 2000 --root "/$name" --name "${name}_idle_latency"
	restart_broker
	host_connected
	LAT_AT=$(( $(date +%s) + 2 ))
	bench latency --mode both --n 1000000 --warmup 0 --at "$LAT_AT" --duration 10 \
		--root "/$name" --name "${name}_reconcile_latency" >"$dir/latency.txt" &
	LAT_PID=$!
	PIDS+=("$LAT_PID")
	while [ "$(date +%s)" -lt "$LAT_AT" ]; do sleep 0.05; done
	sleep 0.5
	# Without routes nobody sends the fleet anything: it stops with the window.
	bench fleet --n "$ROUTES_N" --root "/$name" --timeout "$([ "$routed" -gt 0 ] && echo 60 || echo 11)" \
		--name "${name}_fleet"
	wait "$LAT_PID" || true
	cat "$dir/latency.txt"
	ratio "${name}_reconcile_vs_idle_relay_p50" "${name}_reconcile_latency_relay_p50" "${name}_idle_latency_relay_p50"
	ratio "${name}_reconcile_vs_idle_relay_p99" "${name}_reconcile_latency_relay_p99" "${name}_idle_latency_relay_p99"
	if [ "$routed" -gt 0 ]; then
		# What the host saw: every route converged again, with the device's input.
		curl -s --noproxy '*' "http://127.0.0.1:$HTTP_PORT/api/ndi/routes" >"$dir/routes.json"
		emit "${name}_converged_after" "$(grep -o '"state":"converged"' "$dir/routes.json" | wc -l)" count
		emit "${name}_not_converged_after" "$(grep -o '"state":"[a-z]*"' "$dir/routes.json" | grep -vc converged)" count
	fi
	emit_rss "${name}_after_reconcile"
	stop_host
}
if ! want routes; then
	:
elif [ "$BROKER" != mosquitto ]; then
	emit routes_reconcile_vs_idle_relay_p99 "n/a" "(mosquitto only: the scenario restarts the broker)"
elif grep -aq ROUTE_STATE "$HOST_BIN"; then
	routes_scenario routes "$ROUTES_N"
	routes_scenario routes_control 0
	# The target: relay round trips while 10,000 devices reconcile, over the
	# same burst with nothing to reconcile, and over the idle host.
	ratio routes_reconcile_vs_control_relay_p50 routes_reconcile_latency_relay_p50 routes_control_reconcile_latency_relay_p50
	ratio routes_reconcile_vs_control_relay_p99 routes_reconcile_latency_relay_p99 routes_control_reconcile_latency_relay_p99
else
	emit routes_reconcile_vs_idle_relay_p99 "n/a" "(routes not built)"
fi

# ---- 9. failover and the PostgreSQL store (docs/ha.md) ----------------------------
# A pair on a private PostgreSQL: kill -9 of the leader to the first command
# relayed by the new one, losses, and relay cost against SQLite.
if want ha && [ "$BROKER" = mosquitto ]; then
	BUILD=$BUILD timeout 900 /usr/bin/python3 "$SRC/bench/ha_bench.py" | tee -a "$RESULTS"
fi

# ---- 10. audit trail on and off ---------------------------------------------------------
# The cost of audit.enabled: relay throughput at QoS 1 with a device that
# acks every command, so each command has an outcome to record (and its ack
# waits for its batch).  Off and on alternate, three times each, on fresh
# hosts; the best of each is compared (docs/audit.md, target >= 0.9): on a
# shared machine a run now and then stalls or crawls, with the audit off as
# well as on (docs/performance.md).
if want audit; then
for run in 1 2 3; do
	for mode in off on; do
		[ $mode = on ] && enabled=true || enabled=false
		HOST_EXTRA="
  \"audit\": {\"enabled\": $enabled},"
		start_host audit_${mode}_$run /aud$run$mode
		bench throughput --mode relay --ack --qos 1 --n "$TPUT_N" --timeout 60 \
			--name audit_${mode}_${run}_tput_qos1 --root /aud$run$mode
		stop_host
		HOST_EXTRA=
	done
done
best() {  # the largest of the figures named
	local v m=0
	for f in "$@"; do
		v=$(value "$f")
		m=$(awk -v a="$v" -v b="$m" 'BEGIN { print (a + 0 > b + 0) ? a : b }')
	done
	echo "$m"
}
for mode in off on; do
	emit audit_${mode}_tput_qos1_rate "$(best audit_${mode}_{1,2,3}_tput_qos1_rate)" msg/s
done
ratio audit_on_vs_off_tput_qos1_ratio audit_on_tput_qos1_rate audit_off_tput_qos1_rate
fi

# ---- results.json ------------------------------------------------------------------
awk -v broker="$BROKER" -v machine="$(nproc) CPUs, $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(uname -sr)" \
	-v when="$(date -u +%FT%TZ)" '
	BEGIN { printf "{\n  \"machine\": \"%s\",\n  \"broker\": \"%s\",\n  \"date\": \"%s\",\n  \"figures\": {", machine, broker, when }
	!/^#/ && NF >= 2 {
		unit = ""; for(i = 3; i <= NF; i++) unit = unit (i > 3 ? " " : "") $i
		gsub(/"/, "\\\"", unit)
		v = ($2 ~ /^-?[0-9.eE+-]+$/) ? $2 : "null"
		printf "%s\n    \"%s\": {\"value\": %s, \"unit\": \"%s\"}", (n++ ? "," : ""), $1, v, unit
	}
	END { printf "\n  }\n}\n" }' "$RESULTS" >"$OUT/results$SUFFIX.json"
echo "# written: $RESULTS and $OUT/results$SUFFIX.json"
