# Shared by the bench scripts: build, start the upstream, Edgeward and the NGINX
# peer (configured as ../shared/peers/nginx-proxy.conf), and parse wrk output.
# Everything listens on 127.0.0.1 and is stopped on exit.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKERS=${WORKERS:-$(nproc)}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "missing $1: apt-get install -y $2" >&2; exit 1; }; }

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2; exit 1
}

build_release() {
  (cd "$ROOT" && cargo build --release -q -p edgeward -p edgeward-bench)
  EDGEWARD="$ROOT/target/release/edgeward"
  UPSTREAM_BIN="$ROOT/target/release/bench-upstream"
}

start_upstream() { # port
  "$UPSTREAM_BIN" "127.0.0.1:$1" >/dev/null & PIDS+=($!)
  wait_port "$1"
}

start_edgeward() { # config-file port
  "$EDGEWARD" run --config "$1" >"$WORK/edgeward.out" 2>"$WORK/edgeward.err" & PIDS+=($!)
  wait_port "$2"
}

start_nginx() { # upstream-port port port-h2c
  need nginx "nginx libnginx-mod-http-brotli-filter"
  local conf="$ROOT/../shared/peers/nginx-proxy.conf"
  mkdir -p "$WORK/nginx/tmp" "$WORK/nginx/cache"
  sed -e "s|@WORKERS@|$WORKERS|g" -e "s|@DIR@|$WORK/nginx|g" -e "s|@UPSTREAM@|127.0.0.1:$1|g" \
      -e "s|@PORT@|$2|g" -e "s|@PORT_H2C@|$3|g" "$conf" >"$WORK/nginx/nginx.conf"
  nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" & PIDS+=($!)
  wait_port "$2"
}

# wrk_run label url → prints "label rps p99"
wrk_run() {
  local out rps p99
  out=$(wrk -t2 -c"${CONNS:-64}" -d"${SECONDS_PER_RUN:-10}s" --latency "$2")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-28s %12s req/s   p99 %s\n' "$1" "$rps" "$p99"
  eval "RPS_$3=$rps"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
