#!/usr/bin/env bash
# Starts and stops throwaway redis-server and clickhouse-server instances for
# tests, on free loopback ports, with everything they write kept under one
# directory. Tests find them through the variables written to <dir>/env.
#
#   hack/testservers.sh start <dir>   # installs the Debian packages if missing, starts both, prints <dir>/env
#   hack/testservers.sh stop <dir>    # stops both and removes what start made under <dir>
#
# The instances never share a port, a data directory or a pid with the system
# services that the packages install, so they can run beside those and beside
# other copies of themselves (one <dir> per copy).
set -euo pipefail

# Seconds to wait for each server to answer; a busy CI machine starts
# clickhouse-server slowly, so the default is generous.
TIMEOUT=${DATABRIDGE_TESTSERVERS_TIMEOUT:-60}

log() { echo "testservers: $*" >&2; }
die() { log "$*"; exit 1; }

usage() {
	echo "usage: $0 start|stop <dir>" >&2
	exit 2
}

# free_port prints a loopback port that nothing listens on and that this run
# has not handed out yet. Ports come from below the kernel's ephemeral range
# (32768 and up) so that an outgoing connection cannot take one between the
# probe and the server's bind; start retries if another process wins the race.
taken=" "
free_port() {
	local port _
	for _ in $(seq 1 200); do
		port=$((20000 + RANDOM % 12000))
		case "$taken" in *" $port "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			taken+="$port "
			echo "$port"
			return 0
		fi
	done
	die "no free loopback port found between 20000 and 32000"
}

