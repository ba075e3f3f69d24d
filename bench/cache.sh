#!/usr/bin/env bash
# Cache-hit throughput: Edgeward against NGINX proxy_cache (bench/nginx-proxy.conf,
# the shared reference peer), same origin, same machine, same run; then
# compression MB/s per encoder and level. Prints ratios; absolute numbers
# depend on the machine and its load.
#
# Needs: nginx, libnginx-mod-http-brotli-filter, wrk, curl, python3.
# Knobs: DURATION (10s), CONNS (64), THREADS (wrk threads, 2), WORKERS (nproc).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-$(nproc)}
ORIGIN_PORT=${ORIGIN_PORT:-18980}
NGINX_PORT=${NGINX_PORT:-18981}
NGINX_H2C=${NGINX_H2C:-18983}
EW_PORT=${EW_PORT:-18982}
WORK=$(mktemp -d /tmp/edgeward-cache-bench.XXXXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in nginx wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nginx libnginx-mod-http-brotli-filter wrk curl python3)"; exit 2; }
done

echo "building release binaries..." >&2
(cd "$ROOT" && cargo build --release -q -p edgeward --bin edgeward --example compress-bench)
BIN="$ROOT/target/release/edgeward"

# The origin: NGINX serving two static JSON documents, cacheable for 10 minutes.
mkdir -p "$WORK/origin/www/cached" "$WORK/origin/tmp" "$WORK/peer/tmp" "$WORK/peer/cache"
python3 - "$WORK/origin/www/cached" <<'PY'
import json, sys
def doc(size):
    items, i = [], 0
    while len(json.dumps(items)) < size:
        x = (i * 2654435761) % 100000
        items.append({"id": i, "sku": f"EW-{x:05}", "name": f"Trail pack {x % 977}", "price": x % 300, "stock": x % 41})
        i += 1
    s = json.dumps(items)
    return (s[: size - 1] + " ")[:size] if len(s) > size else s.ljust(size)
for name, size in (("1k.json", 1024), ("100k.json", 100 * 1024)):
    open(f"{sys.argv[1]}/{name}", "w").write(doc(size))
PY
cat > "$WORK/origin/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $WORK/origin/nginx.pid;
error_log $WORK/origin/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/origin/tmp; proxy_temp_path $WORK/origin/tmp;
    fastcgi_temp_path $WORK/origin/tmp; uwsgi_temp_path $WORK/origin/tmp; scgi_temp_path $WORK/origin/tmp;
    types { application/json json; }
    server {
        listen 127.0.0.1:$ORIGIN_PORT;
        root $WORK/origin/www;
        add_header Cache-Control "public, max-age=600";
    }
}
CONF
nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" & PIDS+=($!)

# The NGINX peer, configured exactly as the shared reference file.
sed -e "s#@WORKERS@#$WORKERS#g" -e "s#@DIR@#$WORK/peer#g" -e "s#@UPSTREAM@#127.0.0.1:$ORIGIN_PORT#g" \
    -e "s#@PORT@#$NGINX_PORT#g" -e "s#@PORT_H2C@#$NGINX_H2C#g" "$ROOT/bench/nginx-proxy.conf" > "$WORK/peer/nginx.conf"
nginx -p "$WORK/peer" -c "$WORK/peer/nginx.conf" & PIDS+=($!)

# Edgeward with the same cache bound and compression levels as the peer's uncached path.
cat > "$WORK/edgeward.yaml" <<CONF
listeners:
  - name: http
    address: 127.0.0.1:$EW_PORT
upstreams:
  origin:
    endpoints: ["127.0.0.1:$ORIGIN_PORT"]
cache: { max-size: 256MiB }
compression: { min-size: 1KiB }
routes:
  - name: cached
    match: { path-prefix: /cached }
    upstream: origin
    cache: {}
CONF
RUST_LOG=warn TOKIO_WORKER_THREADS=$WORKERS "$BIN" run --config "$WORK/edgeward.yaml" > "$WORK/edgeward.out" 2>&1 & PIDS+=($!)

for port in $ORIGIN_PORT $NGINX_PORT $EW_PORT; do
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/cached/1k.json" && break
        sleep 0.1
    done
done

rps() { # url, accept-encoding
    local url=$1 ae=$2
    # Fill the cache (and the encoded variant) before measuring.
    for _ in 1 2 3; do curl -s -o /dev/null -H "Accept-Encoding: $ae" "$url"; done
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -H "Accept-Encoding: $ae" "$url" \
        | awk '/Requests\/sec/ {print $2}'
}

echo "== cache hits: requests/s (wrk -t$THREADS -c$CONNS -d$DURATION; $WORKERS workers each; $(nproc) cores shared with wrk)"
printf "%-10s %-9s %12s %12s %8s\n" body encoding edgeward nginx ratio
for body in 1k 100k; do
    for ae in identity br; do
        ew=$(rps "http://127.0.0.1:$EW_PORT/cached/$body.json" "$ae")
        ng=$(rps "http://127.0.0.1:$NGINX_PORT/cached/$body.json" "$ae")
        ratio=$(python3 -c "print(f'{$ew/$ng:.2f}x')")
        printf "%-10s %-9s %12s %12s %8s\n" "$body" "$ae" "$ew" "$ng" "$ratio"
    done
done
echo "(check) edgeward: $(curl -s -o /dev/null -D - -H 'Accept-Encoding: br' http://127.0.0.1:$EW_PORT/cached/100k.json | tr -d '\r' | grep -iE '^(x-cache|content-encoding):' | tr '\n' ' ')"
echo "(check) nginx:    $(curl -s -o /dev/null -D - -H 'Accept-Encoding: br' http://127.0.0.1:$NGINX_PORT/cached/100k.json | tr -d '\r' | grep -iE '^(x-cache|content-encoding):' | tr '\n' ' ')"

echo
echo "== compression throughput (release, one core)"
"$ROOT/target/release/examples/compress-bench"
