//! Metrics the plugin defines: counters, gauges and histograms that the
//! gateway shows on `/metrics` and hands to scalers.
//!
//! The gateway namespaces them by the plugin's name from its config: counter
//! `orders` of plugin `shop` is `edgeward_plugin_shop_orders_total` on
//! `/metrics` and `shop/orders` in a [`ScaleSnapshot`](crate::ScaleSnapshot)'s
//! `custom_metrics` (as orders per second over the window), so a scaler can
//! target it (`metric: custom:shop/orders` for the built-in scalers). Each
//! series is labelled with the upstream the call was for: a filter's route's
//! upstream, a router's upstream, a scaler's service.
//!
//! Names are `[a-z][a-z0-9_]*`, at most 64 bytes, not ending in `_total`,
//! `_bucket`, `_count` or `_sum` (the exposition adds those); a plugin has at
//! most [`MAX_METRICS`] of them. Check names in `init` with [`check_name`].
//!
//! ```
//! use edgeward_sdk::metrics::Counter;
//! use edgeward_sdk::{Action, Config, Filter, Request, Response};
//!
//! const ORDERS: Counter = Counter::new("orders");
//!
//! struct CountOrders;
//! impl Filter for CountOrders {
//!     fn init(_: &Config) -> Result<Self, String> {
//!         ORDERS.check()?;
//!         Ok(CountOrders)
//!     }
//!     fn on_response(&self, _req: &Request<'_>, resp: &Response<'_>) -> Action {
//!         if let Some(n) = resp.header("x-orders").and_then(|v| v.parse().ok()) {
//!             ORDERS.add(n);
//!         }
//!         Action::pass()
//!     }
//! }
//!
//! use edgeward_sdk::testing::{FakeHost, FakeRequest, FakeResponse};
//! let host = FakeHost::new();
//! let f: CountOrders = host.filter(&[]).unwrap();
//! host.on_response(&f, &FakeRequest::get("/buy"), &FakeResponse::new(200).with_header("x-orders", "3"));
//! assert_eq!(host.metric_counter("orders"), 3);
//! ```

use std::fmt;

/// Metrics one plugin may define.
pub const MAX_METRICS: usize = 32;
/// Longest metric name, bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Why the host did not record a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricError {
    /// The name breaks the naming rules.
    InvalidName,
    /// The name is already a metric of another kind.
    WrongKind,
    /// The plugin already has [`MAX_METRICS`] metrics.
    TooMany,
    /// NaN or infinite (or, for a counter, an overflow).
    InvalidValue,
}

impl fmt::Display for MetricError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidName => {
                "invalid metric name: use [a-z][a-z0-9_]*, at most 64 bytes, \
                 not ending in _total, _bucket, _count or _sum"
            }
            Self::WrongKind => "the metric name is already used by a metric of another kind",
            Self::TooMany => "the plugin already has 32 metrics",
            Self::InvalidValue => "metric value is NaN, infinite or overflows the counter",
        })
    }
}

impl std::error::Error for MetricError {}

/// Whether the host accepts `name` as a metric name.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && !["_total", "_bucket", "_count", "_sum"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// `Ok` when the host accepts `name`; an error for `init` otherwise.
pub fn check_name(name: &str) -> Result<(), String> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(format!("metric `{name}`: {}", MetricError::InvalidName))
    }
}

#[cfg(target_arch = "wasm32")]
fn from_wit(r: Result<(), crate::wasm::metrics::MetricError>) -> Result<(), MetricError> {
    use crate::wasm::metrics::MetricError as W;
    r.map_err(|e| match e {
        W::InvalidName => MetricError::InvalidName,
        W::WrongKind => MetricError::WrongKind,
        W::TooMany => MetricError::TooMany,
        W::InvalidValue => MetricError::InvalidValue,
    })
}

/// Add `delta` to counter `name` (created at 0).
pub fn counter_add(name: &str, delta: u64) -> Result<(), MetricError> {
    #[cfg(target_arch = "wasm32")]
    {
        from_wit(crate::wasm::metrics::counter_add(name, delta))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.metric(name, crate::testing::MetricUpdate::Add(delta)))
    }
}

