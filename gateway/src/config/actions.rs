//! Answers that need no upstream, the two common NGINX `return` uses:
//! `https-redirect:` (on a plaintext listener, or on a route) and a route's
//! `respond:` (a fixed status and body).
//!
//! ```yaml
//! listeners:
//!   - address: 0.0.0.0:80
//!     https-redirect: true              # or {port: 8443, status: 301}
//! routes:
//!   - match: {path: /healthz}
//!     respond: {status: 200, body: "ok\n"}
//!   - match: {path-prefix: /old}
//!     respond: {status: 301, location: "https://example.com/new"}
//! ```

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::cache::Issue;

/// Largest `respond.body`, as for a plugin's direct response.
pub const MAX_BODY: usize = 64 * 1024;

/// `https-redirect: true` or `{port, status}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HttpsRedirectYaml {
    /// `true`: port 443, status 308; `false`: no redirect.
    On(bool),
    Detailed(HttpsRedirectDetail),
}

/// Where plaintext requests are redirected.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpsRedirectDetail {
    /// The HTTPS port clients are sent to (443 is left out of the URL),
    /// e.g. `8443`. Default: 443.
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// The redirect status: 301, 302, 303, 307 or 308 (307 and 308 keep the
    /// method and body). Default: 308.
    #[schemars(extend("enum" = [301, 302, 303, 307, 308]))]
    pub status: Option<u16>,
}

/// Where and how plaintext requests are sent to HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsRedirect {
    pub port: u16,
    pub status: StatusCode,
}

/// A route's `respond:` block: a fixed answer, with nothing sent upstream.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RespondYaml {
    /// The status, 200 to 599, e.g. `200`.
    #[schemars(with = "u16")]
    #[schemars(range(min = 200, max = 599))]
    pub status: Spanned<u16>,
    /// The body, sent as is (at most 64 KiB; none for 204 and 304), e.g.
    /// `"ok\n"`. Default: empty.
    #[schemars(with = "Option<String>")]
    pub body: Option<Spanned<String>>,
    /// The `Content-Type`, e.g. `text/html`. Default: `text/plain;
    /// charset=utf-8` when there is a body, none otherwise.
    #[schemars(with = "Option<String>")]
    pub content_type: Option<Spanned<String>>,
    /// The `Location` of a 3xx (required for 301, 302, 303, 307 and 308),
    /// e.g. `https://example.com/new`. Default: none.
    #[schemars(with = "Option<String>")]
    pub location: Option<Spanned<String>>,
}

/// A fixed answer.
#[derive(Debug, Clone)]
pub struct Respond {
    pub status: StatusCode,
    pub body: Bytes,
    pub content_type: Option<HeaderValue>,
    pub location: Option<HeaderValue>,
}

fn redirect_status(s: u16) -> bool {
    matches!(s, 301 | 302 | 303 | 307 | 308)
}

pub fn https_redirect(
    y: &Spanned<HttpsRedirectYaml>,
    path: &str,
    issues: &mut Vec<Issue>,
) -> Option<HttpsRedirect> {
    let (port, status) = match &y.value {
        HttpsRedirectYaml::On(false) => return None,
        HttpsRedirectYaml::On(true) => (None, None),
        HttpsRedirectYaml::Detailed(d) => (d.port, d.status),
    };
    let status = status.unwrap_or(308);
    if !redirect_status(status) {
        issues.push(Issue::new(
            &y.referenced,
            format!("{path}.status"),
            format!("{status} is not a redirect; use 301, 302, 303, 307 or 308"),
        ));
        return None;
    }
    let port = port.unwrap_or(443);
    if port == 0 {
        issues.push(Issue::new(
            &y.referenced,
            format!("{path}.port"),
            "must be between 1 and 65535",
        ));
        return None;
    }
    Some(HttpsRedirect {
        port,
        status: StatusCode::from_u16(status).ok()?,
    })
}

pub fn respond(y: &Spanned<RespondYaml>, path: &str, issues: &mut Vec<Issue>) -> Option<Respond> {
    let v = &y.value;
    let mut bad = |at: &Location, field: &str, msg: String| {
        issues.push(Issue::new(at, format!("{path}.{field}"), msg));
        None
    };
    let code = v.status.value;
    let Some(status) = (200..=599)
        .contains(&code)
        .then(|| StatusCode::from_u16(code).ok())
        .flatten()
    else {
        return bad(
            &v.status.referenced,
            "status",
            format!("{code} is not a final status; write 200 to 599"),
        );
    };
    let body = v.body.as_ref().map_or("", |b| b.value.as_str());
    if body.len() > MAX_BODY {
        let at = v.body.as_ref().map_or(y.referenced, |b| b.referenced);
        return bad(
            &at,
            "body",
            format!("is {} bytes; at most 64 KiB", body.len()),
        );
    }
    if !body.is_empty() && matches!(code, 204 | 304) {
        let at = v.body.as_ref().map_or(y.referenced, |b| b.referenced);
        return bad(&at, "body", format!("a {code} has no body"));
    }
    let location = match &v.location {
        Some(l) if !(300..400).contains(&code) => {
            return bad(
                &l.referenced,
                "location",
                format!("only a 3xx has a location; the status is {code}"),
            );
        }
        Some(l) => match HeaderValue::from_str(&l.value) {
            Ok(h) if !l.value.is_empty() => Some(h),
            _ => {
                return bad(
                    &l.referenced,
                    "location",
                    format!(
                        "\"{}\" is not a valid header value",
                        l.value.escape_default()
                    ),
                );
            }
        },
        None if redirect_status(code) => {
            return bad(
                &v.status.referenced,
                "location",
                format!("a {code} needs a `location:`"),
            );
        }
        None => None,
    };
    let content_type = match &v.content_type {
        Some(t) => match HeaderValue::from_str(&t.value) {
            Ok(h) if is_media_type(&t.value) => Some(h),
            _ => {
                return bad(
                    &t.referenced,
                    "content-type",
                    format!("\"{}\" is not a media type, e.g. text/html", t.value),
                );
            }
        },
        None if !body.is_empty() => Some(HeaderValue::from_static("text/plain; charset=utf-8")),
        None => None,
    };
    Some(Respond {
        status,
        body: Bytes::copy_from_slice(body.as_bytes()),
        content_type,
        location,
    })
}

/// `type/subtype`, parameters allowed.
fn is_media_type(text: &str) -> bool {
    let essence = text.split(';').next().unwrap_or("").trim();
    essence.split_once('/').is_some_and(|(t, s)| {
        let token = |x: &str| {
            !x.is_empty()
                && x.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        token(t) && token(s)
    })
}
