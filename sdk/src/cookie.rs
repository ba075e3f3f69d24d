//! Cookies: reading a `cookie` header and writing `set-cookie` (RFC 6265).

use std::fmt::{self, Write as _};
use std::time::Duration;

/// The value of cookie `name` in one `cookie` header value (RFC 6265 §5.4:
/// `a=1; b=2`). Names match exactly; the first match wins; whitespace around
/// pairs is ignored and double quotes are kept, as the host does.
pub fn get<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// Every `(name, value)` pair in one `cookie` header value, in order.
pub fn pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        Some((k.trim(), v.trim()))
    })
}

/// Whether `name` is a valid cookie name (an RFC 9110 token).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` is a valid cookie value (RFC 6265 cookie-octets, unquoted).
pub fn is_valid_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e))
}

/// The `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on same-site requests and top-level navigations.
    Lax,
    /// Sent on same-site requests only.
    Strict,
    /// Sent everywhere (requires `Secure`).
    None,
}

/// A `set-cookie` header value, built up attribute by attribute.
///
/// ```
/// use edgeward_sdk::cookie::{SameSite, SetCookie};
/// use std::time::Duration;
/// let v = SetCookie::new("pin", "a1b2")
///     .max_age(Duration::from_secs(3600))
///     .http_only()
///     .same_site(SameSite::Lax)
///     .to_string();
/// assert_eq!(v, "pin=a1b2; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    name: String,
    value: String,
    path: String,
    domain: Option<String>,
    max_age: Option<Duration>,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSite>,
}

impl SetCookie {
    /// A cookie with `Path=/` and no other attributes (a session cookie).
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            path: "/".to_owned(),
            domain: None,
            max_age: None,
            secure: false,
            http_only: false,
            same_site: None,
        }
    }

    /// Set `Path` (default `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Set `Domain`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Set `Max-Age`, in whole seconds rounded up (a client must keep the
    /// cookie at least as long as asked); without it the cookie ends with the
    /// session.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Add `Secure`.
    pub fn secure(mut self) -> Self {
        self.secure = true;
        self
    }

    /// Add `HttpOnly`.
    pub fn http_only(mut self) -> Self {
        self.http_only = true;
        self
    }

    /// Set `SameSite`.
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = Some(same_site);
        self
    }
}

impl fmt::Display for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}; Path={}", self.name, self.value, self.path)?;
        if let Some(d) = &self.domain {
            write!(f, "; Domain={d}")?;
        }
        if let Some(age) = self.max_age {
            let secs = age.as_secs() + u64::from(age.subsec_nanos() > 0);
            write!(f, "; Max-Age={secs}")?;
        }
        if self.secure {
            f.write_str("; Secure")?;
        }
        if self.http_only {
            f.write_str("; HttpOnly")?;
        }
        if let Some(s) = self.same_site {
            f.write_str(match s {
                SameSite::Lax => "; SameSite=Lax",
                SameSite::Strict => "; SameSite=Strict",
                SameSite::None => "; SameSite=None",
            })?;
        }
        Ok(())
    }
}

/// Lowercase hex of a `u64`, 16 digits: a compact cookie value for an
/// endpoint [`key`](crate::Candidate::key).
pub fn hex_u64(v: u64) -> String {
    let mut s = String::with_capacity(16);
    let _ = write!(s, "{v:016x}");
    s
}

/// Parse what [`hex_u64`] wrote; `None` for anything else.
pub fn parse_hex_u64(s: &str) -> Option<u64> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cookies_in_a_header() {
        let h = "a=1; pin=\"x y\";b=2 ; pin=second";
        assert_eq!(get(h, "a"), Some("1"));
        assert_eq!(get(h, "b"), Some("2"));
        assert_eq!(get(h, "pin"), Some("\"x y\""));
        assert_eq!(get(h, "missing"), None);
        assert_eq!(get("novalue; c=3", "novalue"), None);
        assert_eq!(pairs(h).count(), 4);
    }

    #[test]
    fn validates_names_and_values() {
        assert!(is_valid_name("edgeward-affinity"));
        assert!(!is_valid_name("bad name"));
        assert!(!is_valid_name(""));
        assert!(is_valid_value("0123abcd"));
        assert!(!is_valid_value("a;b"));
    }

    #[test]
    fn max_age_rounds_a_fraction_of_a_second_up() {
        let v = |ms| {
            SetCookie::new("p", "1")
                .max_age(Duration::from_millis(ms))
                .to_string()
        };
        assert_eq!(v(1500), "p=1; Path=/; Max-Age=2");
        assert_eq!(v(1), "p=1; Path=/; Max-Age=1");
        assert_eq!(v(3000), "p=1; Path=/; Max-Age=3");
    }

    #[test]
    fn hex_round_trips() {
        for v in [0, 1, u64::MAX, 0xdead_beef] {
            assert_eq!(parse_hex_u64(&hex_u64(v)), Some(v));
        }
        assert_eq!(parse_hex_u64("xyz"), None);
        assert_eq!(parse_hex_u64("+000000000000001"), None);
    }

    #[test]
    fn set_cookie_renders_every_attribute() {
        let v = SetCookie::new("n", "v")
            .path("/app")
            .domain("example.com")
            .secure()
            .same_site(SameSite::Strict)
            .to_string();
        assert_eq!(
            v,
            "n=v; Path=/app; Domain=example.com; Secure; SameSite=Strict"
        );
    }
}
