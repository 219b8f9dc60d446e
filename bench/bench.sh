#!/usr/bin/env bash
# Reverse-proxy benchmark: sluice vs nginx vs Caddy in front of one fixed
# backend, in one run, on loopback. Writes docs/benchmarks.md.
#
#   make bench                 (installs wrk, nginx, caddy, h2load; builds)
#   DUR=3 ROUNDS=1 bench/bench.sh   a quick look
#
# Each proxy runs alone (started, measured, stopped) so that its peak RSS
# is its own and idle proxies take no CPU. Rows: HTTP/1.1 keep-alive with
# wrk (-t2 -c64, --latency) and h2 over TLS with h2load (-t2 -c64 -m10), for
# 1 KiB and 1 MiB answers; plus sluice with bench/policy5.yaml at 1 KiB.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

DUR=${DUR:-6}           # seconds per measurement
ROUNDS=${ROUNDS:-3}     # every target is measured once per round; the best round counts (policy overhead: the median of rounds)
WARM=${WARM:-2}         # seconds of warm-up per proxy and protocol
CONNS=${CONNS:-64}
STREAMS=${STREAMS:-10}  # h2 streams per connection
MICRO=${MICRO:-1}       # 0 skips the Go micro-benchmarks
DOC=${DOC:-docs/benchmarks.md}
TARGETS=${TARGETS:-sluice policy5 nginx caddy nethttp versus}  # proxies to measure, in order (policy5 right after sluice: least drift between the two)

out="$root/bench/out/bench"
rm -rf "$out"
mkdir -p "$out/www" "$out/nginx-backend-tmp" "$out/nginx-proxy-tmp" "$out/caddy-home"

need() { command -v "$1" >/dev/null || { echo "bench.sh: $1 not found; run 'make bench' (bench-deps)" >&2; exit 1; }; }
for t in wrk h2load nginx caddy; do need "$t"; done
for b in bin/benchkit $([[ " $TARGETS " == *" sluice "* || " $TARGETS " == *" policy5 "* || " $TARGETS " == *" versus "* ]] && echo bin/sluice); do
  [[ -x $b ]] || { echo "bench.sh: $b missing; run 'make build'" >&2; exit 1; }
done

bin/benchkit cert "$out"
head -c 1024 /dev/urandom >"$out/www/1k"
head -c $((1024 * 1024)) /dev/urandom >"$out/www/1m"
mapfile -t P < <(bin/benchkit ports 8)
BACKEND_PORT=${P[0]} BACKEND_TLS_PORT=${P[1]} PORT=${P[2]} TLS_PORT=${P[3]}
POLICY_PORT=${P[4]} POLICY_TLS_PORT=${P[5]} FLOOR_PORT=${P[6]} EVFLOOR_PORT=${P[7]}

# render TEMPLATE DEST: fills the @PLACEHOLDERS@ of a bench/ config.
render() {
  sed -e "s#@OUT@#$out#g" -e "s#@ROOT@#$root#g" \
    -e "s#@BACKEND_PORT@#$BACKEND_PORT#g" -e "s#@BACKEND_TLS_PORT@#$BACKEND_TLS_PORT#g" \
    -e "s#@PORT@#$PORT#g" -e "s#@TLS_PORT@#$TLS_PORT#g" \
    -e "s#@POLICY_PORT@#$POLICY_PORT#g" -e "s#@POLICY_TLS_PORT@#$POLICY_TLS_PORT#g" "$1" >"$2"
}

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# tree_sum PID FILE AWKPROG: AWKPROG's number from /proc/PID/FILE, summed
# over PID and its children (nginx: the master and its workers).
tree_sum() {
  local pid=$1 file=$2 prog=$3 sum=0 k v
  for k in "$pid" $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    v=$(awk "$prog" "/proc/$k/$file" 2>/dev/null || true)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

# tree_hwm PID: peak RSS (VmHWM) of PID and its children, in KiB; for nginx
# that counts shared pages once per process (an upper bound).
tree_hwm() { tree_sum "$1" status '/^VmHWM:/ {print $2}'; }

# tree_cpu PID: CPU time (user + system, in clock ticks) of PID and its
# children so far; the difference around a measurement, divided by its
# requests, is the target's CPU cost per request. That is much steadier
# than req/s on a shared machine, where other load takes the target's CPU.
tree_cpu() { tree_sum "$1" stat '{print $14 + $15}'; }
TICK=$(getconf CLK_TCK)

# cpu_us T0 T1 REQUESTS: microseconds of CPU per request between two
# tree_cpu readings.
cpu_us() { awk -v a="$1" -v b="$2" -v n="$3" -v t="$TICK" 'BEGIN { if (n > 0) printf "%.1f", (b - a) * 1e6 / t / n; else print "?" }'; }

# start NAME CMD...: runs a server in the background, waits for its ports.
start() {
  local name=$1
  shift
  "$@" >"$out/$name.log" 2>&1 &
  server_pid=$!
  meas_pid=$server_pid
  pids+=("$server_pid")
  if ! bin/benchkit wait "127.0.0.1:$PORT" 10 || ! bin/benchkit wait "127.0.0.1:$TLS_PORT" 10; then
    echo "bench.sh: $name did not start:" >&2
    tail -n 20 "$out/$name.log" >&2
    exit 1
  fi
}

stop() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

results="$out/results.tsv"
: >"$results"

# to_ms VALUE: wrk prints latencies as 812.00us, 1.23ms or 1.05s.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else print "?" }'
}

