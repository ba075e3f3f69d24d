//! Content-coding negotiation (RFC 9110 §12.5.3) and the checks that decide
//! whether a response may be transformed at all. Pure functions over headers.

use http::header::{self, HeaderMap};
use http::{Method, StatusCode};

/// The codings this gateway produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Brotli => "br",
        }
    }
}

/// Picks the coding for a client from its `Accept-Encoding` lines.
///
/// No header means identity: RFC 9110 allows any coding then, but clients that
/// send none rarely decode one, and every widespread proxy answers identity.
/// Among acceptable codings the highest q wins; ties prefer br over gzip
/// (smaller output). Identity wins only when listed with a strictly higher q.
/// When nothing is acceptable (`identity;q=0` and no coding we produce) the
/// answer is still identity: RFC 9110 lets the server ignore the field rather
/// than fail with 415/406.
pub fn negotiate(headers: &HeaderMap) -> Encoding {
    let mut lines = headers.get_all(header::ACCEPT_ENCODING).iter().peekable();
    if lines.peek().is_none() {
        return Encoding::Identity;
    }
    let (mut br, mut gzip, mut identity, mut star) = (None, None, None, None);
    for item in lines
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1000u32;
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = parse_qvalue(v.trim()).unwrap_or(0);
            }
        }
        let slot = match coding.as_str() {
            "br" => &mut br,
            "gzip" | "x-gzip" => &mut gzip,
            "identity" => &mut identity,
            "*" => &mut star,
            _ => continue,
        };
        // A repeated coding keeps its first q, like the first field line wins elsewhere.
        slot.get_or_insert(q);
    }
    let br = br.or(star).unwrap_or(0);
    let gzip = gzip.or(star).unwrap_or(0);
    let best = if br >= gzip && br > 0 {
        Some((Encoding::Brotli, br))
    } else if gzip > 0 {
        Some((Encoding::Gzip, gzip))
    } else {
        None
    };
    match (best, identity) {
        (Some((_, q)), Some(iq)) if iq > q => Encoding::Identity,
        (Some((e, _)), _) => e,
        (None, _) => Encoding::Identity,
    }
}

/// `q` values in thousandths; `None` for malformed ones (treated as 0 by the caller,
/// so a garbled preference never selects a coding).
fn parse_qvalue(v: &str) -> Option<u32> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut f = 0u32;
    for (i, b) in frac.bytes().enumerate() {
        f += u32::from(b - b'0') * [100, 10, 1][i];
    }
    if whole == 1000 && f > 0 {
        return None;
    }
    Some(whole + f)
}

/// Why a response is sent as it came (for tests and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Method,
    Status,
    AlreadyEncoded,
    NoTransform,
    Range,
    TooSmall,
    Type,
}

/// Whether a response may be compressed at all, whatever the client accepts.
/// `len` is the body size when known.
pub fn eligible(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
    len: Option<u64>,
    min_size: u64,
    types: &[String],
) -> Result<(), Skip> {
    if method == Method::HEAD || method == Method::CONNECT {
        return Err(Skip::Method);
    }
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(Skip::Status);
    }
    if status == StatusCode::PARTIAL_CONTENT || headers.contains_key(header::CONTENT_RANGE) {
        return Err(Skip::Range);
    }
    let encoded = headers.get_all(header::CONTENT_ENCODING).iter().any(|v| {
        !v.to_str()
            .is_ok_and(|s| s.trim().eq_ignore_ascii_case("identity"))
    });
    if encoded {
        return Err(Skip::AlreadyEncoded);
    }
    if has_no_transform(headers) {
        return Err(Skip::NoTransform);
    }
    let len = len.or_else(|| {
        headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse().ok())
    });
    if len.is_some_and(|n| n < min_size) {
        return Err(Skip::TooSmall);
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !type_allowed(ct, types) {
        return Err(Skip::Type);
    }
    Ok(())
}

pub fn has_no_transform(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
}

/// `types` entries are media types with at most one `*`, e.g. `text/*`,
/// `application/*+json`, `image/svg+xml`; parameters of `content_type` are ignored.
pub fn type_allowed(content_type: &str, types: &[String]) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence.is_empty() {
        return false;
    }
    types.iter().any(|t| match t.split_once('*') {
        Some((pre, post)) => {
            essence.len() >= pre.len() + post.len()
                && essence.starts_with(pre)
                && essence.ends_with(post)
        }
        None => essence == *t,
    })
}

