#!/usr/bin/env bash
# Whole-gateway throughput, Wasm-routed against native, and RSS per loaded
# plugin. Not a test: it measures. Needs nginx (the upstream) and wrk.
#
#   cargo build --release -p edgeward
#   bash gateway/benches/wasm_throughput.sh [seconds-per-run] [rounds]
#
# Runs alternate native / Wasm so drift on a shared machine hits both alike,
# and prints requests/s per run and the Wasm/native ratio per balancer.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${EDGEWARD_BIN:-target/release/edgeward}
SECS=${1:-10}
ROUNDS=${2:-3}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
export EDGEWARD_CACHE_DIR="$WORK/cache"

# Upstream: nginx answering a small body on four ports (four endpoints).
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:19501; listen 127.0.0.1:19502;
    listen 127.0.0.1:19503; listen 127.0.0.1:19504;
    location / { return 200 "ok\n"; }
  }
}
NGINX
nginx -c "$WORK/nginx.conf" -p "$WORK" &
sleep 0.5

config() { # $1 = balancer
  cat <<YAML
listeners:
  - name: http
    address: 127.0.0.1:19400
admin:
  address: 127.0.0.1:19401
plugins:
  $1:
    builtin: $1
upstreams:
  svc:
    balancer: $1
    endpoints: [127.0.0.1:19501, 127.0.0.1:19502, 127.0.0.1:19503, 127.0.0.1:19504]
routes:
  - upstream: svc
YAML
}

rps() { # $1 = balancer → requests/s
  if [ "$1" = native ]; then config native | sed '/^plugins:/,/^upstreams:/{/^upstreams:/!d}' > "$WORK/gw.yaml"
  else config "$1" > "$WORK/gw.yaml"; fi
  "$BIN" run --config "$WORK/gw.yaml" --log warn > "$WORK/gw.out" 2> "$WORK/gw.err" &
  local gw=$!
  for _ in $(seq 100); do grep -q '^ready' "$WORK/gw.out" 2>/dev/null && break; sleep 0.05; done
  wrk -t2 -c32 -d1s http://127.0.0.1:19400/ > /dev/null   # warm pools and instances
  local out
  out=$(wrk -t2 -c32 -d"${SECS}s" http://127.0.0.1:19400/)
  kill "$gw"; wait "$gw" 2>/dev/null || true
  echo "$out" | awk '/Requests\/sec/ {print $2}'
}

rss_kib() { # $1 = plugin count → RSS (KiB) of a gateway with that many loaded routers
  {
    echo "listeners: [{address: \"127.0.0.1:19400\"}]"
    [ "$1" -gt 0 ] && echo "plugins:"
    for i in $(seq 1 "$1"); do echo "  p$i: {builtin: round-robin}"; done
    echo "upstreams:"
    echo "  base: {balancer: native, endpoints: [\"127.0.0.1:19501\"]}"
    for i in $(seq 1 "$1"); do echo "  u$i: {balancer: p$i, endpoints: [\"127.0.0.1:19501\"]}"; done
    echo "routes:"
    echo "  - upstream: base"
  } > "$WORK/rss.yaml"
  "$BIN" run --config "$WORK/rss.yaml" --log warn > "$WORK/rss.out" 2> "$WORK/rss.err" &
  local gw=$!
  for _ in $(seq 200); do grep -q '^ready' "$WORK/rss.out" 2>/dev/null && break; sleep 0.05; done
  sleep 0.5
  awk '/VmRSS/ {print $2}' "/proc/$gw/status"
  kill "$gw"; wait "$gw" 2>/dev/null || true
}

if [ "${ONLY_RSS:-}" = "" ]; then
echo "# throughput (wrk -t2 -c32 -d${SECS}s, 4 nginx endpoints), requests/s"
for b in round-robin least-connections; do
  for r in $(seq "$ROUNDS"); do
    n=$(rps native); w=$(rps "$b")
    echo "$b round $r: native $n  wasm $w  ratio $(echo "scale=4; $w / $n" | bc)"
  done
done

fi

echo "# RSS with N loaded router plugins (one warm instance each)"
rss_kib 0 > /dev/null   # fills the compile cache
# The first plugin brings the engine, the epoch ticker, the cache worker and
# allocator arenas; the slope between larger counts is the cost of a plugin.
base=$(rss_kib 0); echo "0 plugins: $base KiB"
for round in 1 2; do
  a=$(rss_kib 20); b=$(rss_kib 80)
  echo "round $round: 20 plugins $a KiB, 80 plugins $b KiB → $(( (b - a) / 60 )) KiB per plugin"
done
