#!/usr/bin/env bash
# Herald and Mosquitto side by side.
#
# Starts each broker in turn on a free loopback port, pinned to core 0,
# runs `herald-bench all --only FAMILY` pinned to core 1, for several
# interleaved rounds (herald, mosquitto, herald, mosquitto, ...). Every
# scenario family runs on a freshly started broker, so that memory one
# family left allocated does not hide the next one's (connections,
# retained) and a broker still flushing a backlog does not slow the next.
# Then it writes the medians and Herald/Mosquitto ratios, with the machine
# description, to bench/RESULTS.md.
#
# Usage: bench/compare.sh [herald-bench all options...]
#   e.g. bench/compare.sh --duration-secs 10
#        ROUNDS=1 FAMILIES="throughput seed" bench/compare.sh --duration-secs 1
#
# Environment:
#   ROUNDS=3             rounds per broker
#   HERALD_BIN=path      use this herald instead of building target/release/herald
#   HERALD_BENCH_BIN=path  use this herald-bench instead of building it (release)
#   HERALD_CONFIG=file   Herald's own variable: a TOML config for every Herald
#                        run (e.g. storage sync for the persistent scenario);
#                        --listen and --data-dir are still set by this script
#   MOSQUITTO_BIN=/usr/sbin/mosquitto
#   MOSQUITTO_EXTRA_CONF=file  lines appended to the generated mosquitto.conf
#   BROKERS="herald mosquitto"  which brokers to run (labels)
#   FAMILIES="connections throughput latency persistent seed retained"
#   RESULTS=bench/RESULTS.md    where the summary goes
#   OUT_DIR=dir          keep the per-round JSON and logs here (default: a temp dir)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rounds="${ROUNDS:-3}"
brokers="${BROKERS:-herald mosquitto}"
families="${FAMILIES:-connections throughput latency persistent seed retained}"
mosquitto_bin="${MOSQUITTO_BIN:-/usr/sbin/mosquitto}"
results="${RESULTS:-$root/bench/RESULTS.md}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

if [ -z "${HERALD_BIN:-}" ] && [[ " $brokers " == *" herald "* ]]; then
  echo "building herald (release)..." >&2
  cargo build --release -p herald
  HERALD_BIN="$target_dir/release/herald"
fi
if [ -z "${HERALD_BENCH_BIN:-}" ]; then
  echo "building herald-bench (release)..." >&2
  cargo build --release -p herald-bench
  HERALD_BENCH_BIN="$target_dir/release/herald-bench"
fi
if [[ " $brokers " == *" mosquitto "* ]] && [ ! -x "$mosquitto_bin" ]; then
  echo "compare.sh: $mosquitto_bin not found (apt-get install mosquitto)" >&2
  exit 1
fi

if [ -n "${OUT_DIR:-}" ]; then
  work="$OUT_DIR"
  mkdir -p "$work"
else
  work="$(mktemp -d -t herald-compare.XXXXXX)"
fi
echo "per-round JSON and broker logs: $work" >&2

# One core for the broker, another for the generator, when there are two.
if [ "$(nproc)" -ge 2 ]; then
  pin_broker=(taskset -c 0)
  pin_bench=(taskset -c 1)
else
  echo "compare.sh: fewer than 2 CPUs, running unpinned" >&2
  pin_broker=()
  pin_bench=()
fi
# The connections scenario holds thousands of sockets on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Below the kernel's ephemeral range (32768-60999 by default): a port the
# generator's earlier client sockets used can still be in TIME_WAIT, and
# Mosquitto then fails to bind it (this made it "exit at start" in a round).
free_port() {
  local p
  local low=10000 high
  high=$(awk '{print $1 - 1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32767)
  for _ in $(seq 1 100); do
    p=$((low + RANDOM % (high - low)))
    if ! port_in_use "$p"; then
      echo "$p"
      return
    fi
  done
  echo "compare.sh: no free port found" >&2
  exit 1
}

broker_pid=""
stop_broker() {
  if [ -n "$broker_pid" ]; then
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=""
  fi
}
trap stop_broker EXIT

# start_broker LABEL PORT DIR: starts it pinned and waits until it listens.
start_broker() {
  local label="$1" port="$2" dir="$3"
  mkdir -p "$dir"
  case "$label" in
    herald)
      RUST_LOG=warn "${pin_broker[@]}" "$HERALD_BIN" \
        --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 --data-dir "$dir/data" \
        >"$dir/broker.log" 2>&1 &
      ;;
    mosquitto)
      # Herald's default limits (100 in flight, 10000 queued per session)
      # so that both brokers bound their queues alike; persistence on for
      # the persistent-session scenario (Mosquitto saves on its autosave
      # interval and at exit, it has no per-message sync).
      cat >"$dir/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_inflight_messages 100
