//! Passive health from the request path's own tries: each answer or failure
//! of an endpoint feeds its outlier state, and a refused connection starts
//! the short connect cool-down. Ejections stay under the upstream's cap.

use std::time::Duration;

use http::StatusCode;

use super::UpstreamPool;
use super::outlier::{self, Reason};
use super::stats::now_ms;

impl UpstreamPool {
    /// Endpoint `idx` sent a response head with `status`.
    pub fn answered(&self, idx: usize, status: StatusCode) {
        if status.is_server_error() {
            self.failed(idx, Reason::Status5xx);
        } else {
            self.stats[idx]
                .outlier
                .succeeded(now_ms(), &self.resilience.outlier);
        }
    }

    /// A try on endpoint `idx` failed for `reason`.
    pub fn failed(&self, idx: usize, reason: Reason) {
        let now = now_ms();
        let cap = outlier::max_ejected(
            self.endpoints.len(),
            self.resilience.outlier.max_ejected_percent,
        );
        let stats = &self.stats[idx];
        let room = || self.passively_out(now) < cap;
        if let Some(length) = stats
            .outlier
            .failed(now, &self.resilience.outlier, reason, room)
        {
            tracing::warn!(upstream = %self.name, endpoint = %self.endpoints[idx].authority, reason = reason.as_str(), ejected_for = ?length, "endpoint ejected after consecutive errors");
        }
        // A refused connection is not an opinion about the application: the
        // endpoint is not there. Its short cool-down is not capped like an
        // ejection (under the panic threshold every endpoint is offered
        // anyway), and a scale-from-zero hold needs it to see that no replica
        // is up, however small the pool.
        if reason == Reason::ConnectError {
            self.cool_down(idx, now);
        }
    }

    fn cool_down(&self, idx: usize, now: u64) {
        let cool_down: Duration = self.cool_down;
        if self.stats[idx].connect_failed(now, cool_down) {
            tracing::warn!(upstream = %self.name, endpoint = %self.endpoints[idx].authority, ?cool_down, "endpoint marked unhealthy after a connect failure");
        }
    }

    /// Endpoints out on passive health now.
    fn passively_out(&self, now: u64) -> usize {
        self.stats.iter().filter(|s| s.passively_out(now)).count()
    }
}
