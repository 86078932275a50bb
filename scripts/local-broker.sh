# Sourced by run-host.sh and demo.sh: starts a private mosquitto on loopback
# when the configured broker is local and nothing listens there yet.
#
#   ensure_local_broker HOST PORT DIR   sets broker_pid ("" if none started)
#   stop_local_broker

broker_pid=""

is_loopback() {
	case "$1" in 127.*|localhost|::1) return 0 ;; *) return 1 ;; esac
}

listening() {
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

ensure_local_broker() {
	local host=$1 port=$2 dir=$3
	if ! is_loopback "$host" || listening 127.0.0.1 "$port"; then
		return 0
	fi
	mkdir -p "$dir"
	cat > "$dir/mosquitto.conf" <<CONF
# Generated: a broker for this host alone, on loopback.
listener $port 127.0.0.1
allow_anonymous true
# Without this every QoS 1 round trip waits ~40 ms on Nagle's algorithm.
set_tcp_nodelay true
# The default (1000) drops even QoS 1 messages to a briefly slow consumer.
max_queued_messages 100000
max_inflight_messages 0
persistence true
persistence_location $dir/
log_dest file $dir/mosquitto.log
CONF
	# As root mosquitto would switch to its own user, who cannot write here.
	[ "$(id -u)" -eq 0 ] && echo "user root" >> "$dir/mosquitto.conf"
	mosquitto -c "$dir/mosquitto.conf" &
	broker_pid=$!
	for _ in $(seq 50); do
		listening 127.0.0.1 "$port" && break
		sleep 0.1
	done
	if ! listening 127.0.0.1 "$port"; then
		echo "could not start a local broker on 127.0.0.1:$port (see $dir/mosquitto.log)" >&2
		return 1
	fi
	echo "started a local broker on 127.0.0.1:$port (pid $broker_pid, log in $dir/)"
}

stop_local_broker() {
	if [ -n "$broker_pid" ]; then
		kill "$broker_pid" 2>/dev/null || true
		wait "$broker_pid" 2>/dev/null || true
		broker_pid=""
	fi
}
