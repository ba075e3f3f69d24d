#!/usr/bin/env bash
# Plain reverse-proxy throughput: the upstream hit directly, through Edgeward, and
# through NGINX (same upstream, same worker count, same run), HTTP/1.1 with wrk and
# h2c with h2load. Usage: bench/proxy.sh   (SECONDS_PER_RUN=10 CONNS=64 by default)
set -euo pipefail
source "$(dirname "$0")/common.sh"
need wrk wrk; need h2load nghttp2-client
build_release
start_upstream 19000
cat >"$WORK/edgeward.yaml" <<YAML
listeners: [{name: http, address: "127.0.0.1:19080"}]
upstreams: {bench: {endpoints: ["127.0.0.1:19000"]}}
routes: [{upstream: bench}]
YAML
start_edgeward "$WORK/edgeward.yaml" 19080
start_nginx 19000 19180 19181

echo "HTTP/1.1, 1 KiB responses, ${CONNS:-64} connections, ${SECONDS_PER_RUN:-10}s each, $WORKERS workers"
wrk_run "direct upstream" http://127.0.0.1:19000/bytes/1024 direct
wrk_run "edgeward" http://127.0.0.1:19080/bytes/1024 edge
wrk_run "nginx" http://127.0.0.1:19180/bytes/1024 nginx
echo "edgeward/nginx $(ratio "$RPS_edge" "$RPS_nginx")   edgeward/direct $(ratio "$RPS_edge" "$RPS_direct")"

echo "h2c, 1 KiB responses, 16 connections x 16 streams"
for t in "edgeward 19080" "nginx 19181"; do
  set -- $t
  out=$(h2load -c16 -m16 -t2 -D "${SECONDS_PER_RUN:-10}" "http://127.0.0.1:$2/bytes/1024" 2>&1)
  printf '%-28s %s\n' "$1" "$(grep -E '^finished in' <<<"$out")"
done
