#!/usr/bin/env bash
# Soak test: samples/WebApp on MegaPipe under 10 minutes of mixed keep-alive, short
# connections and resets, then graceful shutdown under load. Not a unit test: run it by hand.
#
#   perf/soak/soak.sh                   # the full soak: 600 s of load, about 12 minutes in all
#   perf/soak/soak.sh --duration 60     # a quick check
#
# It builds WebApp and the soak clients (perf/soak/MegaPipe.Soak) into a private folder, starts
# WebApp with --diagnostics on a free port, warms it up, takes a baseline (RSS, open fds, the
# transport's live connections and whatever handle/slot figures it publishes), runs the load,
# waits for the connections to drain, compares, then SIGTERMs the server under a checking client.
# Prints a table and PASS/FAIL, writes perf/results/soak.md, exits 0 on PASS and 1 on FAIL.
# Every rule and its reason: perf/soak/README.md. Options:
#   --duration S            seconds of soak load (600)
#   --warmup S              seconds of the same load before the baseline (20)
#   --transport T           megapipe (default) or sockets (Kestrel's own, to check the harness)
#   --tls                   the load over HTTPS: WebApp --https_url with a fresh RSA-2048 certificate, TLS on the
#                           channels (UseMegaPipeHttps); wrk, the reset client (with resets mid-handshake) and the
#                           shutdown checker all over TLS; /_diag stays plain HTTP
#   --tls-mode M            channel (default: UseMegaPipeHttps) or sslstream (Kestrel's UseHttps), with --tls
#   --server-args "..."     more WebApp arguments, e.g. "--MegaPipe:UnsafeInlineScheduling true"
#   --keepalive N           wrk keep-alive connections on /plaintext (16); half as many on /json + /6k.html
#   --close N               wrk Connection: close connections (4)
#   --resets N              reset-client workers (4)
#   --shutdown-connections N  checker connections in the shutdown phase (48)
#   --nice N                niceness of the server and the clients (10), so the machine stays usable
#   --work DIR              build output, logs and samples (a new /tmp/megapipe-soak.XXXXXX)
#   --results FILE          the report (perf/results/soak.md, soak-tls.md with --tls; "-" for none)
# Needs: the .NET SDK, wrk and curl (installed with apt-get when missing and running as root).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DURATION=600
WARMUP=20
TRANSPORT=megapipe
TLS=0
TLS_MODE=channel
SERVER_ARGS=""
KA=16
CLOSE=4
RESETS=4
SHUTDOWN_CONNECTIONS=48
NICE=10
WORK=""
RESULTS=""
SETTLE_TIMEOUT=60
# Every client closes or resets its connections when the load stops: they must be gone this soon.
DRAIN_LIMIT=10
# Kestrel's default shutdown timeout (30 s) plus a margin.
EXIT_LIMIT=35

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --transport) TRANSPORT=$2; shift 2 ;;
    --tls) TLS=1; shift ;;
    --tls-mode) TLS_MODE=$2; shift 2 ;;
    --server-args) SERVER_ARGS=$2; shift 2 ;;
    --keepalive) KA=$2; shift 2 ;;
    --close) CLOSE=$2; shift 2 ;;
    --resets) RESETS=$2; shift 2 ;;
    --shutdown-connections) SHUTDOWN_CONNECTIONS=$2; shift 2 ;;
    --nice) NICE=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --results) RESULTS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
KA_MIX=$(( (KA + 1) / 2 ))
# The HTTPS soak has its own report beside the plain one.
[ -n "$RESULTS" ] || RESULTS="$REPO/perf/results/$( [ "$TLS" = 1 ] && echo soak-tls.md || echo soak.md)"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'soak: %s\n' "$*" >&2; exit 2; }
# The server died or stopped answering: the run fails at once (exit 1, no report).
die_fail() { log "FAIL: $*"; [ -z "${WORK:-}" ] || tail -30 "$WORK/server.log" >&2 || true; echo FAIL; exit 1; }

# ---- tools ---------------------------------------------------------------------------------
need_apt() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing $pkg (apt-get install -y $pkg)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null \
      || die "apt-get install $pkg failed; install it and run again"
  else
    die "$cmd is missing: install it (apt-get install $pkg) and run again"
  fi
}
command -v dotnet >/dev/null 2>&1 || die "the .NET SDK (dotnet) is missing"
need_apt wrk wrk
need_apt curl curl

