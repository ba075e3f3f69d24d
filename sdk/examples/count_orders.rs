//! A filter that counts a business metric: the orders each response reports
//! in a header, as a plugin-defined counter. The gateway shows it on
//! `/metrics` (`edgeward_plugin_<plugin>_orders_total{upstream="..."}`) and
//! hands it to scalers as orders per second (`custom:<plugin>/orders`), so a
//! service can scale on orders rather than on requests.
//!
//! Config: `header` — the response header carrying the count (default
//! `x-orders`). Each order's value, when the upstream sends `x-order-value`,
//! goes into the histogram `order_value`.
//!
//! `cargo build --release --target wasm32-wasip2 --example count_orders`

use edgeward_sdk::metrics::{Counter, Histogram};
use edgeward_sdk::{Action, Config, Filter, Request, Response};

const ORDERS: Counter = Counter::new("orders");
const ORDER_VALUE: Histogram = Histogram::new("order_value");

/// The order-counting filter.
pub struct CountOrders {
    header: String,
}

impl Filter for CountOrders {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&["header"])?;
        ORDERS.check()?;
        ORDER_VALUE.check()?;
        Ok(Self {
            header: config.get_or("header", "x-orders").to_ascii_lowercase(),
        })
    }

    fn on_response(&self, _request: &Request<'_>, response: &Response<'_>) -> Action {
        if let Some(n) = response
            .header(&self.header)
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            ORDERS.add(n);
        }
        if let Some(v) = response
            .header("x-order-value")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
        {
            ORDER_VALUE.observe(v);
        }
        Action::pass()
    }
}

edgeward_sdk::export!(filter: CountOrders);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeHost, FakeRequest, FakeResponse};

    #[test]
    fn counts_what_the_header_says_and_ignores_junk() {
        let host = FakeHost::new();
        let f: CountOrders = host.filter(&[]).unwrap();
        let req = FakeRequest::get("/checkout");
        for h in ["2", " 3 ", "x", "-1"] {
            host.on_response(&f, &req, &FakeResponse::new(200).with_header("x-orders", h));
        }
        host.on_response(
            &f,
            &req,
            &FakeResponse::new(200).with_header("x-order-value", "19.5"),
        );
        assert_eq!(host.metric_counter("orders"), 5);
        assert_eq!(host.metric_observations("order_value"), [19.5]);
        assert!(host.filter::<CountOrders>(&[("headr", "x")]).is_err());
    }
}
