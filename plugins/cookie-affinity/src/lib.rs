//! `cookie-affinity`: pin each client to an endpoint with a cookie.
//!
//! A client without the cookie (or whose pinned endpoint is unhealthy or
//! gone) gets the next healthy endpoint in round-robin order and a
//! `set-cookie` naming it; a client with a valid cookie goes back to the same
//! endpoint, with no header added. The cookie holds the endpoint's stable
//! key (16 hex digits), not its address, and survives reloads and other
//! gateway nodes.
//!
//! Config:
//! - `cookie`: cookie name, default `edgeward-affinity`.
//! - `max-age`: lifetime such as `1h`; default none (a session cookie).
//! - `path`: cookie path, default `/`.
//! - `secure`: `true`, `false` or `auto` (only when the client used https);
//!   default `auto`.

use std::time::Duration;

use edgeward_sdk::cookie::{self, SameSite, SetCookie};
use edgeward_sdk::{
    Candidate, Config, Decision, Forward, HeaderEdit, Request, Router, Upstream, debug, select,
    state,
};

/// When to add the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secure {
    Always,
    Never,
    WhenHttps,
}

/// The cookie-affinity router.
pub struct CookieAffinity {
    name: String,
    max_age: Option<Duration>,
    path: String,
    secure: Secure,
}

impl CookieAffinity {
    fn set_cookie(&self, req: &Request<'_>, target: &Candidate) -> HeaderEdit {
        let mut c = SetCookie::new(&self.name, cookie::hex_u64(target.key))
            .path(&self.path)
            .http_only()
            .same_site(SameSite::Lax);
        if let Some(age) = self.max_age {
            c = c.max_age(age);
        }
        let secure = match self.secure {
            Secure::Always => true,
            Secure::Never => false,
            Secure::WhenHttps => req.scheme() == "https",
        };
        if secure {
            c = c.secure();
        }
        HeaderEdit::append("set-cookie", c.to_string())
    }
}

impl Router for CookieAffinity {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&["cookie", "max-age", "path", "secure"])?;
        let name = config
            .get_or("cookie", "edgeward-affinity")
            .trim()
            .to_owned();
        if !cookie::is_valid_name(&name) {
            return Err(format!(
                "config `cookie`: `{name}` is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~)"
            ));
        }
        let path = config.get_or("path", "/").trim().to_owned();
        if !path.starts_with('/') || path.contains(';') || path.chars().any(char::is_control) {
            return Err(format!(
                "config `path`: `{path}` must start with `/` and contain no `;`"
            ));
        }
        let secure = match config.get_or("secure", "auto").trim() {
            "auto" => Secure::WhenHttps,
            "true" => Secure::Always,
            "false" => Secure::Never,
            other => {
                return Err(format!(
                    "config `secure`: invalid value `{other}`: expected true, false or auto"
                ));
            }
        };
        Ok(Self {
            name,
            max_age: config.duration("max-age")?,
            path,
            secure,
        })
    }

    fn choose(
        &self,
        req: &Request<'_>,
        upstream: &Upstream<'_>,
        candidates: &[Candidate],
    ) -> Decision {
        let pinned = req.cookie(&self.name);
        if let Some(key) = pinned.as_deref().and_then(cookie::parse_hex_u64) {
            if let Some(c) = candidates.iter().find(|c| c.key == key && c.healthy) {
                return Decision::forward(c);
            }
            debug!("pinned endpoint {key:016x} is unhealthy or gone; re-pinning");
        }
        let healthy = select::healthy(candidates);
        let n = healthy.clone().count();
        let Some(target) = healthy
            .clone()
            .nth(state::next_index(&upstream.state_key("ca", candidates), n))
        else {
            return Decision::Unavailable;
        };
        Forward::to(target.id)
            .response_header(self.set_cookie(req, target))
            .into()
    }
}