# h1 TARGET SIZE PORT: one wrk measurement, appended to results.tsv.
h1() {
  local target=$1 size=$2 port=$3 f="$out/wrk-$1-$2-r$round.txt"
  local c0 c1
  c0=$(tree_cpu "$meas_pid")
  wrk -t2 -c"$CONNS" -d"${DUR}s" --timeout 10s --latency -H 'X-Bench: 1' "http://127.0.0.1:$port/$size" >"$f" 2>&1
  c1=$(tree_cpu "$meas_pid")
  local rps p50 p99 errs cpu
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f")
  cpu=$(cpu_us "$c0" "$c1" "$(awk '/requests in/ {print $1}' "$f")")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
  errs=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$f")
  printf '%s\th1\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$size" "${rps:-0}" "$p50" "$p99" "$errs" "$cpu" "$round" >>"$results"
  printf '  %-14s h1 %-3s %9s req/s  p50 %7s ms  p99 %7s ms  cpu %6s us/req  errors %s\n' "$target" "$size" "${rps:-0}" "$p50" "$p99" "$cpu" "$errs"
}

# h2 TARGET SIZE PORT: one h2load measurement (TLS, ALPN h2); latency
# percentiles come from its per-request log.
h2() {
  local target=$1 size=$2 port=$3 f="$out/h2load-$1-$2-r$round.txt" log="$out/h2load-$1-$2-r$round.log"
  # 1 KiB runs are timed (-D). h2load's timed mode can hang for good when it
  # stops clients in the middle of large bodies, so 1 MiB runs use a fixed
  # count instead (two answers per stream slot). timeout bounds both.
  local mode=(-D "$DUR")
  [[ $size == 1m ]] && mode=(-n $((CONNS * STREAMS * 2)))
  local c0 c1
  c0=$(tree_cpu "$meas_pid")
  timeout -k 5 $((DUR + 60)) h2load -t2 -c"$CONNS" -m"$STREAMS" "${mode[@]}" -H 'X-Bench: 1' \
    --log-file="$log" "https://127.0.0.1:$port/$size" >"$f" 2>&1 || echo "h2load: killed or failed" >>"$f"
  c1=$(tree_cpu "$meas_pid")
  touch "$log"
  local rps p50 p99 errs cpu
  cpu=$(cpu_us "$c0" "$c1" "$(awk '/^requests:/ {for (i = 1; i <= NF; i++) if ($(i+1) ~ /^succeeded/) print $i}' "$f")")
  rps=$(awk '/^finished in/ {for (i = 1; i <= NF; i++) if ($(i+1) ~ /^req\/s/) {printf "%.0f", $i}}' "$f")
  read -r p50 p99 < <(cut -f3 "$log" | sort -n | awk '{a[NR] = $1} END {
    if (NR == 0) { print "? ?"; exit }
    i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
    i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
    printf "%.2f %.2f\n", a[i50] / 1000, a[i99] / 1000 }')
  errs=$(awk '/^requests:/ {for (i = 1; i <= NF; i++) if ($(i+1) ~ /^(failed|errored)/) n += $i} /^status codes:/ {for (i = 1; i <= NF; i++) if ($(i+1) ~ /^[345]xx/) n += $i} END {print n + 0}' "$f")
  rm -f "$log"
  printf '%s\th2\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$size" "${rps:-0}" "$p50" "$p99" "$errs" "$cpu" "$round" >>"$results"
  printf '  %-14s h2 %-3s %9s req/s  p50 %7s ms  p99 %7s ms  cpu %6s us/req  errors %s\n' "$target" "$size" "${rps:-0}" "$p50" "$p99" "$cpu" "$errs"
}

