#!/usr/bin/env python3
"""The benchmark harness: Edgeward against NGINX, a stock-hyper proxy and Caddy, one run.

    bench/run.py            # full: 3 rounds x 10 s per row (~12 min)
    bench/run.py --quick    # 1 round x 3 s per row (< 2 min after the build)

Everything listens on 127.0.0.1. The load generator, the proxy and the upstream share
this machine's cores, so throughput alone says little; the primary figure is requests
per proxy CPU-second (utime+stime of every thread of the proxy's processes, read from
/proc before and after each run). Targets alternate inside each round, and the order
rotates between rounds, so drift on a shared box hits every target alike.

Writes target/bench/results.json and target/bench/results.md, and prints the table.
Missing tools (nginx + brotli module, wrk, h2load, caddy, openssl) are installed with
apt-get when running as root.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_CONF = os.path.join(os.path.dirname(ROOT), "shared", "peers", "nginx-proxy.conf")
HZ = os.sysconf("SC_CLK_TCK")
WORKERS = os.cpu_count() or 2

PORTS = {
    "upstream": 19000,
    "edgeward": 19080,  # h1 + h2c: Wasm round-robin, /native/ native round robin, /cached/
    "edgeward-tls": 19443,  # h1/h2/h3 over TLS
    "nginx": 19180,
    "nginx-h2c": 19181,
    "nginx-tls": 19182,
    "hyper": 19280,
    "caddy": 19444,
}

TOOLS = {  # command -> Debian package
    "nginx": "nginx",
    "wrk": "wrk",
    "h2load": "nghttp2-client",
    "caddy": "caddy",
    "openssl": "openssl",
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ensure_tools():
    missing = [pkg for cmd, pkg in TOOLS.items() if shutil.which(cmd) is None]
    if not os.path.exists("/usr/lib/nginx/modules/ngx_http_brotli_filter_module.so"):
        missing.append("libnginx-mod-http-brotli-filter")
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing tools; install: apt-get install -y {' '.join(missing)}")
    log(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)
    # Debian starts the packaged services on install; they would hold ports 80/443.
    for svc in ("nginx", "caddy"):
        subprocess.run(["service", svc, "stop"], stderr=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, check=False)


def build():
    log("building release binaries...")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "edgeward", "-p", "edgeward-bench"],
                   cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "edgeward-e2e", "--example", "h3load"],
                   cwd=ROOT, check=True)


def wait_port(port, proto="tcp", timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


class Procs:
    """Everything the harness starts, stopped on exit whatever happens."""

    def __init__(self):
        self.procs = []

    def start(self, args, out, **kw):
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kw)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def tree(pid):
    """pid and all its descendants (NGINX's workers, Caddy's children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def ticks(pids):
    total = 0
    for p in pids:
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/stat") as f:
                    # The command name may hold spaces; fields after ')' are fixed.
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def pss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def parse_wrk_latency(value):
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    if not m:
        return None
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n


def wrk(url, seconds, conns=64, headers=()):
    args = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency"]
    for h in headers:
        args += ["-H", h]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    return {
        "requests": reqs,
        "failed": errors + (int(non2xx.group(1)) if non2xx else 0),
        "p50_ms": parse_wrk_latency(pct.get("50", "")),
        "p99_ms": parse_wrk_latency(pct.get("99", "")),
    }


def h2load(url, seconds, conns=16, streams=16):
    out = subprocess.run(
        ["h2load", f"-c{conns}", f"-m{streams}", "-t1", "-D", str(seconds), url],
        capture_output=True, text=True, check=True).stdout
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out)
    return {
        "requests": int(m.group(2)),
        "failed": int(m.group(3)) + int(m.group(4)),
        "p50_ms": None,  # h2load reports mean/sd, not percentiles
        "mean_ms": parse_wrk_latency(mean.group(1)) if mean else None,
        "p99_ms": None,
    }


def h3load(port, seconds, proto):
    binary = os.path.join(ROOT, "target", "release", "examples", "h3load")
    out = subprocess.run(
        [binary, "--proto", proto, "--addr", f"127.0.0.1:{port}", "--path", "/bytes/1024",
         "-c", "4", "-m", "16", "-d", str(seconds), "-w", "1"],
        capture_output=True, text=True, check=True).stdout
    f = dict(re.findall(r"(\w+)=([\d.]+)", out))
    return {"requests": int(f["ok"]), "failed": int(f["errors"]),
            "p50_ms": float(f["p50_ms"]), "p99_ms": float(f["p99_ms"])}


