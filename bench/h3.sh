#!/usr/bin/env bash
# HTTP/3 benchmark: Edgeward h3 vs Edgeward h2 (same gateway) vs Caddy h3/h2
# (reverse_proxy to the same upstream), all on this machine in one run.
#
#   bench/h3.sh                 # defaults: 4 connections × 16 streams, 10 s each
#   CONNS=8 STREAMS=8 DURATION=20 bench/h3.sh
#
# Needs: caddy (Debian package `caddy`). Builds edgeward and the h3load example
# in release mode. Prints one line per run and the ratios at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
CONNS=${CONNS:-4}
STREAMS=${STREAMS:-16}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-2}
UP_PORT=${UP_PORT:-18480}
EW_PORT=${EW_PORT:-19443}
CADDY_PORT=${CADDY_PORT:-19444}

command -v caddy >/dev/null || { echo "caddy not found: apt-get install caddy" >&2; exit 1; }

cargo build --release -q -p edgeward --bin edgeward
cargo build --release -q -p edgeward-e2e --example h3load
EDGEWARD=target/release/edgeward
LOAD=target/release/examples/h3load

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

wait_port() { # tcp port
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    exit 1
}

"$LOAD" --serve "127.0.0.1:$UP_PORT" & pids+=($!)
wait_port "$UP_PORT"

cat >"$work/edgeward.yaml" <<EOF
listeners:
  - name: bench
    address: 127.0.0.1:$EW_PORT
    protocols: [h1, h2, h3]
    tls:
      certificates:
        - self-signed: [localhost]
upstreams:
  up:
    endpoints: [127.0.0.1:$UP_PORT]
routes:
  - match: { path-prefix: / }
    upstream: up
EOF
"$EDGEWARD" run --config "$work/edgeward.yaml" --log warn >"$work/edgeward.out" 2>&1 & pids+=($!)
wait_port "$EW_PORT"

# Caddy as shipped: h1/h2/h3 on by default since 2.6, internal CA, logs off.
cat >"$work/Caddyfile" <<EOF
{
	admin off
	local_certs
	skip_install_trust
	auto_https disable_redirects
	storage file_system $work/caddy-data
	servers {
		protocols h1 h2 h3
	}
}
https://localhost:$CADDY_PORT {
	tls internal
	reverse_proxy 127.0.0.1:$UP_PORT
}
EOF
XDG_DATA_HOME="$work" XDG_CONFIG_HOME="$work" HOME="$work" \
    caddy run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.out" 2>&1 & pids+=($!)
wait_port "$CADDY_PORT"
sleep 1

run() { # name proto port
    "$LOAD" --proto "$2" --addr "127.0.0.1:$3" --path /bench -c "$CONNS" -m "$STREAMS" -d "$DURATION" -w "$WARMUP"
}
field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "# $(date -u +%FT%TZ) $(nproc) cores shared with other jobs, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $CONNS conns x $STREAMS streams, ${DURATION}s per run after ${WARMUP}s warm-up, $ROUNDS rounds"
echo "# caddy $(caddy version | cut -d' ' -f1), edgeward $(git rev-parse --short HEAD)"
# Rounds interleave the four runs so a noisy neighbour hits all of them alike.
for round in $(seq "$ROUNDS"); do
    ew3=$(run edgeward-h3 h3 "$EW_PORT"); echo "round $round edgeward $ew3"
    ew2=$(run edgeward-h2 h2 "$EW_PORT"); echo "round $round edgeward $ew2"
    c3=$(run caddy-h3 h3 "$CADDY_PORT"); echo "round $round caddy    $c3"
    c2=$(run caddy-h2 h2 "$CADDY_PORT"); echo "round $round caddy    $c2"
    echo "round $round ratios: edgeward-h3/caddy-h3 $(ratio "$(field rps "$ew3")" "$(field rps "$c3")")x (target >= 1.5x)," \
        "edgeward-h3/edgeward-h2 $(ratio "$(field rps "$ew3")" "$(field rps "$ew2")")x," \
        "edgeward-h2/caddy-h2 $(ratio "$(field rps "$ew2")" "$(field rps "$c2")")x;" \
        "p99 ms ew-h3 $(field p99_ms "$ew3"), ew-h2 $(field p99_ms "$ew2"), caddy-h3 $(field p99_ms "$c3"), caddy-h2 $(field p99_ms "$c2")"
done
