#!/usr/bin/env bash
# Requests per proxy CPU-second (utime+stime of every thread of the proxy, from
# /proc), HTTP/1.1 1 KiB through wrk -t1 -c64: the upstream directly, Edgeward
# and the NGINX peer, alternating, two rounds. Needs a release build
# (`cargo build --release -p edgeward -p edgeward-bench`), wrk and nginx.
# Usage: bench/cpu.sh   (BALANCER=native for the native round robin; SECONDS_PER_RUN=8)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/common.sh"
EDGEWARD="$ROOT/target/release/edgeward"; UPSTREAM_BIN="$ROOT/target/release/bench-upstream"
chmod 755 "$WORK"
start_upstream 19000
cat >"$WORK/edgeward.yaml" <<YAML
listeners: [{name: http, address: "127.0.0.1:19080"}]
upstreams:
  bench: {endpoints: ["127.0.0.1:19000"], balancer: ${BALANCER:-round-robin}}
routes: [{upstream: bench}]
YAML
start_edgeward "$WORK/edgeward.yaml" 19080
EPID=${PIDS[-1]}
start_nginx 19000 19180 19181
chmod -R a+rwx "$WORK/nginx"
ticks() { # pids... → total utime+stime ticks of them and their threads
  local t=0; for p in "$@"; do for s in /proc/$p/task/*/stat; do t=$((t + $(awk '{print $14+$15}' "$s" 2>/dev/null || echo 0))); done; done; echo $t; }
nginx_pids() { pgrep -f "nginx -p $WORK/nginx" | tr '\n' ' '; pgrep -P "$(pgrep -f "nginx -p $WORK/nginx" | head -1)" | tr '\n' ' '; }
UPID=${PIDS[0]}
HZ=$(getconf CLK_TCK)
run() { # label url pids...
  local label=$1 url=$2; shift 2
  local before after out rps
  before=$(ticks "$@")
  out=$(wrk -t1 -c64 -d"${SECONDS_PER_RUN:-8}s" --latency "$url")
  after=$(ticks "$@")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(awk -v a="$after" -v b="$before" -v hz="$HZ" 'BEGIN{print (a-b)/hz}')
  printf '%-22s rps %10s  cpu-s %6s  req/cpu-s %8.0f  p99 %s\n' "$label" "$rps" "$cpu" "$(awk -v r="$reqs" -v c="$cpu" 'BEGIN{print r/c}')" "$(awk '$1=="99%" {print $2}' <<<"$out")"
}
for round in 1 2; do
  run direct http://127.0.0.1:19000/bytes/1024 $UPID
  run edgeward http://127.0.0.1:19080/bytes/1024 $EPID
  run nginx http://127.0.0.1:19180/bytes/1024 $(nginx_pids)
done