edgeward_sdk::export!(router: CookieAffinity);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeHost, FakeRequest, FakeUpstream};
    use edgeward_sdk::{Decision, HeaderEdit};

    fn upstream() -> FakeUpstream {
        FakeUpstream::new("shop")
            .with_endpoint("10.0.0.1:80")
            .with_endpoint("10.0.0.2:80")
            .with_endpoint("10.0.0.3:80")
    }

    /// The endpoint id and the cookie value set, if any.
    fn decide(
        host: &FakeHost,
        r: &CookieAffinity,
        req: &FakeRequest,
        up: &FakeUpstream,
    ) -> (u32, Option<String>) {
        let Decision::Forward(f) = host.choose(r, req, up) else {
            panic!("expected a forward");
        };
        let cookie = f.response_headers.iter().find_map(|e| match e {
            HeaderEdit::Append(h) if h.name == "set-cookie" => Some(h.value.clone()),
            _ => None,
        });
        (f.endpoint, cookie)
    }

    fn value_of(set_cookie: &str) -> &str {
        set_cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
    }

    #[test]
    fn new_clients_are_pinned_round_robin_then_stick() {
        let host = FakeHost::new();
        let r: CookieAffinity = host.router(&[]).unwrap();
        let up = upstream();
        let (first, set) = decide(&host, &r, &FakeRequest::get("/"), &up);
        let set = set.expect("a new client gets a cookie");
        assert!(
            set.starts_with("edgeward-affinity=") && set.contains("HttpOnly"),
            "{set}"
        );
        assert!(!set.contains("Secure"), "plain http gets no Secure: {set}");
        let (second, _) = decide(&host, &r, &FakeRequest::get("/"), &up);
        assert_ne!(first, second, "new clients are spread");

        let back = FakeRequest::get("/cart").with_cookie("edgeward-affinity", value_of(&set));
        for _ in 0..5 {
            assert_eq!(decide(&host, &r, &back, &up), (first, None));
        }
    }

    #[test]
    fn re_pins_when_the_endpoint_fails_and_ignores_junk() {
        let host = FakeHost::new();
        let r: CookieAffinity = host
            .router(&[("cookie", "pin"), ("max-age", "1h")])
            .unwrap();
        let mut up = upstream();
        let (first, set) = decide(&host, &r, &FakeRequest::get("/"), &up);
        let set = set.unwrap();
        assert!(set.contains("Max-Age=3600"), "{set}");
        let back = FakeRequest::get("/").with_cookie("pin", value_of(&set));

        up.set_healthy(first, false);
        let (moved, reset) = decide(&host, &r, &back, &up);
        assert_ne!(moved, first);
        let reset = reset.expect("a re-pinned client gets a new cookie");
        let back = FakeRequest::get("/").with_cookie("pin", value_of(&reset));
        up.set_healthy(first, true);
        assert_eq!(
            decide(&host, &r, &back, &up),
            (moved, None),
            "stays on the new pin"
        );

        for junk in ["zz", "0000000000000000", "../../etc"] {
            let (_, set) = decide(
                &host,
                &r,
                &FakeRequest::get("/").with_cookie("pin", junk),
                &up,
            );
            assert!(set.is_some(), "junk cookie `{junk}` is replaced");
        }
    }

    #[test]
    fn cookie_follows_the_endpoint_across_a_reload() {
        let host = FakeHost::new();
        let r: CookieAffinity = host.router(&[]).unwrap();
        let up = upstream();
        let (id, set) = decide(&host, &r, &FakeRequest::get("/"), &up);
        let address = up.address(id).unwrap();
        let mut reloaded = up.clone();
        reloaded.remove("10.0.0.1:80");
        if address != "10.0.0.1:80" {
            let back =
                FakeRequest::get("/").with_cookie("edgeward-affinity", value_of(&set.unwrap()));
            let (new_id, again) = decide(&host, &r, &back, &reloaded);
            assert_eq!(reloaded.address(new_id).unwrap(), address);
            assert!(again.is_none());
        }
    }

    #[test]
    fn secure_follows_the_scheme_and_config_is_checked() {
        let host = FakeHost::new();
        let r: CookieAffinity = host.router(&[]).unwrap();
        let (_, set) = decide(
            &host,
            &r,
            &FakeRequest::get("/").with_scheme("https"),
            &upstream(),
        );
        assert!(set.unwrap().contains("; Secure"));
        assert!(
            host.router::<CookieAffinity>(&[("cookie", "bad name")])
                .is_err()
        );
        assert!(
            host.router::<CookieAffinity>(&[("secure", "maybe")])
                .is_err()
        );
        assert!(
            host.router::<CookieAffinity>(&[("max-age", "soon")])
                .is_err()
        );
        assert!(host.router::<CookieAffinity>(&[("path", "x")]).is_err());
    }

    #[test]
    fn all_unhealthy_is_unavailable() {
        let host = FakeHost::new();
        let r: CookieAffinity = host.router(&[]).unwrap();
        let mut up = upstream();
        for id in 0..3 {
            up.set_healthy(id, false);
        }
        assert_eq!(
            host.choose(&r, &FakeRequest::get("/"), &up),
            Decision::Unavailable
        );
    }
}
