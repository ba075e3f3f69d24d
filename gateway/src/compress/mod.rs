//! The compression stage: negotiate a coding per response, stream-encode
//! responses that are not cached; the cache stage keeps encoded variants of
//! what it stores so a hit never recompresses.

pub mod encoder;
pub use crate::encoding as negotiate;

use http::header::{self, HeaderValue};
use http::{Method, Response};

use crate::body::{self, Body};
pub use crate::config::compress::Compression;
pub use encoder::{EncodedBody, Encoder, encode_all};
pub use negotiate::{Encoding, eligible, negotiate};

/// Compresses a response on the fly when it is eligible and the client wants a
/// coding; adds `Vary: Accept-Encoding` whenever the choice depended on it.
pub fn stream(
    resp: Response<Body>,
    method: &Method,
    want: Encoding,
    cfg: &Compression,
) -> Response<Body> {
    if eligible(
        method,
        resp.status(),
        resp.headers(),
        None,
        cfg.min_size,
        &cfg.types,
    )
    .is_err()
    {
        return resp;
    }
    let (mut parts, inner) = resp.into_parts();
    negotiate::add_vary_accept_encoding(&mut parts.headers);
    let Some(encoder) = Encoder::new(want, cfg.level(want, false)) else {
        return Response::from_parts(parts, inner);
    };
    mark_encoded(&mut parts.headers, want);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body::boxed(EncodedBody::new(inner, encoder)))
}

/// Header changes for a body now in `encoding`: the coding itself, a weak ETag
/// (the bytes differ from what the origin tagged) and no byte ranges.
pub fn mark_encoded(headers: &mut http::HeaderMap, encoding: Encoding) {
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(encoding.token()),
    );
    if let Some(weak) = headers.get(header::ETAG).and_then(negotiate::weaken_etag) {
        headers.insert(header::ETAG, weak);
    }
    headers.remove(header::ACCEPT_RANGES);
}