/// `W/"x"` for a strong `"x"`: a transformed body is no longer byte-identical to
/// what the origin tagged (RFC 9110 §8.8.1).
pub fn weaken_etag(etag: &http::HeaderValue) -> Option<http::HeaderValue> {
    let b = etag.as_bytes();
    if b.starts_with(b"\"") {
        let mut v = Vec::with_capacity(b.len() + 2);
        v.extend_from_slice(b"W/");
        v.extend_from_slice(b);
        http::HeaderValue::from_bytes(&v).ok()
    } else {
        Some(etag.clone())
    }
}

/// Adds `Accept-Encoding` to `Vary` unless it (or `*`) is already there.
pub fn add_vary_accept_encoding(headers: &mut HeaderMap) {
    let present = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|n| {
            let n = n.trim();
            n == "*" || n.eq_ignore_ascii_case("accept-encoding")
        });
    if !present {
        headers.append(
            header::VARY,
            http::HeaderValue::from_static("Accept-Encoding"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ae(v: &str) -> Encoding {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        negotiate(&h)
    }

    #[test]
    fn negotiation_table() {
        use Encoding::*;
        assert_eq!(negotiate(&HeaderMap::new()), Identity);
        for (header, want) in [
            ("", Identity),
            ("gzip", Gzip),
            ("br", Brotli),
            ("gzip, br", Brotli),
            ("br;q=0.5, gzip", Gzip),
            ("br;q=0.8, gzip;q=0.8", Brotli),
            ("gzip;q=0, br;q=0", Identity),
            ("*", Brotli),
            ("*;q=0.5, br;q=0", Gzip),
            ("identity;q=0", Identity),
            ("identity;q=0, gzip", Gzip),
            ("identity, gzip;q=0.5", Identity),
            ("deflate, compress", Identity),
            ("x-gzip", Gzip),
            ("GZIP ; Q=1.0", Gzip),
            ("br;q=1.5", Identity),
            ("br;q=0.0001", Identity),
            ("br;q=garbage, gzip", Gzip),
        ] {
            assert_eq!(ae(header), want, "Accept-Encoding: {header}");
        }
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let mut h = HeaderMap::new();
        h.append(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0.5"),
        );
        h.append(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(negotiate(&h), Encoding::Brotli);
    }

    fn types() -> Vec<String> {
        ["text/*", "application/json", "application/*+json"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn eligibility() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        let ok =
            |h: &HeaderMap, len| eligible(&Method::GET, StatusCode::OK, h, len, 1024, &types());
        assert_eq!(ok(&h, Some(4096)), Ok(()));
        assert_eq!(ok(&h, Some(10)), Err(Skip::TooSmall));
        assert_eq!(ok(&h, None), Ok(()));
        assert_eq!(
            eligible(
                &Method::HEAD,
                StatusCode::OK,
                &h,
                Some(4096),
                1024,
                &types()
            ),
            Err(Skip::Method)
        );
        assert_eq!(
            eligible(
                &Method::GET,
                StatusCode::PARTIAL_CONTENT,
                &h,
                Some(4096),
                1024,
                &types()
            ),
            Err(Skip::Range)
        );
        let mut enc = h.clone();
        enc.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(ok(&enc, Some(4096)), Err(Skip::AlreadyEncoded));
        let mut nt = h.clone();
        nt.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, no-transform"),
        );
        assert_eq!(ok(&nt, Some(4096)), Err(Skip::NoTransform));
        let mut img = HeaderMap::new();
        img.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
        assert_eq!(ok(&img, Some(4096)), Err(Skip::Type));
        assert_eq!(ok(&HeaderMap::new(), Some(4096)), Err(Skip::Type));
    }

    #[test]
    fn type_patterns() {
        assert!(type_allowed("text/html", &types()));
        assert!(type_allowed("application/problem+json", &types()));
        assert!(!type_allowed("application/jsonx", &types()));
        assert!(!type_allowed("image/svg+xml", &types()));
    }

    #[test]
    fn etags_and_vary() {
        assert_eq!(
            weaken_etag(&HeaderValue::from_static("\"a\"")).unwrap(),
            "W/\"a\""
        );
        assert_eq!(
            weaken_etag(&HeaderValue::from_static("W/\"a\"")).unwrap(),
            "W/\"a\""
        );
        let mut h = HeaderMap::new();
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        add_vary_accept_encoding(&mut h);
        add_vary_accept_encoding(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 2);
    }
}