# alive succeeds while pid runs. A zombie counts as gone: when pid 1 does not
# reap orphans (some containers), an exited server stays one forever.
alive() {
	local state
	# The state follows the parenthesised command name, which may hold spaces.
	state=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# ours succeeds when pid is alive and was started by this script for dir: its
# working directory is inside dir. That keeps stop from signalling an unrelated
# process that reused a stale pid.
ours() {
	local pid=$1 dir=$2 cwd
	[ -n "$pid" ] && alive "$pid" || return 1
	cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1
	case "$cwd" in "$dir"/*) return 0 ;; esac
	return 1
}

# stop_all stops the servers whose pids are in dir's pid files: TERM to both
# at once (clickhouse-server takes a second or two to shut down), then KILL
# for any that has not exited within the timeout.
stop_all() {
	local dir=$1 pidfile pid deadline
	local -a pids=()
	for pidfile in "$dir/redis.pid" "$dir/clickhouse.pid"; do
		[ -f "$pidfile" ] || continue
		pid=$(cat "$pidfile")
		if ours "$pid" "$dir"; then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
	done
	deadline=$((SECONDS + TIMEOUT))
	for pid in ${pids[@]+"${pids[@]}"}; do
		while alive "$pid" && [ $SECONDS -lt $deadline ]; do
			sleep 0.05
		done
		if alive "$pid"; then
			log "$(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid) did not stop within ${TIMEOUT}s: killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	rm -f "$dir/redis.pid" "$dir/clickhouse.pid"
}

# launch runs a server in the background, detached from the caller's session
# and output (a `go test` or make pipe must not wait on it), from cwd, and
# writes its pid to pidfile.
launch() {
	local pidfile=$1 cwd=$2 out=$3
	shift 3
	(cd "$cwd" && exec setsid "$@" </dev/null >"$out" 2>&1) &
	echo $! >"$pidfile"
	# Out of the job table, so that bash does not report a server that stop
	# had to kill as a failed job of this script.
	disown $!
}

# wait_ready polls check until it succeeds. It returns 1 when the server's
# process has exited (the caller may retry on another port) and 2 on timeout.
wait_ready() {
	local pid=$1 deadline=$((SECONDS + TIMEOUT))
	shift
	until "$@" >/dev/null 2>&1; do
		alive "$pid" || return 1
		[ $SECONDS -lt $deadline ] || return 2
		sleep 0.1
	done
}

fail_with_log() {
	local what=$1
	shift
	log "$what; last lines of its logs:"
	local f
	for f in "$@"; do
		[ -s "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
	done
	exit 1
}

# listens succeeds when process pid holds a listening TCP socket on each of the
# ports. An answer on a port alone does not prove the server is ours: when
# another process took the port first, ours fails to bind while the other one
# answers the check.
listens() {
	local pid=$1 port inodes inode found
	shift
	local fds
	fds=$(ls -l "/proc/$pid/fd" 2>/dev/null) || return 1
	for port in "$@"; do
		found=
		# /proc/net/tcp: local address as HEXIP:HEXPORT, state 0A is LISTEN, field 10 the inode.
		inodes=$(awk -v p="$(printf ':%04X' "$port")" \
			'$4 == "0A" && substr($2, length($2) - 4) == p { print $10 }' /proc/net/tcp)
		for inode in $inodes; do
			case "$fds" in *"socket:[$inode]"*) found=1 ;; esac
		done
		[ -n "$found" ] || return 1
	done
}

redis_ready() {
	local pid=$1 port=$2
	listens "$pid" "$port" && [ "$(redis-cli -h 127.0.0.1 -p "$port" ping)" = PONG ]
}

start_redis() {
	local dir=$1 attempt port pid rc
	for attempt in 1 2 3; do
		port=$(free_port)
		rm -rf "$dir/redis"
		mkdir -p "$dir/redis"
		# No persistence: the data is throwaway and snapshots only cost time.
		launch "$dir/redis.pid" "$dir/redis" "$dir/redis/redis.log" \
			redis-server --bind 127.0.0.1 --port "$port" --dir "$dir/redis" \
			--save '' --appendonly no --daemonize no --logfile ''
		rc=0
		pid=$(cat "$dir/redis.pid")
		wait_ready "$pid" redis_ready "$pid" "$port" || rc=$?
		if [ $rc -eq 0 ]; then
			REDIS_PORT=$port
			return 0
		fi
		if [ $rc -eq 1 ] && grep -q 'Address already in use' "$dir/redis/redis.log"; then
			log "redis-server lost port $port to another process (attempt $attempt), trying another"
			continue
		fi
		stop_all "$dir"
		[ $rc -eq 2 ] && fail_with_log "redis-server did not answer PING on 127.0.0.1:$port within ${TIMEOUT}s" "$dir/redis/redis.log"
		fail_with_log "redis-server exited before answering PING on 127.0.0.1:$port" "$dir/redis/redis.log"
	done
	stop_all "$dir"
	fail_with_log "redis-server could not bind a free port in 3 attempts" "$dir/redis/redis.log"
}

# clickhouse_config writes a config for Debian's clickhouse-server 18.16 with
# every path under ch, loopback-only ports, no interserver port (no
# replication) and caches sized for a test machine rather than the package's
# multi-gigabyte defaults.
clickhouse_config() {
	local ch=$1 tcp=$2 http=$3
	mkdir -p "$ch/data" "$ch/tmp" "$ch/user_files" "$ch/format_schemas"
	cat >"$ch/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Written by databridge hack/testservers.sh for a throwaway test instance. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$ch/server.log</log>
        <errorlog>$ch/server.err.log</errorlog>
        <size>100M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$tcp</tcp_port>
    <http_port>$http</http_port>
    <path>$ch/data/</path>
    <tmp_path>$ch/tmp/</tmp_path>
    <user_files_path>$ch/user_files/</user_files_path>
    <format_schema_path>$ch/format_schemas/</format_schema_path>
    <users_config>$ch/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_connections>256</max_connections>
    <max_concurrent_queries>64</max_concurrent_queries>
    <keep_alive_timeout>3</keep_alive_timeout>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mlock_executable>false</mlock_executable>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
EOF
	cat >"$ch/users.xml" <<EOF
<?xml version="1.0"?>
<!-- Written by databridge hack/testservers.sh for a throwaway test instance. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>1000000000</max_memory_usage>
            <max_threads>2</max_threads>
            <background_pool_size>4</background_pool_size>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

clickhouse_ready() {
	local pid=$1 tcp=$2 http=$3
	listens "$pid" "$tcp" "$http" &&
		[ "$(clickhouse-client --host 127.0.0.1 --port "$tcp" --query 'SELECT 1')" = 1 ]
}

start_clickhouse() {
	local dir=$1 ch=$1/clickhouse attempt tcp http pid rc
	for attempt in 1 2 3; do
		tcp=$(free_port)
		http=$(free_port)
		rm -rf "$ch"
		clickhouse_config "$ch" "$tcp" "$http"
		launch "$dir/clickhouse.pid" "$ch" "$ch/stdout.log" \
			clickhouse-server --config-file="$ch/config.xml"
		rc=0
		pid=$(cat "$dir/clickhouse.pid")
		wait_ready "$pid" clickhouse_ready "$pid" "$tcp" "$http" || rc=$?
		if [ $rc -eq 0 ]; then
			CLICKHOUSE_TCP_PORT=$tcp
			CLICKHOUSE_HTTP_PORT=$http
			return 0
		fi
		if [ $rc -eq 1 ] && grep -qs 'Address already in use' "$ch/server.log" "$ch/stdout.log"; then
			log "clickhouse-server lost port $tcp or $http to another process (attempt $attempt), trying others"
			continue
		fi
		stop_all "$dir"
		[ $rc -eq 2 ] && fail_with_log "clickhouse-server did not answer SELECT 1 on 127.0.0.1:$tcp within ${TIMEOUT}s" \
			"$ch/server.log" "$ch/stdout.log"
		fail_with_log "clickhouse-server exited before answering SELECT 1 on 127.0.0.1:$tcp" \
			"$ch/server.log" "$ch/stdout.log"
	done
	stop_all "$dir"
	fail_with_log "clickhouse-server could not bind free ports in 3 attempts" "$ch/server.log" "$ch/stdout.log"
}

cmd_start() {
	local dir=$1 started
	"$(dirname "$0")/deps.sh"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd -P)
	# Leftovers of an earlier run in the same dir (an interrupted `make test`)
	# are stopped so that start always yields fresh, empty servers.
	stop_all "$dir"
	rm -f "$dir/env"

	started=$SECONDS
	start_redis "$dir"
	log "redis-server answers on 127.0.0.1:$REDIS_PORT after $((SECONDS - started))s"
	started=$SECONDS
	start_clickhouse "$dir"
	log "clickhouse-server answers on 127.0.0.1:$CLICKHOUSE_TCP_PORT after $((SECONDS - started))s"

	cat >"$dir/env" <<EOF
export DATABRIDGE_TEST_REDIS_ADDR=127.0.0.1:$REDIS_PORT
export DATABRIDGE_TEST_CLICKHOUSE_ADDR=127.0.0.1:$CLICKHOUSE_TCP_PORT
export DATABRIDGE_TEST_CLICKHOUSE_HTTP=127.0.0.1:$CLICKHOUSE_HTTP_PORT
EOF
	cat "$dir/env"
}

cmd_stop() {
	local dir=$1
	[ -d "$dir" ] || return 0
	dir=$(cd "$dir" && pwd -P)
	stop_all "$dir"
	# Only what start made is removed; dir itself goes only if that left it empty.
	rm -rf "$dir/redis" "$dir/clickhouse" "$dir/env"
	rmdir "$dir" 2>/dev/null || true
	log "stopped the test servers in $dir"
}

[ $# -eq 2 ] || usage
case "$1" in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" ;;
*) usage ;;
esac