[ -n "$WORK" ] || WORK=$(mktemp -d /tmp/megapipe-soak.XXXXXX)
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# ---- processes: everything started here is stopped on exit, by pid --------------------------
SERVER_PID=""
BG_PIDS=()
cleanup() {
  local p
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build ---------------------------------------------------------------------------------
log "building WebApp and the soak clients into $WORK"
dotnet publish "$REPO/samples/WebApp/WebApp.csproj" -c Release -o "$WORK/webapp" --nologo -v q >"$WORK/build.log" 2>&1 \
  || { tail -20 "$WORK/build.log"; die "building WebApp failed (log: $WORK/build.log)"; }
dotnet publish "$REPO/perf/soak/MegaPipe.Soak/MegaPipe.Soak.csproj" -c Release -o "$WORK/soak" --nologo -v q >>"$WORK/build.log" 2>&1 \
  || { tail -20 "$WORK/build.log"; die "building MegaPipe.Soak failed (log: $WORK/build.log)"; }
SOAK="$WORK/soak/MegaPipe.Soak"

# The content root: WebApp's wwwroot plus a 1 MiB file for resets in the middle of a response.
rm -rf "$WORK/content" && mkdir -p "$WORK/content/wwwroot"
cp "$REPO/samples/WebApp/wwwroot/"* "$WORK/content/wwwroot/"
head -c 1048576 /dev/urandom >"$WORK/content/wwwroot/soak-1m.bin"
LARGE="$WORK/content/wwwroot/soak-1m.bin"
SMALL="$WORK/content/wwwroot/6k.html"

# HTTPS: a certificate for the run (RSA-2048, as the benchmarks use), and WebApp's HTTPS endpoint on port 0.
TLS_ARGS=""
SOAK_TLS=""
if [ "$TLS" = 1 ]; then
  command -v openssl >/dev/null 2>&1 || die "openssl is missing (apt-get install openssl)"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 || die "openssl could not make a certificate"
  TLS_ARGS="--https_url https://127.0.0.1:0 --cert $WORK/cert.pem --key $WORK/key.pem --tls $TLS_MODE"
  SOAK_TLS="--tls"
fi

# ---- server --------------------------------------------------------------------------------
# shellcheck disable=SC2086
nice -n "$NICE" "$WORK/webapp/WebApp" --urls http://127.0.0.1:0 --contentRoot "$WORK/content" \
  --transport "$TRANSPORT" --diagnostics $TLS_ARGS $SERVER_ARGS >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
PORT=""
for _ in $(seq 300); do
  PORT=$(grep -oE 'Now listening on: http://127\.0\.0\.1:[0-9]+' "$WORK/server.log" 2>/dev/null | head -1 | grep -oE '[0-9]+$' || true)
  [ -n "$PORT" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; die "WebApp exited at startup"; }
  sleep 0.1
done
[ -n "$PORT" ] || { cat "$WORK/server.log"; die "WebApp did not report its port within 30 s"; }
BASE="http://127.0.0.1:$PORT"
# The load's endpoint: the same server over HTTPS with --tls (/_diag stays on BASE).
LOAD_PORT=$PORT
if [ "$TLS" = 1 ]; then
  LOAD_PORT=""
  for _ in $(seq 100); do
    LOAD_PORT=$(grep -oE 'Now listening on: https://127\.0\.0\.1:[0-9]+' "$WORK/server.log" 2>/dev/null | head -1 | grep -oE '[0-9]+$' || true)
    [ -n "$LOAD_PORT" ] && break
    sleep 0.1
  done
  [ -n "$LOAD_PORT" ] || { cat "$WORK/server.log"; die "WebApp did not report its HTTPS port"; }
fi
LOAD_BASE="$( [ "$TLS" = 1 ] && echo https || echo http )://127.0.0.1:$LOAD_PORT"
log "WebApp ($TRANSPORT$( [ "$TLS" = 1 ] && echo ", HTTPS $TLS_MODE")) pid $SERVER_PID, load on $LOAD_BASE, /_diag on $BASE; logs and samples in $WORK"

# ---- figures -------------------------------------------------------------------------------
diag() { curl -sf --max-time 30 "$BASE/_diag$1"; }
# jget JSON KEY: a number from /_diag's flat JSON (empty when the key is absent).
jget() { printf '%s' "$1" | grep -oE "\"${2//./\\.}\":[-0-9.eE+]+" | head -1 | cut -d: -f2 || true; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
fd_count() { ls "/proc/$SERVER_PID/fd" | wc -l; }
# Server-side responses by status class, from hosting's request-duration histogram.
status_count() { printf '%s' "$1" | grep -oE "\"http\\.server\\.request\\.duration\\.count\\{[^}]*status_code=$2[^}]*\\}\":[0-9]+" | awk -F: '{s += $NF} END {print s + 0}' || true; }
# Transport instruments that count handles or registered-file slots, when the transport publishes them.
SLOT_KEYS="megapipe.handles megapipe.registered_files megapipe.receive_buffers_available"

# snapshot NAME: full GC, then /proc figures and the transport's, into shell variables NAME_*.
snapshot() {
  local name=$1 json
  json=$(diag '?gc=true') || die_fail "GET /_diag failed (server log: $WORK/server.log)"
  printf -v "${name}_RSS" '%s' "$(rss_kib)"
  printf -v "${name}_FDS" '%s' "$(fd_count)"
  printf -v "${name}_HEAP" '%s' "$(jget "$json" gc.heap_bytes)"
  printf -v "${name}_THREADS" '%s' "$(jget "$json" process.threads)"
  printf -v "${name}_MPCONN" '%s' "$(jget "$json" megapipe.connections)"
  printf -v "${name}_KCONN" '%s' "$(jget "$json" kestrel.active_connections)"
  printf -v "${name}_REQS" '%s' "$(jget "$json" http.server.active_requests)"
  local k v
  for k in $SLOT_KEYS; do
    v=$(jget "$json" "$k")
    printf -v "${name}_$(echo "${k#megapipe.}" | tr 'a-z.' 'A-Z_')" '%s' "$v"
  done
  printf '%s\n' "$json" >"$WORK/diag-$name.json"
}

# wait_idle: until no connection but /_diag's own is open (the transport's count and Kestrel's)
# and no request but its own is active; prints the seconds it took, or fails after SETTLE_TIMEOUT.
wait_idle() {
  local start json mp k r
  start=$(date +%s%N)
  while :; do
    json=$(diag '') || { echo "GET /_diag failed"; return 1; }
    mp=$(jget "$json" megapipe.connections); k=$(jget "$json" kestrel.active_connections); r=$(jget "$json" http.server.active_requests)
    if awk -v a="${mp:-0}" -v b="${k:-0}" -v c="${r:-0}" 'BEGIN {exit !(a <= 1 && b <= 1 && c <= 1)}'; then
      awk -v s="$start" -v e="$(date +%s%N)" 'BEGIN {printf "%.1f", (e - s) / 1e9}'
      return 0
    fi
    if [ $(( ($(date +%s%N) - start) / 1000000000 )) -ge "$SETTLE_TIMEOUT" ]; then
      echo "timeout (megapipe.connections=$mp kestrel.active_connections=$k http.server.active_requests=$r)"
      return 1
    fi
    sleep 0.5
  done
}

# ---- load ----------------------------------------------------------------------------------
LOAD_PIDS=()
# start_load PHASE SECONDS: wrk keep-alive /plaintext, wrk keep-alive /json + /6k.html, wrk with
# Connection: close on /plaintext, /json and /6k.html, and the reset client, all at once.
start_load() {
  local phase=$1 secs=$2
  LOAD_PIDS=()
  nice -n "$NICE" wrk -t1 -c"$KA" -d"${secs}s" --timeout 10s "$LOAD_BASE/plaintext" >"$WORK/$phase-wrk-keepalive-plaintext.txt" 2>&1 &
  LOAD_PIDS+=($!)
  nice -n "$NICE" wrk -t1 -c"$KA_MIX" -d"${secs}s" --timeout 10s -s "$REPO/perf/soak/paths.lua" "$LOAD_BASE/json" -- /json /6k.html >"$WORK/$phase-wrk-keepalive-json-static.txt" 2>&1 &
  LOAD_PIDS+=($!)
  nice -n "$NICE" wrk -t1 -c"$CLOSE" -d"${secs}s" --timeout 10s -H "Connection: close" -s "$REPO/perf/soak/paths.lua" "$LOAD_BASE/plaintext" -- /plaintext /json /6k.html >"$WORK/$phase-wrk-close.txt" 2>&1 &
  LOAD_PIDS+=($!)
  # shellcheck disable=SC2086
  nice -n "$NICE" "$SOAK" resets --port "$LOAD_PORT" $SOAK_TLS --duration "$secs" --connections "$RESETS" --large-path /soak-1m.bin --large-file "$LARGE" >"$WORK/$phase-resets.txt" 2>&1 &
  LOAD_PIDS+=($!)
  BG_PIDS+=("${LOAD_PIDS[@]}")
}
# wait_load: waits for every load process (not in a subshell: wait needs this shell's children);
# LOAD_BAD is the number that exited non-zero.
wait_load() {
  local p
  LOAD_BAD=0
  for p in "${LOAD_PIDS[@]}"; do wait "$p" || LOAD_BAD=$((LOAD_BAD + 1)); done
}

# wrk_figures FILE: "requests non2xx connect read write timeout".
wrk_figures() {
  local f=$1 req non sock
  req=$(grep -oE '[0-9]+ requests in' "$f" | grep -oE '^[0-9]+' || true)
  non=$(grep -oE 'Non-2xx or 3xx responses: [0-9]+' "$f" | grep -oE '[0-9]+$' || true)
  sock=$(grep -oE 'Socket errors: connect [0-9]+, read [0-9]+, write [0-9]+, timeout [0-9]+' "$f" | grep -oE '[0-9]+' | tr '\n' ' ' || true)
  echo "${req:-MISSING} ${non:-0} ${sock:-0 0 0 0}"
}

FAILS=()
fail() { FAILS+=("$1"); log "FAIL: $1"; }

# ---- warm-up and baseline ------------------------------------------------------------------
snapshot COLD
log "cold: RSS $((COLD_RSS / 1024)) MiB, $COLD_FDS fds; warming up for $WARMUP s with the soak's load"
start_load warmup "$WARMUP"
wait_load
[ "$LOAD_BAD" = 0 ] || fail "warm-up: $LOAD_BAD load process(es) exited non-zero (see $WORK/warmup-*.txt)"
kill -0 "$SERVER_PID" 2>/dev/null || die_fail "the server died during the warm-up (log: $WORK/server.log)"
WARM_SETTLE=$(wait_idle) || fail "warm-up: connections did not drain: $WARM_SETTLE"
snapshot BASE
log "baseline (after warm-up, drained in ${WARM_SETTLE} s, full GC): RSS $((BASE_RSS / 1024)) MiB, $BASE_FDS fds, megapipe.connections ${BASE_MPCONN:-n/a}"

# ---- soak ----------------------------------------------------------------------------------
SAMPLE_INTERVAL=$(( DURATION / 20 )); [ "$SAMPLE_INTERVAL" -ge 5 ] || SAMPLE_INTERVAL=5
echo "elapsed_s,rss_kib,fds,threads,megapipe_connections,kestrel_connections,gc_heap_bytes,responses_2xx" >"$WORK/samples.csv"
sampler() {
  local t0 now json
  t0=$(date +%s)
  while [ ! -e "$WORK/stop-sampler" ]; do
    now=$(date +%s)
    json=$(diag '' || true)
    echo "$((now - t0)),$(rss_kib),$(fd_count),$(jget "$json" process.threads),$(jget "$json" megapipe.connections),$(jget "$json" kestrel.active_connections),$(jget "$json" gc.heap_bytes),$(status_count "$json" 2)" >>"$WORK/samples.csv"
    while [ $(( $(date +%s) - now )) -lt "$SAMPLE_INTERVAL" ] && [ ! -e "$WORK/stop-sampler" ]; do sleep 1; done
  done
}
rm -f "$WORK/stop-sampler"
log "soak: $DURATION s of wrk keep-alive ($KA on /plaintext, $KA_MIX on /json + /6k.html), wrk Connection: close ($CLOSE), resets ($RESETS workers)"
SOAK_START=$(date +%s)
start_load soak "$DURATION"
sampler &
SAMPLER_PID=$!
BG_PIDS+=("$SAMPLER_PID")
wait_load
touch "$WORK/stop-sampler"
wait "$SAMPLER_PID" || true
SOAK_SECONDS=$(( $(date +%s) - SOAK_START ))
[ "$LOAD_BAD" = 0 ] || fail "soak: $LOAD_BAD load process(es) exited non-zero (see $WORK/soak-*.txt)"
kill -0 "$SERVER_PID" 2>/dev/null || die_fail "the server died during the soak (log: $WORK/server.log)"

# wrk's figures: every request it counted answered (no non-2xx/3xx) and no socket error at all.
WRK_ROWS=""
WRK_TOTAL=0
for f in soak-wrk-keepalive-plaintext soak-wrk-keepalive-json-static soak-wrk-close; do
  read -r req non con rd wr to <<<"$(wrk_figures "$WORK/$f.txt")"
  rps=$(grep -oE 'Requests/sec: +[0-9.]+' "$WORK/$f.txt" | grep -oE '[0-9.]+$' || echo "?")
  WRK_ROWS+="| ${f#soak-wrk-} | $req | $rps | $non | $con / $rd / $wr / $to |"$'\n'
  if [ "$req" = MISSING ]; then fail "$f: no wrk summary"; continue; fi
  WRK_TOTAL=$((WRK_TOTAL + req))
  [ "$non" = 0 ] || fail "$f: $non non-2xx/3xx responses"
  [ "$((con + rd + wr + to))" = 0 ] || fail "$f: socket errors connect $con, read $rd, write $wr, timeout $to"
done
RESETS_LINE=$(grep '^RESULT' "$WORK/soak-resets.txt" || true)
rget() { printf '%s' "$RESETS_LINE" | grep -oE "(^| )$1=[0-9]+" | cut -d= -f2 || true; }
RESETS_TOTAL=$(rget resets_total)
RESETS_FAILURES=$(rget resets_failures)
[ -n "$RESETS_TOTAL" ] || fail "reset client: no result line (see $WORK/soak-resets.txt)"
[ "${RESETS_FAILURES:-0}" = 0 ] || fail "reset client: $RESETS_FAILURES failures (see $WORK/soak-resets.txt)"

# ---- drain and compare -----------------------------------------------------------------------
SETTLE=$(wait_idle) || fail "after the soak the connections did not drain: $SETTLE"
awk -v s="$SETTLE" -v l="$DRAIN_LIMIT" 'BEGIN {exit !(s + 0 == s && s <= l)}' \
  || fail "connections took $SETTLE s to drain after the load stopped (limit $DRAIN_LIMIT s)"
snapshot END
END_JSON=$(cat "$WORK/diag-END.json")
# Connections Kestrel had to end on one of its timeouts: no client here leaves a connection idle or
# a request unfinished without closing or resetting it, so each one is a close the server missed.
TIMEOUT_ENDS=$(printf '%s' "$END_JSON" | grep -oE '"kestrel\.connection\.duration\.count\{error\.type=[a-z_]*timeout[^}]*\}":[0-9]+' | awk -F: '{s += $NF} END {print s + 0}' || true)
[ "$TIMEOUT_ENDS" = 0 ] || fail "$TIMEOUT_ENDS connections were ended by a Kestrel timeout (error.type *timeout: a client's close or reset the server did not see)"
SERVER_2XX=$(status_count "$END_JSON" 2); SERVER_3XX=$(status_count "$END_JSON" 3)
SERVER_4XX=$(status_count "$END_JSON" 4); SERVER_5XX=$(status_count "$END_JSON" 5)
[ "$SERVER_5XX" = 0 ] || fail "the server answered $SERVER_5XX requests with 5xx"
STATUS_CODES=$(printf '%s' "$END_JSON" | grep -oE '"http\.server\.request\.duration\.count\{[^}]*\}":[0-9]+' | sed -E 's/^.*status_code=([0-9]+)[^}]*\}":/\1 /; s/^"[^"]*":/other /' | sort | tr '\n' ',' | sed 's/,$//; s/,/, /g' || true)
# Connection outcomes by error.type, from Kestrel's connection-duration histogram.
CONN_OUTCOMES=$(printf '%s' "$END_JSON" | grep -oE '"kestrel\.connection\.duration\.count\{[^}]*\}":[0-9]+' | sed -E 's/^"kestrel\.connection\.duration\.count\{(error\.type=)?([^}]*)\}":/\2 /; s/^ /ok /' | sort | tr '\n' ',' | sed 's/,$//; s/,/, /g' || true)

RSS_LIMIT=$(awk -v b="$BASE_RSS" 'BEGIN {a = b * 1.5; c = b + 65536; printf "%d", (a > c ? a : c)}')
[ "$END_RSS" -le "$RSS_LIMIT" ] || fail "RSS $((END_RSS / 1024)) MiB over the limit $((RSS_LIMIT / 1024)) MiB"
[ "$END_FDS" -le $((BASE_FDS + 4)) ] || fail "open fds $END_FDS, baseline $BASE_FDS (limit +4)"
if [ -n "$END_MPCONN" ]; then
  awk -v a="$END_MPCONN" 'BEGIN {exit !(a <= 1)}' || fail "megapipe.connections $END_MPCONN after draining (1 is /_diag's own)"
fi
awk -v a="${END_KCONN:-0}" 'BEGIN {exit !(a <= 1)}' || fail "kestrel.active_connections $END_KCONN after draining (1 is /_diag's own)"
SLOT_ROWS=""
for k in $SLOT_KEYS; do
  var=$(echo "${k#megapipe.}" | tr 'a-z.' 'A-Z_')
  b=$(eval echo "\${BASE_$var:-}"); e=$(eval echo "\${END_$var:-}")
  if [ -z "$b" ]; then
    SLOT_ROWS+="| $k | not published | not published | |"$'\n'
    continue
  fi
  if [ "$k" = megapipe.receive_buffers_available ]; then
    rule="end >= baseline"; awk -v b="$b" -v e="$e" 'BEGIN {exit !(e >= b)}' || fail "$k $e, baseline $b"
  else
    rule="end <= baseline"; awk -v b="$b" -v e="$e" 'BEGIN {exit !(e <= b)}' || fail "$k $e, baseline $b"
  fi
  SLOT_ROWS+="| $k | $b | $e | $rule |"$'\n'
done

# ---- graceful shutdown under load --------------------------------------------------------------
log "shutdown: $SHUTDOWN_CONNECTIONS checking connections, SIGTERM after 3 s of load"
# shellcheck disable=SC2086
"$SOAK" shutdown --port "$LOAD_PORT" $SOAK_TLS --pid "$SERVER_PID" --connections "$SHUTDOWN_CONNECTIONS" --after 3 \
  --large-path /soak-1m.bin --large-file "$LARGE" --small-file "$SMALL" >"$WORK/shutdown.txt" 2>&1 &
CHECKER_PID=$!
BG_PIDS+=("$CHECKER_PID")
SIGTERM_MS=""
EXIT_MS=""
DEADLINE=$(( $(date +%s) + 60 + EXIT_LIMIT ))
while kill -0 "$SERVER_PID" 2>/dev/null; do
  [ -n "$SIGTERM_MS" ] || SIGTERM_MS=$(grep -oE 'SIGTERM sent .* at unix_ms=[0-9]+' "$WORK/shutdown.txt" | grep -oE '[0-9]+$' || true)
  if [ -n "$SIGTERM_MS" ] && [ $(( $(date +%s%3N) - SIGTERM_MS )) -gt $((EXIT_LIMIT * 1000)) ]; then break; fi
  [ "$(date +%s)" -lt "$DEADLINE" ] || break
  sleep 0.05
done
if kill -0 "$SERVER_PID" 2>/dev/null; then
  fail "the server did not exit within $EXIT_LIMIT s of SIGTERM"
  kill -KILL "$SERVER_PID" 2>/dev/null || true
fi
EXIT_MS=$(date +%s%3N)
[ -n "$SIGTERM_MS" ] || SIGTERM_MS=$(grep -oE 'SIGTERM sent .* at unix_ms=[0-9]+' "$WORK/shutdown.txt" | grep -oE '[0-9]+$' || true)
SERVER_RC=0
wait "$SERVER_PID" || SERVER_RC=$?
SERVER_PID=""
[ "$SERVER_RC" = 0 ] || fail "the server exited with code $SERVER_RC"
EXIT_SECONDS=$([ -n "$SIGTERM_MS" ] && awk -v s="$SIGTERM_MS" -v e="$EXIT_MS" 'BEGIN {printf "%.2f", (e - s) / 1000}' || echo "?")
CHECKER_RC=0
wait "$CHECKER_PID" || CHECKER_RC=$?
SHUTDOWN_LINE=$(grep '^RESULT' "$WORK/shutdown.txt" || true)
sget() { printf '%s' "$SHUTDOWN_LINE" | grep -oE "(^| )$1=[0-9.]+" | cut -d= -f2 || true; }
[ -n "$SHUTDOWN_LINE" ] || fail "shutdown checker: no result line (see $WORK/shutdown.txt)"
[ "$CHECKER_RC" = 0 ] || fail "shutdown checker: $(sget shutdown_failures) failures (see $WORK/shutdown.txt)"

# ---- the server's log ----------------------------------------------------------------------------
# An entry is a "level: category[id]" line and its indented continuation lines. Expected: the
# Information entries of Microsoft.Hosting.Lifetime (listening, started, shutting down) and of
# MegaPipe.Transport (listening). Anything else (Warning and above from any category, an
# exception, an unhandled-exception dump) is unexpected.
awk '
  /^(trce|dbug|info|warn|fail|crit): / {
    ok = ($0 ~ /^info: (Microsoft\.Hosting\.Lifetime|MegaPipe\.Transport)\[/)
    if (!ok) print
    next
  }
  /^      / { if (!ok) print; next }
  NF { print }
' "$WORK/server.log" >"$WORK/server-unexpected.log"
UNEXPECTED=$(grep -c . "$WORK/server-unexpected.log" || true)
[ "$UNEXPECTED" = 0 ] || fail "$UNEXPECTED unexpected server log lines (see $WORK/server-unexpected.log)"

# ---- report ----------------------------------------------------------------------------------
VERDICT=PASS; [ ${#FAILS[@]} = 0 ] || VERDICT=FAIL
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
mibb() { [ -n "$1" ] && awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}' || echo "n/a"; }
RSS_MIN=$(awk -F, 'NR > 1 && $2 != "" {if (m == "" || $2 < m) m = $2} END {print m}' "$WORK/samples.csv")
RSS_MAX=$(awk -F, 'NR > 1 && $2 != "" {if ($2 > m) m = $2} END {print m}' "$WORK/samples.csv")
FD_MAX=$(awk -F, 'NR > 1 && $3 != "" {if ($3 > m) m = $3} END {print m}' "$WORK/samples.csv")
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")
DIRTY=$(git -C "$REPO" status --porcelain -- src samples/WebApp perf/soak 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)

report() {
  cat <<EOF
# Soak: samples/WebApp on $TRANSPORT$( [ "$TLS" = 0 ] || echo " over HTTPS ($( [ "$TLS_MODE" = channel ] && echo "TLS on the channels, UseMegaPipeHttps" || echo "Kestrel's UseHttps"))")

$(date -u '+%Y-%m-%d %H:%M UTC'), commit $COMMIT$DIRTY, $(nproc) CPUs, kernel $(uname -r).
Command: \`perf/soak/soak.sh --duration $DURATION$( [ "$TRANSPORT" = megapipe ] || echo " --transport $TRANSPORT")$( [ "$TLS" = 0 ] || echo " --tls$( [ "$TLS_MODE" = channel ] || echo " --tls-mode $TLS_MODE")")$( [ -z "$SERVER_ARGS" ] || echo " --server-args \"$SERVER_ARGS\"")\` (warm-up $WARMUP s; rules: perf/soak/README.md).

**$VERDICT**$( [ ${#FAILS[@]} = 0 ] || printf ': %s' "$(printf '%s; ' "${FAILS[@]}" | sed 's/; $//')")

## Load ($SOAK_SECONDS s, all at once, server and clients at nice $NICE)

| wrk | requests | requests/s | non-2xx/3xx | socket errors connect / read / write / timeout |
|---|---:|---:|---:|---|
$WRK_ROWS
Reset client: ${RESETS_TOTAL:-?} connections, ${RESETS_FAILURES:-?} failures ($(printf '%s' "$RESETS_LINE" | grep -oE 'resets_[A-Za-z]+=[0-9]+' | grep -vE 'resets_(total|failures)=' | sed 's/^resets_//; s/=/ /' | tr '\n' ',' | sed 's/,$//; s/,/, /g')).

Server side over the warm-up and the soak (hosting's request-duration counts by status: $STATUS_CODES; 499 is a request whose client went away, i.e. the reset client): $SERVER_2XX 2xx, $SERVER_3XX 3xx, $SERVER_4XX 4xx, $SERVER_5XX 5xx. Connections ended by outcome (Kestrel's connection-duration counts by error.type): $CONN_OUTCOMES.

## Before and after

Baseline: after the $WARMUP s warm-up, the connections drained (in $WARM_SETTLE s), a full compacting GC. End: after the soak, the connections drained in $SETTLE s (limit $DRAIN_LIMIT s), a full compacting GC. Connections ended by a Kestrel timeout: $TIMEOUT_ENDS (must be 0).

| figure | cold start | baseline | end | rule |
|---|---:|---:|---:|---|
| RSS (MiB, /proc VmRSS) | $(mib "$COLD_RSS") | $(mib "$BASE_RSS") | $(mib "$END_RSS") | end <= max(1.5 x baseline, baseline + 64 MiB) = $(mib "$RSS_LIMIT") |
| open fds (/proc/PID/fd) | $COLD_FDS | $BASE_FDS | $END_FDS | end <= baseline + 4 |
| megapipe.connections | ${COLD_MPCONN:-n/a} | ${BASE_MPCONN:-n/a} | ${END_MPCONN:-n/a} | <= 1 (/_diag's own connection) |
| kestrel.active_connections | ${COLD_KCONN:-n/a} | ${BASE_KCONN:-n/a} | ${END_KCONN:-n/a} | <= 1 |
| managed heap (MiB, after GC) | $(mibb "$COLD_HEAP") | $(mibb "$BASE_HEAP") | $(mibb "$END_HEAP") | (information) |
| threads | ${COLD_THREADS:-} | ${BASE_THREADS:-} | ${END_THREADS:-} | (information) |

Registered-file slots and handles, where the transport publishes them:

| instrument | baseline | end | rule |
|---|---:|---:|---|
$SLOT_ROWS
During the soak (samples every $SAMPLE_INTERVAL s, under load): RSS $(mib "${RSS_MIN:-0}")-$(mib "${RSS_MAX:-0}") MiB, at most $FD_MAX fds.

| s | RSS MiB | fds | threads | megapipe.connections | kestrel connections | managed heap MiB | 2xx so far |
|---:|---:|---:|---:|---:|---:|---:|---:|
$(awk -F, 'NR > 1 {printf "| %s | %.1f | %s | %s | %s | %s | %.1f | %s |\n", $1, $2 / 1024, $3, $4, $5, $6, $7 / 1048576, $8}' "$WORK/samples.csv")

## Graceful shutdown under load

$(sed -n '/^shutdown: SIGTERM/,/^RESULT/p' "$WORK/shutdown.txt" | grep -v '^RESULT' | sed 's/^/    /')

Server exit code $SERVER_RC, $EXIT_SECONDS s after SIGTERM (limit $EXIT_LIMIT s).

## Server log

$( [ "$UNEXPECTED" = 0 ] && echo "No unexpected line (expected: Information from Microsoft.Hosting.Lifetime and MegaPipe.Transport)." || { echo "$UNEXPECTED unexpected lines, the first 20:"; echo; head -20 "$WORK/server-unexpected.log" | sed 's/^/    /'; })
EOF
}

REPORT=$(report)
if [ "$RESULTS" != "-" ]; then
  mkdir -p "$(dirname "$RESULTS")"
  printf '%s\n' "$REPORT" >"$RESULTS"
fi
printf '%s\n' "$REPORT" >"$WORK/report.md"

echo
printf '%-30s %12s %12s %12s\n' figure cold baseline end
printf '%-30s %12s %12s %12s\n' "RSS MiB" "$(mib "$COLD_RSS")" "$(mib "$BASE_RSS")" "$(mib "$END_RSS")"
printf '%-30s %12s %12s %12s\n' "open fds" "$COLD_FDS" "$BASE_FDS" "$END_FDS"
printf '%-30s %12s %12s %12s\n' "megapipe.connections" "${COLD_MPCONN:-n/a}" "${BASE_MPCONN:-n/a}" "${END_MPCONN:-n/a}"
printf '%-30s %12s %12s %12s\n' "kestrel.active_connections" "${COLD_KCONN:-n/a}" "${BASE_KCONN:-n/a}" "${END_KCONN:-n/a}"
for k in $SLOT_KEYS; do
  var=$(echo "${k#megapipe.}" | tr 'a-z.' 'A-Z_')
  printf '%-30s %12s %12s %12s\n' "$k" "$(eval echo "\${COLD_$var:-n/a}")" "$(eval echo "\${BASE_$var:-n/a}")" "$(eval echo "\${END_$var:-n/a}")"
done
echo "wrk requests $WRK_TOTAL, resets ${RESETS_TOTAL:-?} (failures ${RESETS_FAILURES:-?}), drained in $SETTLE s, $TIMEOUT_ENDS connections ended by a Kestrel timeout"
echo "shutdown: $(printf '%s' "$SHUTDOWN_LINE" | sed 's/^RESULT //'), exit code $SERVER_RC after $EXIT_SECONDS s"
echo "server log: $UNEXPECTED unexpected lines"
echo "report: $( [ "$RESULTS" = "-" ] || echo "$RESULTS and ")$WORK/report.md"
echo "$VERDICT"
[ "$VERDICT" = PASS ]