def fixed_rate(url, seconds, rate):
    binary = os.path.join(ROOT, "target", "release", "bench-rate")
    out = subprocess.run([binary, url, str(rate), str(seconds), "16"],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    return {"requests": r["ok"], "failed": r["failed"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]}


def edgeward_config(work):
    return f"""\
listeners:
  - {{name: http, address: "127.0.0.1:{PORTS['edgeward']}"}}
  - name: tls
    address: "127.0.0.1:{PORTS['edgeward-tls']}"
    protocols: [h1, h2, h3]
    tls: {{certificates: [{{self-signed: [localhost]}}]}}
upstreams:
  bench: {{endpoints: ["127.0.0.1:{PORTS['upstream']}"]}}
  bench-native: {{endpoints: ["127.0.0.1:{PORTS['upstream']}"], balancer: native}}
cache:
  max-size: 256MiB
routes:
  - name: native
    match: {{path-prefix: /native}}
    upstream: bench-native
  - name: cached
    match: {{path-prefix: /cached/}}
    upstream: bench
    cache: {{}}
  - name: proxied
    upstream: bench
access-log: false
"""


def nginx_config(work, cert, key):
    with open(PEER_CONF) as f:
        conf = f.read()
    for k, v in {"@WORKERS@": str(WORKERS), "@DIR@": work, "@UPSTREAM@": f"127.0.0.1:{PORTS['upstream']}",
                 "@PORT@": str(PORTS["nginx"]), "@PORT_H2C@": str(PORTS["nginx-h2c"])}.items():
        conf = conf.replace(k, v)
    # The peer file has no TLS listener; h2/TLS rows add one to the same server block.
    tls = (f"listen 127.0.0.1:{PORTS['nginx-tls']} ssl http2 reuseport;\n"
           f"        ssl_certificate {cert};\n        ssl_certificate_key {key};\n        ")
    return conf.replace("location / {", tls + "location / {", 1)


def caddy_config(work):
    return f"""\
{{
\tadmin off
\tlocal_certs
\tskip_install_trust
\tauto_https disable_redirects
\tstorage file_system {work}/caddy-data
\tservers {{
\t\tprotocols h1 h2 h3
\t}}
}}
https://localhost:{PORTS['caddy']} {{
\ttls internal
\treverse_proxy 127.0.0.1:{PORTS['upstream']}
}}
"""


def start_all(work, procs):
    rel = os.path.join(ROOT, "target", "release")
    logs = open(os.path.join(work, "procs.log"), "w")
    pids = {}
    pids["upstream"] = procs.start([f"{rel}/bench-upstream", f"127.0.0.1:{PORTS['upstream']}"], logs).pid
    wait_port(PORTS["upstream"])

    with open(f"{work}/edgeward.yaml", "w") as f:
        f.write(edgeward_config(work))
    pids["edgeward"] = procs.start([f"{rel}/edgeward", "run", "--config", f"{work}/edgeward.yaml",
                                    "--log", "warn"], logs,
                                   env=dict(os.environ, EDGEWARD_WORKERS="auto")).pid
    wait_port(PORTS["edgeward"])
    wait_port(PORTS["edgeward-tls"])

    pids["hyper"] = procs.start([f"{rel}/bench-hyper-proxy", f"127.0.0.1:{PORTS['hyper']}",
                                 f"127.0.0.1:{PORTS['upstream']}", str(WORKERS)], logs).pid
    wait_port(PORTS["hyper"])

    # NGINX workers drop root: its directories must be theirs to write, or every cache
    # hit is a 500.
    ngx = os.path.join(work, "nginx")
    for d in ("tmp", "cache"):
        os.makedirs(os.path.join(ngx, d))
    cert, key = os.path.join(ngx, "cert.pem"), os.path.join(ngx, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-subj", "/CN=localhost", "-days", "2", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    with open(os.path.join(ngx, "nginx.conf"), "w") as f:
        f.write(nginx_config(ngx, cert, key))
    for dirpath, dirnames, filenames in os.walk(work):
        os.chmod(dirpath, 0o777)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o666)
    pids["nginx"] = procs.start(["nginx", "-p", ngx, "-c", os.path.join(ngx, "nginx.conf")], logs).pid
    wait_port(PORTS["nginx"])

    env = dict(os.environ, XDG_DATA_HOME=work, XDG_CONFIG_HOME=work, HOME=work)
    with open(f"{work}/Caddyfile", "w") as f:
        f.write(caddy_config(work))
    pids["caddy"] = procs.start(["caddy", "run", "--config", f"{work}/Caddyfile", "--adapter", "caddyfile"],
                                logs, env=env).pid
    wait_port(PORTS["caddy"])
    time.sleep(1)
    return pids


def rows(seconds, rate_seconds, rate):
    """(row, target, pid key, load function): each row's targets alternate in a round."""
    h1 = lambda port, path="/bytes/1024", hdr=(): (lambda: wrk(f"http://127.0.0.1:{port}{path}", seconds, headers=hdr))
    h2c = lambda port: (lambda: h2load(f"http://127.0.0.1:{port}/bytes/1024", seconds))
    h2s = lambda port: (lambda: h2load(f"https://127.0.0.1:{port}/bytes/1024", seconds))
    fr = lambda port: (lambda: fixed_rate(f"http://127.0.0.1:{port}/bytes/1024", rate_seconds, rate))
    br = ("Accept-Encoding: br",)
    return {
        "h1 1KiB": [("direct", "upstream", h1(PORTS["upstream"])),
                    ("edgeward", "edgeward", h1(PORTS["edgeward"])),
                    ("edgeward-native", "edgeward", h1(PORTS["edgeward"], "/native/bytes/1024")),
                    ("nginx", "nginx", h1(PORTS["nginx"])),
                    ("hyper", "hyper", h1(PORTS["hyper"]))],
        "h2c 1KiB": [("edgeward", "edgeward", h2c(PORTS["edgeward"])),
                     ("nginx", "nginx", h2c(PORTS["nginx-h2c"])),
                     ("hyper", "hyper", h2c(PORTS["hyper"]))],
        "h2/TLS 1KiB": [("edgeward", "edgeward", h2s(PORTS["edgeward-tls"])),
                        ("nginx", "nginx", h2s(PORTS["nginx-tls"]))],
        "cache hit 1KiB": [("edgeward", "edgeward", h1(PORTS["edgeward"], "/cached/bytes/1024")),
                           ("nginx", "nginx", h1(PORTS["nginx"], "/cached/bytes/1024"))],
        "cache hit 100KiB": [("edgeward", "edgeward", h1(PORTS["edgeward"], "/cached/bytes/102400")),
                             ("nginx", "nginx", h1(PORTS["nginx"], "/cached/bytes/102400"))],
        "cache hit 100KiB br": [("edgeward", "edgeward", h1(PORTS["edgeward"], "/cached/bytes/102400", br)),
                                ("nginx", "nginx", h1(PORTS["nginx"], "/cached/bytes/102400", br))],
        "h3 1KiB": [("edgeward", "edgeward", lambda: h3load(PORTS["edgeward-tls"], seconds, "h3")),
                    ("caddy", "caddy", lambda: h3load(PORTS["caddy"], seconds, "h3"))],
        f"h1 fixed {rate}/s": [("direct", "upstream", fr(PORTS["upstream"])),
                               ("edgeward", "edgeward", fr(PORTS["edgeward"])),
                               ("nginx", "nginx", fr(PORTS["nginx"])),
                               ("hyper", "hyper", fr(PORTS["hyper"]))],
    }


def measure(pids, table, rounds):
    results = {}
    for r in range(rounds):
        for row, targets in table.items():
            k = r % len(targets)
            for name, key, load in targets[k:] + targets[:k]:
                procs = tree(pids[key])
                before, t0 = ticks(procs), time.time()
                res = load()
                wall, cpu = time.time() - t0, (ticks(procs) - before) / HZ
                res.update(rps=res["requests"] / wall, cpu_s=cpu,
                           req_per_cpu_s=res["requests"] / cpu if cpu > 0 else None)
                results.setdefault(row, {}).setdefault(name, []).append(res)
                log(f"round {r + 1} {row:<22} {name:<16} rps {res['rps']:9.0f}  cpu-s {cpu:6.2f}  "
                    f"req/cpu-s {res['req_per_cpu_s'] or 0:9.0f}  failed {res['failed']}")
    return results


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def summarise(results, pss):
    out = []
    for row, targets in results.items():
        agg = {}
        for name, runs in targets.items():
            agg[name] = {k: median([r.get(k) for r in runs])
                         for k in ("rps", "req_per_cpu_s", "p50_ms", "p99_ms", "failed")}
            agg[name]["failed"] = sum(r["failed"] for r in runs)
        for name, a in agg.items():
            key = "edgeward" if name.startswith("edgeward") else name
            a["pss_mib"] = pss.get({"direct": "upstream"}.get(key, key))

            def ratio(other, field="req_per_cpu_s", a=a):
                o = agg.get(other, {}).get(field)
                return round(a[field] / o, 2) if a.get(field) and o else None
            if name.startswith("edgeward"):
                a["vs_nginx"] = ratio("nginx")
                a["vs_hyper"] = ratio("hyper")
                a["vs_caddy_rps"] = ratio("caddy", "rps")
                a["p99_vs_nginx"] = ratio("nginx", "p99_ms")
                if name == "edgeward" and "edgeward-native" in agg:
                    a["wasm_vs_native"] = ratio("edgeward-native")
            out.append({"row": row, "target": name, **a})
    return out


def markdown(summary, meta):
    head = ("| row | target | rps | req/CPU-s | p50 ms | p99 ms | failed | PSS MiB | vs NGINX | vs hyper "
            "| vs Caddy (rps) | p99 vs NGINX |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    fmt = lambda v, d=0: "" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))
    lines = [f"| {s['row']} | {s['target']} | {fmt(s['rps'])} | {fmt(s['req_per_cpu_s'])} | "
             f"{fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 2)} | {s['failed']} | {fmt(s['pss_mib'], 1)} | "
             f"{fmt(s.get('vs_nginx'), 2)} | {fmt(s.get('vs_hyper'), 2)} | {fmt(s.get('vs_caddy_rps'), 2)} | "
             f"{fmt(s.get('p99_vs_nginx'), 2)} |" for s in summary]
    return f"# Edgeward benchmark\n\n{meta}\n\n" + head + "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round, 3 s per row (under 2 minutes)")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--rate", type=int, default=2000, help="fixed-rate row, requests per second")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--only", help="comma-separated row name prefixes")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.seconds or (3 if args.quick else 10)
    ensure_tools()
    if not args.no_build:
        build()
    work = tempfile.mkdtemp(prefix="edgeward-bench-")
    os.chmod(work, 0o777)
    procs = Procs()
    try:
        pids = start_all(work, procs)
        table = rows(seconds, seconds, args.rate)
        if args.only:
            wanted = [w.strip() for w in args.only.split(",")]
            table = {k: v for k, v in table.items() if any(k.startswith(w) for w in wanted)}
        # Fill both caches, then warm every proxy's upstream pool, before measuring.
        for port, path in ((PORTS["edgeward"], "/cached/bytes/1024"), (PORTS["nginx"], "/cached/bytes/1024"),
                           (PORTS["edgeward"], "/cached/bytes/102400"), (PORTS["nginx"], "/cached/bytes/102400")):
            subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}{path}"], check=False)
        for url in ("19080/bytes/1024", "19080/native/bytes/1024", "19180/bytes/1024", "19280/bytes/1024"):
            wrk(f"http://127.0.0.1:{url}", 1)
        results = measure(pids, table, rounds)
        pss = {k: pss_kib(tree(p)) / 1024 for k, p in pids.items()}
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    meta = (f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, commit {commit}, {WORKERS} cores, "
            f"{rounds} round(s) x {seconds} s, medians; load {open('/proc/loadavg').read().split()[0]}. "
            f"Primary figure: requests per proxy CPU-second. PSS after load.")
    summary = summarise(results, pss)
    binary = os.path.join(ROOT, "target", "release", "edgeward")
    out_dir = os.path.join(ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    doc = {"meta": meta, "release_binary_bytes": os.path.getsize(binary), "rows": summary}
    dist = os.path.join(ROOT, "target", "dist", "edgeward")
    if os.path.exists(dist):
        doc["dist_binary_bytes"] = os.path.getsize(dist)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(doc, f, indent=2)
    md = markdown(summary, meta)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md)
    print(md)
    print(f"written: {out_dir}/results.json, {out_dir}/results.md")


if __name__ == "__main__":
    main()