# abba A A_PID A_PORT A_TLS_PORT B B_PID B_PORT B_TLS_PORT: 1 KiB over h1
# and h2 (PROTOS), measured A, B, B, A with half-length runs, so that a
# drift of the machine's load during the round weighs on both sides alike.
abba() {
  local proto ap bp
  for proto in ${PROTOS:-h1 h2}; do
    ap=$3 bp=$7
    [[ $proto == h2 ]] && ap=$4 bp=$8
    meas_pid=$2 DUR=$(((DUR + 1) / 2)) "$proto" "$1" 1k "$ap"
    meas_pid=$6 DUR=$(((DUR + 1) / 2)) "$proto" "$5" 1k "$bp"
    meas_pid=$6 DUR=$(((DUR + 1) / 2)) "$proto" "$5" 1k "$bp"
    meas_pid=$2 DUR=$(((DUR + 1) / 2)) "$proto" "$1" 1k "$ap"
  done
}

# floor_vs KIND PORT ROW NGINX_ROW NGINX_PID: runs `benchkit KIND` on PORT
# in front of the backend and measures it ABBA against the side-by-side
# nginx, HTTP/1.1 only.
floor_vs() {
  local kind=$1 port=$2 row=$3 nrow=$4 npid=$5 fpid
  bin/benchkit "$kind" "127.0.0.1:$port" "127.0.0.1:$BACKEND_PORT" >"$out/$kind.log" 2>&1 &
  fpid=$!
  pids+=("$fpid")
  bin/benchkit wait "127.0.0.1:$port" 10
  wrk -t2 -c"$CONNS" -d"${WARM}s" "http://127.0.0.1:$port/1k" >/dev/null 2>&1 || true
  PROTOS=h1 abba "$row" "$fpid" "$port" - "$nrow" "$npid" "$POLICY_PORT" -
  kill "$fpid" 2>/dev/null || true
  wait "$fpid" 2>/dev/null || true
}

warm() {
  wrk -t2 -c"$CONNS" -d"${WARM}s" "http://127.0.0.1:$1/1k" >/dev/null 2>&1 || true
  timeout -k 5 $((WARM + 30)) h2load -t2 -c"$CONNS" -m"$STREAMS" -D "$WARM" "https://127.0.0.1:$2/1k" >/dev/null 2>&1 || true
}

rss_of() { printf '%s\t%s\n' "$1" "$(tree_hwm "$server_pid")" >>"$out/rss.tsv"; }
: >"$out/rss.tsv"

# ---- the fixed backend --------------------------------------------------------
render bench/nginx-backend.conf "$out/nginx-backend.conf"
nginx -p "$out" -e "$out/nginx-backend.error.log" -c "$out/nginx-backend.conf" >"$out/backend.log" 2>&1 &
backend_pid=$!
pids+=("$backend_pid")
if ! bin/benchkit wait "127.0.0.1:$BACKEND_PORT" 10 || ! bin/benchkit wait "127.0.0.1:$BACKEND_TLS_PORT" 10; then
  echo "bench.sh: backend nginx did not start:" >&2
  cat "$out/backend.log" >&2
  exit 1
fi

# ---- proxies, one at a time -----------------------------------------------------
measure() {
  local target=$1
  warm "$PORT" "$TLS_PORT"
  for s in 1k 1m; do h1 "$target" "$s" "$PORT"; done
  for s in 1k 1m; do h2 "$target" "$s" "$TLS_PORT"; done
  rss_of "$target"
}

