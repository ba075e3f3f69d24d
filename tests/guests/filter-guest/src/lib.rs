//! A well-behaved filter for the tests: adds `x-filter: <tag>` to requests,
//! `x-filter-response: <tag>` to responses, answers `403` itself for paths
//! under `deny` (config), and replaces a `418` from upstream with its own
//! answer. Configured as a `balancer:` it must fail to load (wrong world).
//! With `leak: <n>` its init leaves `n` host handles allocated: with all but
//! one (1023) the host can lend it a request but not a response too; with
//! all of them (1024), not even the request.

wit_bindgen::generate!({ path: "../../../wit", world: "filter" });

#[path = "../../leak.rs"]
mod leak;

use std::sync::OnceLock;

use edgeward::plugin::types::{DirectResponse, Header, HeaderEdit};

static CONFIG: OnceLock<(String, String)> = OnceLock::new();

struct Tagger;

fn config() -> &'static (String, String) {
    CONFIG.get_or_init(|| ("filter".into(), "/denied".into()))
}

fn set(name: &str, value: &str) -> HeaderEdit {
    HeaderEdit::Set(Header {
        name: name.into(),
        value: value.into(),
    })
}

impl Guest for Tagger {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let get = |k: &str| config.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let tag = get("tag").unwrap_or_else(|| "filter".into());
        let deny = get("deny").unwrap_or_else(|| "/denied".into());
        let _ = CONFIG.set((tag, deny));
        if let Some(n) = get("leak") {
            leak::leak_handles(n.parse().map_err(|_| format!("leak: {n:?}"))?);
        }
        Ok(())
    }

    fn on_request(req: &Request) -> Action {
        let (tag, deny) = config();
        if req.path().starts_with(deny.as_str()) {
            return Action::Respond(DirectResponse {
                status: 403,
                headers: vec![Header {
                    name: "content-type".into(),
                    value: "text/plain".into(),
                }],
                body: format!("denied by {tag}\n").into_bytes(),
            });
        }
        Action::Continue(vec![set("x-filter", tag)])
    }

    fn on_response(_req: &Request, resp: &Response) -> Action {
        let (tag, _) = config();
        if resp.status() == 418 {
            return Action::Respond(DirectResponse {
                status: 503,
                headers: Vec::new(),
                body: b"teapot replaced\n".to_vec(),
            });
        }
        Action::Continue(vec![set("x-filter-response", tag)])
    }
}

export!(Tagger);
