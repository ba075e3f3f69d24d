//! A filter: answer `403` for configured path prefixes before anything goes
//! upstream, and tag every response with the route that served it.
//!
//! Config: `prefixes` — comma-separated path prefixes to refuse (required).
//!
//! `cargo build --release --target wasm32-wasip2 --example block_paths`

use edgeward_sdk::{Action, Config, DirectResponse, Filter, HeaderEdit, Request, Response};

/// The path-blocking filter.
pub struct BlockPaths {
    prefixes: Vec<String>,
}

impl Filter for BlockPaths {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&["prefixes"])?;
        let prefixes: Vec<String> = config
            .get("prefixes")
            .ok_or("config `prefixes`: required, e.g. `/admin,/internal`")?
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        if let Some(bad) = prefixes.iter().find(|p| !p.starts_with('/')) {
            return Err(format!("config `prefixes`: `{bad}` must start with `/`"));
        }
        Ok(Self { prefixes })
    }

    fn on_request(&self, request: &Request<'_>) -> Action {
        let path = request.path();
        if self.prefixes.iter().any(|p| path.starts_with(p.as_str())) {
            return DirectResponse::new(403).text("forbidden\n").into();
        }
        Action::pass()
    }

    fn on_response(&self, request: &Request<'_>, _: &Response<'_>) -> Action {
        Action::Continue(vec![HeaderEdit::set("x-edgeward-route", request.route())])
    }
}

edgeward_sdk::export!(filter: BlockPaths);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeHost, FakeRequest, FakeResponse};

    #[test]
    fn blocks_listed_prefixes_only() {
        let host = FakeHost::new();
        let f: BlockPaths = host.filter(&[("prefixes", "/admin, /internal")]).unwrap();
        let Action::Respond(r) = host.on_request(&f, &FakeRequest::get("/admin/users")) else {
            panic!("expected a 403");
        };
        assert_eq!(r.status, 403);
        assert_eq!(
            host.on_request(&f, &FakeRequest::get("/api")),
            Action::pass()
        );
        let tagged = host.on_response(
            &f,
            &FakeRequest::get("/api").with_route("api"),
            &FakeResponse::new(200),
        );
        assert_eq!(
            tagged,
            Action::Continue(vec![HeaderEdit::set("x-edgeward-route", "api")])
        );
        assert!(host.filter::<BlockPaths>(&[]).is_err());
        assert!(host.filter::<BlockPaths>(&[("prefixes", "admin")]).is_err());
    }
}
