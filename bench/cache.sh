#!/usr/bin/env bash
# Cache-hit throughput: Edgeward against NGINX proxy_cache (../shared/peers/nginx-proxy.conf,
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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN_PORT=${ORIGIN_PORT:-$(free_port)}
NGINX_PORT=${NGINX_PORT:-$(free_port)}
NGINX_H2C=${NGINX_H2C:-$(free_port)}
EW_PORT=${EW_PORT:-$(free_port)}
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
# NGINX workers drop to an unprivileged user when started as root: let them
# read the documents and write the peer's cache.
chmod 755 "$WORK"
chmod -R a+rX "$WORK/origin"
chmod -R a+rwX "$WORK/peer"
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
    -e "s#@PORT@#$NGINX_PORT#g" -e "s#@PORT_H2C@#$NGINX_H2C#g" "$ROOT/../shared/peers/nginx-proxy.conf" > "$WORK/peer/nginx.conf"
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

# One wrk run; prints requests/s. Refuses to report a run with errors or with a
# peer that is not answering from its cache.
rps() { # name, url, accept-encoding
    local name=$1 url=$2 ae=$3 out head
    # Fill the cache (and the encoded variant) before measuring.
    for _ in 1 2 3; do curl -s -o /dev/null -H "Accept-Encoding: $ae" "$url"; done
    head=$(curl -s -o /dev/null -D - -H "Accept-Encoding: $ae" "$url" | tr -d '\r' | tr 'A-Z' 'a-z')
    if ! grep -q '^x-cache: hit' <<<"$head"; then
        echo "$name is not answering $url from its cache:" >&2; echo "$head" >&2; exit 1
    fi
    if [ "$ae" = br ] && ! grep -q '^content-encoding: br' <<<"$head"; then
        echo "$name did not send br for $url:" >&2; echo "$head" >&2; exit 1
    fi
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -H "Accept-Encoding: $ae" "$url")
    if grep -qE 'Non-2xx|Socket errors: connect [1-9]|read [1-9]|write [1-9]' <<<"$out"; then
        echo "$name: errors during the run:" >&2; echo "$out" >&2; exit 1
    fi
    # Timeouts (a peer too slow for wrk's 2 s limit) are reported, not fatal.
    grep -q 'Socket errors' <<<"$out" && echo "  ($name $url: $(grep 'Socket errors' <<<"$out" | xargs))" >&2
    awk '/Requests\/sec/ {print $2}' <<<"$out"
}

echo "== cache hits: requests/s (wrk -t$THREADS -c$CONNS -d$DURATION; $WORKERS workers each; $(nproc) cores shared with wrk)"
printf "%-10s %-9s %12s %12s %8s\n" body encoding edgeward nginx ratio
for body in 1k 100k; do
    for ae in identity br; do
        ew=$(rps edgeward "http://127.0.0.1:$EW_PORT/cached/$body.json" "$ae")
        ng=$(rps nginx "http://127.0.0.1:$NGINX_PORT/cached/$body.json" "$ae")
        ratio=$(python3 -c "print(f'{$ew/$ng:.2f}x')")
        printf "%-10s %-9s %12s %12s %8s\n" "$body" "$ae" "$ew" "$ng" "$ratio"
    done
done

echo
echo "== compression throughput (release, one core)"
"$ROOT/target/release/examples/compress-bench"
