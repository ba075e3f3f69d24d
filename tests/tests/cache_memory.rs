//! The key-spray attack (issue 13): many tiny distinct cacheable entries must
//! not grow the gateway's memory beyond what `cache.max-size` allows, and the
//! memory a full purge frees must be there for the next fill.
//!
//! Both ends are raw sockets (a pipelining HTTP/1.1 client, an origin that
//! answers every request with the same tiny response) so that the gateway is
//! the only thing doing real work and 100,000 requests stay quick.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edgeward_e2e::Gateway;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MIB: u64 = 1 << 20;
const MAX_SIZE: u64 = 16 * MIB;
/// What RSS may grow by besides 2× `max-size`: the moka, index and
/// runtime structures a warmed-up gateway still grows while it fills
/// (allocator fragmentation of evicted entries included).
const FIXED_OVERHEAD: u64 = 16 * MIB;
/// Spray connections (`SPRAY_CONNS` overrides it), and pipelined requests
/// in flight on each. A miss waits for the origin, so the spray is bound by
/// round trips more than by the gateway's CPU: 64 connections ran 100,000
/// misses in ~95 s on a loaded 2-core machine where 8 took ~235 s. Many
/// connections are also the stronger attack: they once made stores queue up
/// behind clients that had their answers (+470 MiB RSS).
const CONNS: usize = 64;
const DEPTH: usize = 64;

fn conns() -> usize {
    std::env::var("SPRAY_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CONNS)
}

/// An origin that answers every request on a connection with one tiny
/// cacheable response, without parsing more than the end of each head.
async fn tiny_origin() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = socket.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                const RESP: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
                    cache-control: max-age=600\r\ncontent-length: 10\r\n\r\n0123456789";
                let mut buf = vec![0u8; 64 * 1024];
                let mut pending: Vec<u8> = Vec::new();
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    let mut out = Vec::new();
                    while let Some(end) = find(&pending, b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        out.extend_from_slice(RESP);
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    if !out.is_empty() && s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, served)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Requests `/spray?k={from..to}` over `conns` connections, each keeping up
/// to `depth` pipelined requests in flight; every answer must be a 200.
async fn spray(addr: std::net::SocketAddr, from: usize, to: usize, conns: usize, depth: usize) {
    let next = Arc::new(AtomicUsize::new(from));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let mut buf = vec![0u8; 256 * 1024];
            let mut seen: Vec<u8> = Vec::new();
            loop {
                let mut batch = Vec::new();
                let mut sent = 0;
                while sent < depth {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= to {
                        break;
                    }
                    batch.extend_from_slice(
                        format!("GET /spray?k={i} HTTP/1.1\r\nhost: spray\r\n\r\n").as_bytes(),
                    );
                    sent += 1;
                }
                if sent == 0 {
                    return;
                }
                s.write_all(&batch).await.expect("write requests");
                // Each answer is a head and a 10-byte body; count the heads.
                let mut got = 0;
                while got < sent {
                    let n = s.read(&mut buf).await.expect("read answers");
                    assert!(n > 0, "the gateway closed a spray connection");
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(at) = find(&seen, b"HTTP/1.1 ") {
                        let Some(end) = find(&seen[at..], b"\r\n\r\n") else {
                            break;
                        };
                        let status = &seen[at + 9..at + 12];
                        assert_eq!(status, b"200", "{}", String::from_utf8_lossy(&seen));
                        seen.drain(..at + end + 4);
                        got += 1;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// CPU seconds (user + system) process `pid` has used, from /proc (in
/// clock ticks of 1/100 s, the kernel's `USER_HZ` on Linux).
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
    (f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)) as f64 / 100.0
}

async fn metric(gw: &Gateway, name: &str) -> u64 {
    let m = gw.metrics_text().await;
    m.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

async fn purge_all(gw: &Gateway) {
    let r = gw
        .admin_request(http::Method::POST, "/admin/cache/purge", r#"{"all":true}"#)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_entry_spray_stays_within_the_memory_bound_and_purge_returns_it() {
    let (origin, served) = tiny_origin().await;
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n\
         cache: {{max-size: 16MiB}}\n\
         upstreams:\n  o:\n    endpoints: [\"{origin}\"]\nroutes:\n  - upstream: o\n    cache: {{}}\n",
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let addr = gw.addr("http");
    // Warm up: connections, pools and the runtime's own structures.
    spray(addr, 0, 5_000, conns(), DEPTH).await;
    purge_all(&gw).await;
    let start = gw.rss_kib() * 1024;
    let t = Instant::now();
    let pid = gw.pid().to_string();
    let cpu = (cpu_secs(&pid), cpu_secs("self"));
    spray(addr, 10_000, 110_000, conns(), DEPTH).await;
    let took = t.elapsed();
    // Where the time went: the gateway's CPU, and this process's (the
    // clients and the origin).
    let cpu = (cpu_secs(&pid) - cpu.0, cpu_secs("self") - cpu.1);
    let filled = gw.rss_kib() * 1024;
    let bytes = metric(&gw, "edgeward_cache_bytes").await;
    let entries = metric(&gw, "edgeward_cache_entries").await;
    purge_all(&gw).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let purged = gw.rss_kib() * 1024;
    assert_eq!(metric(&gw, "edgeward_cache_entries").await, 0);
    // Fill again with new keys, as much as the cache holds: the memory the
    // purge freed is reused, not added to.
    spray(
        addr,
        200_000,
        200_000 + 2 * entries as usize,
        conns(),
        DEPTH,
    )
    .await;
    let refilled = gw.rss_kib() * 1024;
    let kib = |b: u64| b / 1024;
    eprintln!(
        "100000 tiny entries in {took:?} (gateway CPU {:.1} s, test process CPU {:.1} s; \
         origin served {}): RSS start {} KiB, filled {} KiB \
         (+{} KiB), after purge {} KiB, refilled {} KiB; charged {} KiB for {entries} entries \
         ({} B each, {} B of RSS growth each)",
        cpu.0,
        cpu.1,
        served.load(Ordering::Relaxed),
        kib(start),
        kib(filled),
        kib(filled.saturating_sub(start)),
        kib(purged),
        kib(refilled),
        kib(bytes),
        bytes / entries.max(1),
        filled.saturating_sub(start) / entries.max(1),
    );
    assert!(bytes <= MAX_SIZE, "{bytes} bytes charged over max-size");
    let bound = 2 * MAX_SIZE + FIXED_OVERHEAD;
    assert!(
        filled.saturating_sub(start) <= bound,
        "RSS grew by {} KiB, over 2 × max-size + {} KiB",
        kib(filled - start),
        kib(FIXED_OVERHEAD)
    );
    assert!(
        refilled <= filled + 4 * MIB,
        "refilling after a purge grew RSS from {} to {} KiB: the purge did not free it",
        kib(filled),
        kib(refilled)
    );
}
