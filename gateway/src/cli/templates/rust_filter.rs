//! {{name}}: an Edgeward filter. Answers 403 for paths under `deny`
//! (default `/admin`) and tags every response with `x-filtered-by`.

use edgeward_sdk::{Action, Config, DirectResponse, Filter, HeaderEdit, Request, Response};

pub struct Plugin {
    deny: String,
}

impl Filter for Plugin {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&["deny"])?;
        let deny = config.get_or("deny", "/admin").to_owned();
        if !deny.starts_with('/') {
            return Err(format!("config `deny`: `{deny}` must start with /"));
        }
        Ok(Plugin { deny })
    }

    fn on_request(&self, req: &Request<'_>) -> Action {
        if req.path().starts_with(&self.deny) {
            return Action::Respond(DirectResponse::new(403).text("forbidden\n"));
        }
        Action::pass()
    }

    fn on_response(&self, _req: &Request<'_>, _resp: &Response<'_>) -> Action {
        Action::Continue(vec![HeaderEdit::set("x-filtered-by", "{{name}}")])
    }
}

edgeward_sdk::export!(filter: Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeHost, FakeRequest};

    #[test]
    fn denies_the_configured_prefix_only() {
        let host = FakeHost::new();
        let p: Plugin = host.filter(&[("deny", "/private")]).unwrap();
        assert!(matches!(host.on_request(&p, &FakeRequest::get("/private/x")), Action::Respond(r) if r.status == 403));
        assert_eq!(host.on_request(&p, &FakeRequest::get("/public")), Action::pass());
        assert!(host.filter::<Plugin>(&[("deny", "nope")]).is_err());
    }
}
