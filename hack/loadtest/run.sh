#!/usr/bin/env bash
# Runs the load scenarios of docs/benchmarks.md on this machine, server, feed
# and load tool (hack/loadtest/client) side by side on loopback:
#
#   hack/loadtest/run.sh A [repetitions]   1,000 clients x 5 of 28 symbols, 2,000 ticks/s via the Redis stream
#   hack/loadtest/run.sh B [repetitions]   5,000 clients x 5 of 28 symbols, 500 ticks/s
#   hack/loadtest/run.sh C [repetitions]   10,000 idle connections: server RSS per connection
#
# Each repetition starts a fresh server; results go to stdout and, as JSON,
# to $OUT (default /tmp/databridge-loadtest/<scenario>-<n>.json). DURATION and
# WARMUP set the measurement window, CLIENTS the clients of A, DEBUG_ADDR
# serves the server's pprof there, SERVER_ENV prefixes the server's command
# (e.g. "env GOMAXPROCS=1") and SERVER_FLAGS adds flags to it (e.g.
# "--writer-only"). METERING=off serves unmetered (--unmetered); the default,
# on, keeps quotas in the test Redis and ships usage to the test ClickHouse,
# as a cluster's data plane does.
set -euo pipefail

scenario=${1:?usage: $0 A|B|C [repetitions]}
reps=${2:-1}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${WORK:-/tmp/databridge-loadtest}
OUT=${OUT:-$work}
WARMUP=${WARMUP:-5s}
DURATION=${DURATION:-30s}
PORT=${PORT:-19080}
majors=EURUSD,GBPUSD,USDJPY,USDCHF,AUDUSD,USDCAD,NZDUSD,EURGBP,EURJPY,EURCHF,EURAUD,EURCAD,EURNZD,GBPJPY,GBPCHF,GBPAUD,GBPCAD,GBPNZD,CHFJPY,AUDJPY,CADJPY,NZDJPY,AUDCHF,CADCHF,NZDCHF,AUDCAD,AUDNZD,NZDCAD

case $scenario in
A) clients=${CLIENTS:-1000} rate=2000 extra=(--symbols 5) ;;
B) clients=5000 rate=500 extra=(--symbols 5) ;;
C) clients=10000 rate=0 extra=(--idle) ;;
*) echo "unknown scenario $scenario: want A, B or C" >&2; exit 2 ;;
esac

mkdir -p "$work" "$OUT"
ulimit -n "$(ulimit -Hn)" # 10,000 connections need more than the usual 1,024 descriptors
(cd "$root" && go build -o "$work/databridge" . && go build -o "$work/loadtest-client" ./hack/loadtest/client)
bin=$work/databridge
client=$work/loadtest-client

"$root/hack/testservers.sh" start "$work/servers" >/dev/null
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	"$root/hack/testservers.sh" stop "$work/servers"
}
trap cleanup EXIT
. "$work/servers/env"

for n in $(seq 1 "$reps"); do
	stream="databridge:loadtest:$scenario:$n:$$"
	rm -rf "$work/spool-$scenario-$n"
	metering=(--spool-dir "$work/spool-$scenario-$n" --usage-db "$work/usage-$scenario-$n.db")
	if [ "${METERING:-on}" = off ]; then
		metering+=(--unmetered)
	else
		metering+=(--quota-redis "$DATABRIDGE_TEST_REDIS_ADDR" --quota-prefix "databridge:loadtest:quota:$n:$$:"
			--clickhouse "$DATABRIDGE_TEST_CLICKHOUSE_ADDR" --clickhouse-database loadtest)
	fi
	${SERVER_ENV:-} "$bin" standalone "${metering[@]}" --config "$root/hack/loadtest" --redis "$DATABRIDGE_TEST_REDIS_ADDR" --stream "$stream" \
		--port "$PORT" --keys-file "$work/keys.json" ${DEBUG_ADDR:+--debug-addr "$DEBUG_ADDR"} ${SERVER_FLAGS:-} >"$work/server-$scenario-$n.log" 2>&1 &
	server=$!
	pids+=("$server")
	for _ in $(seq 1 100); do
		curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	if [ "$rate" != 0 ]; then
		"$bin" feed simulate --rate "$rate" --symbols "$majors" --burst-every 0 --seed "$n" --redis "$DATABRIDGE_TEST_REDIS_ADDR" \
			--stream "$stream" --progress 0 >"$work/feed-$scenario-$n.log" 2>&1 &
		pids+=("$!")
	fi
	echo "== scenario $scenario, repetition $n of $reps: $clients clients, feed ${rate} ticks/s"
	"$client" --url "ws://127.0.0.1:$PORT/v1/stream" --keys-file "$work/keys.json" --tier enterprise \
		--clients "$clients" "${extra[@]}" --warmup "$WARMUP" --duration "$DURATION" --server-pid "$server" \
		--json-file "$OUT/$scenario-$n.json" || echo "repetition $n: the load tool reported a failure (see above)"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	pids=()
	if [ "$rate" != 0 ]; then
		# What the feed actually published, over its whole run (warm-up included).
		echo "feed: $(grep -o 'emitted=[0-9]* published=[0-9]* rate=[0-9]*/s' "$work/feed-$scenario-$n.log" || echo 'no summary')"
	fi
done
