//! {{name}}: an Edgeward router. Round robin over the healthy endpoints,
//! with the cursor in host state so every instance shares it.

use edgeward_sdk::{Candidate, Config, Decision, Request, Router, Upstream, select, state};

pub struct Plugin;

impl Router for Plugin {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&[])?;
        Ok(Plugin)
    }

    fn choose(&self, _req: &Request<'_>, upstream: &Upstream<'_>, candidates: &[Candidate]) -> Decision {
        let healthy: Vec<&Candidate> = select::healthy(candidates).collect();
        if healthy.is_empty() {
            return Decision::Unavailable;
        }
        let i = state::next_index(&upstream.state_key("rr", candidates), healthy.len());
        Decision::forward(healthy[i])
    }
}

edgeward_sdk::export!(router: Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeHost, FakeRequest, FakeUpstream};

    #[test]
    fn rotates_over_healthy_endpoints() {
        let host = FakeHost::new();
        let p: Plugin = host.router(&[]).unwrap();
        let mut up = FakeUpstream::new("app")
            .with_endpoint("10.0.0.1:80")
            .with_endpoint("10.0.0.2:80")
            .with_endpoint("10.0.0.3:80");
        up.set_healthy(1, false);
        let picks: Vec<_> = (0..4)
            .map(|_| host.choose(&p, &FakeRequest::get("/"), &up).endpoint().unwrap())
            .collect();
        assert_eq!(picks, [0, 2, 0, 2]);
        assert!(host.router::<Plugin>(&[("typo", "1")]).is_err());
    }
}