# one_round measures the backend directly, then each target in turn.
one_round() {
  echo "bench: round $round of $ROUNDS"
  echo "bench: direct to the backend (nginx static, 1 worker)"
  meas_pid=$backend_pid
  warm "$BACKEND_PORT" "$BACKEND_TLS_PORT"
  for s in 1k 1m; do h1 direct "$s" "$BACKEND_PORT"; done
  for s in 1k 1m; do h2 direct "$s" "$BACKEND_TLS_PORT"; done

  for target in $TARGETS; do
    case $target in
    sluice)
      echo "bench: sluice"
      render bench/sluice.yaml "$out/sluice.yaml"
      start sluice bin/sluice serve -c "$out/sluice.yaml"
      measure sluice
      ;;
    nginx)
      echo "bench: nginx (proxy_pass, upstream keepalive 64, worker_processes auto)"
      render bench/nginx-proxy.conf "$out/nginx-proxy.conf"
      start nginx nginx -p "$out" -e "$out/nginx-proxy.error.log" -c "$out/nginx-proxy.conf"
      measure nginx
      ;;
    caddy)
      echo "bench: caddy (reverse_proxy)"
      render bench/Caddyfile "$out/Caddyfile"
      start caddy env HOME="$out/caddy-home" XDG_DATA_HOME="$out/caddy-home" XDG_CONFIG_HOME="$out/caddy-home" \
        caddy run --config "$out/Caddyfile" --adapter caddyfile
      measure caddy
      ;;
    policy5)
      # One sluice process serves the same upstream on endpoints without
      # and with the policy; runs alternate between them, so the difference
      # is the policy, not process state or a drift in machine load.
      echo "bench: sluice with and without bench/policy5.yaml (1 KiB, one process, alternating)"
      render bench/sluice-policy5.yaml "$out/sluice-policy5.yaml"
      start sluice-policy5 bin/sluice serve -c "$out/sluice-policy5.yaml"
      bin/benchkit wait "127.0.0.1:$POLICY_PORT" 10
      bin/benchkit wait "127.0.0.1:$POLICY_TLS_PORT" 10
      warm "$PORT" "$TLS_PORT"
      warm "$POLICY_PORT" "$POLICY_TLS_PORT"
      abba sluice-nopolicy "$server_pid" "$PORT" "$TLS_PORT" sluice+policy5 "$server_pid" "$POLICY_PORT" "$POLICY_TLS_PORT"
      rss_of sluice+policy5
      ;;
    versus)
      # sluice and nginx running at once, on their own ports, measured in
      # turn (sluice, nginx, nginx, sluice; half-length runs), so that the
      # machine's load, which drifts over the minutes between the rows
      # above, weighs on both alike. The headline ratio comes from here.
      echo "bench: sluice and nginx side by side (1 KiB, alternating)"
      render bench/sluice.yaml "$out/sluice-vs.yaml"
      PORT=$POLICY_PORT TLS_PORT=$POLICY_TLS_PORT render bench/nginx-proxy.conf "$out/nginx-vs.conf"
      start sluice-vs bin/sluice serve -c "$out/sluice-vs.yaml"
      local sluice_pid=$server_pid nginx_pid
      nginx -p "$out" -e "$out/nginx-vs.error.log" -c "$out/nginx-vs.conf" >"$out/nginx-vs.log" 2>&1 &
      nginx_pid=$!
      pids+=("$nginx_pid")
      if ! bin/benchkit wait "127.0.0.1:$POLICY_PORT" 10 || ! bin/benchkit wait "127.0.0.1:$POLICY_TLS_PORT" 10; then
        echo "bench.sh: nginx (side by side) did not start:" >&2
        cat "$out/nginx-vs.log" "$out/nginx-vs.error.log" >&2
        exit 1
      fi
      warm "$PORT" "$TLS_PORT"
      warm "$POLICY_PORT" "$POLICY_TLS_PORT"
      abba vs-sluice "$sluice_pid" "$PORT" "$TLS_PORT" vs-nginx "$nginx_pid" "$POLICY_PORT" "$POLICY_TLS_PORT"
      # The Go floor (benchkit floor: a goroutine per connection and
      # nothing else) against the same nginx, HTTP/1.1 only: what any
      # goroutine-per-connection Go proxy can reach on this machine.
      floor_vs floor "$FLOOR_PORT" vs-floor vs-nginx-f "$nginx_pid"
      # The event-loop floor (benchkit evfloor: one epoll loop per P, no
      # goroutine per connection, as nginx's workers) the same way: what
      # the goroutine wake-ups cost, by difference with the row above.
      floor_vs evfloor "$EVFLOOR_PORT" vs-evfloor vs-nginx-e "$nginx_pid"
      kill "$nginx_pid" 2>/dev/null || true
      wait "$nginx_pid" 2>/dev/null || true
      ;;
    nethttp)
      # Not a proxy: Go's net/http answering 1 KiB itself, the floor under
      # any Go server (sluice's h2 side is this same x/net/http2 server).
      echo "bench: Go net/http serving 1 KiB itself (no proxying)"
      start nethttp bin/benchkit serve "127.0.0.1:$PORT" "127.0.0.1:$TLS_PORT" "$out/cert.pem" "$out/key.pem"
      warm "$PORT" "$TLS_PORT"
      h1 nethttp 1k "$PORT"
      h2 nethttp 1k "$TLS_PORT"
      rss_of nethttp
      ;;
    *)
      echo "bench.sh: unknown target $target (sluice policy5 nginx caddy nethttp versus)" >&2
      exit 1
      ;;
    esac
    stop
  done
}

# Rounds interleave the targets, so that a burst of load from elsewhere on
# the machine hurts one round of every target rather than all of one.
for round in $(seq "$ROUNDS"); do
  one_round
done

# ---- Go micro-benchmarks ----------------------------------------------------------
micro="$out/micro.txt"
if [[ $MICRO == 1 ]]; then
  echo "bench: go test -run=^\$ -bench=. -benchmem ./proxy/ ./policy/..."
  go test -run='^$' -bench=. -benchmem ./proxy/ ./policy/... >"$micro" 2>&1 || echo "(some micro-benchmarks failed; see above)" >>"$micro"
else
  echo "(skipped: MICRO=0)" >"$micro"
fi

DUR=$DUR WARM=$WARM ROUNDS=$ROUNDS bench/report.sh "$out" "$DOC"
echo "bench: wrote $DOC"