max_queued_messages 10000
persistence true
persistence_location $dir/
log_dest file $dir/broker.log
log_type error
log_type warning
EOF
      if [ -n "${MOSQUITTO_EXTRA_CONF:-}" ]; then
        cat "$MOSQUITTO_EXTRA_CONF" >>"$dir/mosquitto.conf"
      fi
      "${pin_broker[@]}" "$mosquitto_bin" -c "$dir/mosquitto.conf" >/dev/null 2>&1 &
      ;;
    *)
      echo "compare.sh: unknown broker $label" >&2
      exit 1
      ;;
  esac
  broker_pid=$!
  for _ in $(seq 1 200); do
    if port_in_use "$port"; then
      return
    fi
    if ! kill -0 "$broker_pid" 2>/dev/null; then
      echo "compare.sh: $label exited at start; its log:" >&2
      cat "$dir/broker.log" >&2 || true
      exit 1
    fi
    sleep 0.05
  done
  echo "compare.sh: $label did not listen on port $port" >&2
  exit 1
}

{
  echo "date:        $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "nproc:       $(nproc)"
  echo "cpu:         $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
  echo "memory:      $(free -h | awk '/^Mem:/ {print $2}')"
  echo "kernel:      $(uname -sr)"
  if [[ " $brokers " == *" herald "* ]]; then
    echo "herald:      $("$HERALD_BIN" --version 2>/dev/null || echo unknown) ($HERALD_BIN)"
    echo "herald conf: ${HERALD_CONFIG:-defaults}"
  fi
  if [[ " $brokers " == *" mosquitto "* ]]; then
    echo "mosquitto:   $("$mosquitto_bin" -h 2>/dev/null | head -1 || true)"
    echo "mosq. extra: ${MOSQUITTO_EXTRA_CONF:-none}"
  fi
  echo "herald-bench: $("$HERALD_BENCH_BIN" --version) ($HERALD_BENCH_BIN)"
  echo "rustc:       $(rustc --version 2>/dev/null || echo unknown)"
  echo "pinning:     broker ${pin_broker[*]:-none}, generator ${pin_bench[*]:-none}"
  echo "rounds:      $rounds, interleaved: $brokers; a fresh broker per family"
  echo "families:    $families"
  echo "arguments:   herald-bench all $*"
} >"$work/machine.txt"
cat "$work/machine.txt" >&2

failed=0
for round in $(seq 1 "$rounds"); do
  for label in $brokers; do
    for family in $families; do
      echo "== round $round/$rounds: $label, $family" >&2
      port="$(free_port)"
      dir="$work/$label-$round-$family"
      start_broker "$label" "$port" "$dir"
      if ! "${pin_bench[@]}" "$HERALD_BENCH_BIN" --port "$port" --broker-pid "$broker_pid" \
        --broker-label "$label" --json "$work/$label-$round-$family.json" \
        all --only "$family" "$@" | tee "$dir/bench.txt"; then
        echo "compare.sh: $family failed against $label in round $round (see above)" >&2
        failed=1
      fi
      stop_broker
    done
  done
done

shopt -s nullglob
jsons=("$work"/*.json)
if [ ${#jsons[@]} -eq 0 ]; then
  echo "compare.sh: no results were written" >&2
  exit 1
fi
"$HERALD_BENCH_BIN" compare --baseline mosquitto --machine "$work/machine.txt" \
  --title "Herald vs Mosquitto (herald-bench)" --out "$results" "${jsons[@]}"
echo "written: $results" >&2
exit "$failed"