/// Set gauge `name` to `value`.
pub fn gauge_set(name: &str, value: f64) -> Result<(), MetricError> {
    #[cfg(target_arch = "wasm32")]
    {
        from_wit(crate::wasm::metrics::gauge_set(name, value))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.metric(name, crate::testing::MetricUpdate::Set(value)))
    }
}

/// Add `delta` (may be negative) to gauge `name` (created at 0).
pub fn gauge_add(name: &str, delta: f64) -> Result<(), MetricError> {
    #[cfg(target_arch = "wasm32")]
    {
        from_wit(crate::wasm::metrics::gauge_add(name, delta))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.metric(name, crate::testing::MetricUpdate::GaugeAdd(delta)))
    }
}

/// Record one observation of `value` in histogram `name` (buckets 0.001 to
/// 10 000 in 1-2.5-5 steps).
pub fn observe(name: &str, value: f64) -> Result<(), MetricError> {
    #[cfg(target_arch = "wasm32")]
    {
        from_wit(crate::wasm::metrics::histogram_observe(name, value))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.metric(name, crate::testing::MetricUpdate::Observe(value)))
    }
}

/// Natively a refused update is a bug the test should see; in the gateway
/// it is counted (`edgeward_plugin_metric_errors_total`) and the call goes on.
fn settle(name: &str, r: Result<(), MetricError>) {
    #[cfg(not(target_arch = "wasm32"))]
    if let Err(e) = r {
        panic!("metric `{name}`: {e}");
    }
    #[cfg(target_arch = "wasm32")]
    let _ = (name, r);
}

/// A counter by name, usable as a `const`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter(&'static str);

impl Counter {
    /// The counter `name`.
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }
    /// Its name.
    pub fn name(&self) -> &'static str {
        self.0
    }
    /// `Ok` when the host accepts the name (call it in `init`).
    pub fn check(&self) -> Result<(), String> {
        check_name(self.0)
    }
    /// Add 1.
    pub fn inc(&self) {
        self.add(1);
    }
    /// Add `n`.
    pub fn add(&self, n: u64) {
        settle(self.0, counter_add(self.0, n));
    }
}

/// A gauge by name, usable as a `const`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauge(&'static str);

impl Gauge {
    /// The gauge `name`.
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }
    /// `Ok` when the host accepts the name.
    pub fn check(&self) -> Result<(), String> {
        check_name(self.0)
    }
    /// Set it to `value`.
    pub fn set(&self, value: f64) {
        settle(self.0, gauge_set(self.0, value));
    }
    /// Add `delta` (may be negative).
    pub fn add(&self, delta: f64) {
        settle(self.0, gauge_add(self.0, delta));
    }
}

/// A histogram by name, usable as a `const`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram(&'static str);

impl Histogram {
    /// The histogram `name`.
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }
    /// `Ok` when the host accepts the name.
    pub fn check(&self) -> Result<(), String> {
        check_name(self.0)
    }
    /// Record one observation.
    pub fn observe(&self, value: f64) {
        settle(self.0, observe(self.0, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;

    #[test]
    fn the_fake_host_checks_like_the_gateway() {
        let host = FakeHost::new();
        host.run(|| {
            assert_eq!(counter_add("orders", 2), Ok(()));
            assert_eq!(gauge_set("orders", 1.0), Err(MetricError::WrongKind));
            assert_eq!(
                counter_add("orders_total", 1),
                Err(MetricError::InvalidName)
            );
            assert_eq!(observe("amount", f64::NAN), Err(MetricError::InvalidValue));
            Gauge::new("basket").set(2.0);
            Gauge::new("basket").add(0.5);
            Histogram::new("amount").observe(7.0);
            for i in 0..MAX_METRICS - 3 {
                counter_add(&format!("m{i}"), 1).unwrap();
            }
            assert_eq!(counter_add("one_more", 1), Err(MetricError::TooMany));
        });
        assert_eq!(host.metric_counter("orders"), 2);
        assert_eq!(host.metric_gauge("basket"), Some(2.5));
        assert_eq!(host.metric_observations("amount"), [7.0]);
        assert!(check_name("Orders").is_err() && check_name("orders").is_ok());
    }

    #[test]
    #[should_panic(expected = "metric `Bad`")]
    fn typed_helpers_panic_natively_on_a_refusal() {
        FakeHost::new().run(|| Counter::new("Bad").inc());
    }
}
