//! Fixed-rate HTTP/1.1 load for latency percentiles: `bench-rate URL RATE SECONDS CONNS`.
//!
//! wrk measures throughput with a closed loop, where a slow response delays the next
//! request and hides its own cost. Here each request has an intended send time on a
//! fixed schedule, and latency is counted from that time (as wrk2 does), so a stall
//! shows up in every request queued behind it. Prints one JSON line.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url: http::Uri = args
        .next()
        .ok_or("usage: bench-rate URL RATE SECONDS CONNS")?
        .parse()?;
    let rate: f64 = args.next().ok_or("RATE")?.parse()?;
    let seconds: f64 = args.next().ok_or("SECONDS")?.parse()?;
    let conns: usize = args.next().map_or(Ok(8), |c| c.parse())?;
    let authority = url.authority().ok_or("URL needs host:port")?.to_string();
    let total = (rate * seconds) as usize;
    // Connection c sends requests c, c+conns, c+2·conns, …: together one fixed schedule.
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (url, authority) = (url.clone(), authority.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&authority).await?;
            stream.set_nodelay(true)?;
            let (mut send, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut lat = Vec::new();
            let mut failed = 0usize;
            for i in (c..total).step_by(conns) {
                let due = start + interval * i as u32;
                tokio::time::sleep_until(due.into()).await;
                let req = http::Request::get(url.clone())
                    .header(http::header::HOST, authority.as_str())
                    .body(Empty::<bytes::Bytes>::new())?;
                let ok = match send.send_request(req).await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        ok && resp.into_body().collect().await.is_ok()
                    }
                    Err(_) => false,
                };
                if ok {
                    lat.push(due.elapsed().as_micros() as u64);
                } else {
                    failed += 1;
                    if send.ready().await.is_err() {
                        break;
                    }
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((lat, failed))
        }));
    }
    let (mut lat, mut failed) = (Vec::new(), 0usize);
    for t in tasks {
        match t.await? {
            Ok((l, f)) => {
                lat.extend(l);
                failed += f;
            }
            Err(e) => return Err(format!("connection failed: {e}").into()),
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1000.0
    };
    println!(
        "{{\"sent\":{},\"ok\":{},\"failed\":{},\"rate\":{},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3}}}",
        lat.len() + failed,
        lat.len(),
        failed,
        rate,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999)
    );
    Ok(())
}
