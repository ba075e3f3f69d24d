//! Active health checks: one task per endpoint, off the request path, that
//! GETs the check path (or opens a TCP connection) every interval, jittered so
//! endpoints are not probed in lock step. `unhealthy-threshold` failures in a
//! row take an endpoint out; `healthy-threshold` passes bring it back and end
//! any passive ejection (Envoy's default). Each change of state is logged once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Uri, header};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::task::AbortHandle;

use super::stats::EndpointStats;
use crate::config::UpstreamProtocol;
use crate::config::resilience::{HealthCheck, HealthKind};

type CheckClient = Client<HttpConnector, Empty<Bytes>>;

/// The check tasks of one upstream, by endpoint address. Aborted when the
/// endpoint leaves the configuration, the check changes, or this drops.
#[derive(Default)]
pub struct Checks {
    settings: Option<(HealthCheck, UpstreamProtocol)>,
    tasks: HashMap<String, AbortHandle>,
}

impl Drop for Checks {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Checks {
    /// Brings the tasks in line with `check` for `endpoints`. Needs a Tokio
    /// runtime to start tasks; without one (unit tests) nothing is checked.
    pub fn sync(
        &mut self,
        upstream: &str,
        check: Option<&HealthCheck>,
        protocol: UpstreamProtocol,
        endpoints: &[(String, Arc<EndpointStats>)],
    ) {
        let wanted = check.map(|c| (c.clone(), protocol));
        if wanted != self.settings {
            self.stop();
            // A check that goes away must not leave an endpoint out for good.
            for (_, stats) in endpoints {
                stats.set_check_failing(false);
            }
            self.settings = wanted;
        }
        let Some((check, protocol)) = self.settings.clone() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.tasks.retain(
            |addr, task| match endpoints.iter().any(|(a, _)| a == addr) {
                true => true,
                false => {
                    task.abort();
                    false
                }
            },
        );
        let client = check_client(&check, protocol);
        for (addr, stats) in endpoints {
            if self.tasks.contains_key(addr) {
                continue;
            }
            let Ok(authority) = addr.parse::<Authority>() else {
                continue;
            };
            let probe = Probe {
                upstream: upstream.to_owned(),
                authority,
                check: check.clone(),
                client: client.clone(),
                stats: stats.clone(),
            };
            let task = rt.spawn(probe.run());
            self.tasks.insert(addr.clone(), task.abort_handle());
        }
    }

    fn stop(&mut self) {
        for (_, t) in self.tasks.drain() {
            t.abort();
        }
    }
}

fn check_client(check: &HealthCheck, protocol: UpstreamProtocol) -> CheckClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(check.timeout));
    connector.set_nodelay(true);
    let mut b = Client::builder(TokioExecutor::new());
    // A fresh connection per check, as HAProxy and NGINX do: a pooled one
    // would hide an endpoint that no longer accepts.
    b.timer(TokioTimer::new())
        .pool_max_idle_per_host(0)
        .set_host(false);
    if protocol == UpstreamProtocol::H2c {
        b.http2_only(true);
    }
    b.build(connector)
}

struct Probe {
    upstream: String,
    authority: Authority,
    check: HealthCheck,
    client: CheckClient,
    stats: Arc<EndpointStats>,
}

impl Probe {
    async fn run(self) {
        let mut rng = Jitter::seeded(&self.authority);
        // Spread the first checks over one interval.
        tokio::time::sleep(rng.within(self.check.interval)).await;
        let (mut passes, mut fails) = (0u32, 0u32);
        loop {
            match self.once().await {
                Ok(()) => {
                    fails = 0;
                    passes = passes.saturating_add(1);
                    if passes >= self.check.healthy_threshold {
                        let unejected = self.stats.outlier.uneject();
                        if self.stats.set_check_failing(false) || unejected {
                            self.stats.end_cool_down();
                            tracing::info!(upstream = %self.upstream, endpoint = %self.authority, passes, "endpoint passes its health check: back in rotation");
                        }
                    }
                }
                Err(why) => {
                    passes = 0;
                    fails = fails.saturating_add(1);
                    if fails >= self.check.unhealthy_threshold && self.stats.set_check_failing(true)
                    {
                        tracing::warn!(upstream = %self.upstream, endpoint = %self.authority, fails, reason = %why, "endpoint fails its health check: out of rotation");
                    }
                }
            }
            let i = self.check.interval;
            // ±10 % of the interval.
            tokio::time::sleep(i.mul_f64(0.9) + rng.within(i / 5)).await;
        }
    }

    async fn once(&self) -> Result<(), String> {
        let timeout = self.check.timeout;
        match self.check.kind {
            HealthKind::Tcp => {
                let addr = self.authority.as_str().to_owned();
                match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("connect: {e}")),
                    Err(_) => Err(format!("no connection within {timeout:?}")),
                }
            }
            HealthKind::Http => {
                let uri = Uri::builder()
                    .scheme("http")
                    .authority(self.authority.clone())
                    .path_and_query(self.check.path.as_str())
                    .build()
                    .map_err(|e| e.to_string())?;
                let host = self
                    .check
                    .host
                    .clone()
                    .unwrap_or_else(|| self.authority.to_string());
                let req = Request::get(uri)
                    .header(header::HOST, host)
                    .header(header::USER_AGENT, "edgeward-health-check")
                    .body(Empty::new())
                    .map_err(|e| e.to_string())?;
                match tokio::time::timeout(timeout, self.client.request(req)).await {
                    Ok(Ok(resp)) if self.check.passes(resp.status().as_u16()) => Ok(()),
                    Ok(Ok(resp)) => Err(format!("status {}", resp.status().as_u16())),
                    Ok(Err(e)) => Err(format!("request: {e}")),
                    Err(_) => Err(format!("no answer within {timeout:?}")),
                }
            }
        }
    }
}

/// xorshift64*, seeded per endpoint and start time: jitter needs spread, not
/// unpredictability.
struct Jitter(u64);

impl Jitter {
    fn seeded(a: &Authority) -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self((super::stats::fnv1a(a.as_str()) ^ u64::from(t)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, d)`.
    fn within(&mut self, d: Duration) -> Duration {
        d.mul_f64((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range() {
        let mut j = Jitter::seeded(&"10.0.0.1:80".parse().unwrap());
        for _ in 0..1000 {
            assert!(j.within(Duration::from_secs(5)) < Duration::from_secs(5));
        }
    }
}
