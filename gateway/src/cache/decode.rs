//! Coded bodies we did not ask for. The cache asks upstream for identity
//! (it makes every encoding itself); an upstream that sends `gzip`, `br` or
//! `deflate` anyway is decoded before the body is stored as identity. What
//! cannot be decoded is not stored, and goes only to a client that accepts
//! its coding.

use std::io::Read;

use bytes::Bytes;
use http::HeaderMap;
use http::header;

/// The response's content codings, in the order they were applied; empty
/// for an identity body.
pub fn codings(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect()
}

/// Why a coded body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Undecodable {
    #[error("unknown content coding {0:?}")]
    Unknown(String),
    #[error("{coding} body is malformed: {why}")]
    Malformed { coding: String, why: String },
    #[error("decoded body is over {0} bytes")]
    TooBig(usize),
}

/// `data` with `codings` undone, last applied first; at most `limit` bytes
/// out, so a small body that inflates to gigabytes stops at the limit.
pub fn decode(codings: &[String], data: Bytes, limit: usize) -> Result<Bytes, Undecodable> {
    let mut out = data;
    for coding in codings.iter().rev() {
        let coded = out.clone();
        let input: &[u8] = &coded;
        let mut reader: Box<dyn Read + '_> = match coding.as_str() {
            "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(input)),
            // "deflate" is the zlib format (RFC 9110 §8.4.1.2); some servers
            // send raw deflate, which the zlib header check tells apart.
            "deflate" if zlib_header(input) => Box::new(flate2::read::ZlibDecoder::new(input)),
            "deflate" => Box::new(flate2::read::DeflateDecoder::new(input)),
            "br" => Box::new(brotli::Decompressor::new(input, 16 * 1024)),
            other => return Err(Undecodable::Unknown(other.to_owned())),
        };
        let mut buf = Vec::new();
        let read = (&mut reader)
            .take(limit as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Undecodable::Malformed {
                coding: coding.clone(),
                why: e.to_string(),
            })?;
        if read > limit {
            return Err(Undecodable::TooBig(limit));
        }
        drop(reader);
        out = Bytes::from(buf);
    }
    Ok(out)
}

fn zlib_header(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// Whether the client's `Accept-Encoding` lists every one of `codings` (or
/// `*`) with a non-zero weight. No field at all counts as identity only:
/// safer than RFC 9110's "anything goes" for clients that never decode.
pub fn accepts(req: &HeaderMap, codings: &[String]) -> bool {
    let mut listed: Vec<(String, bool)> = Vec::new();
    for item in req
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        // A malformed weight counts as 0, as in the gateway's own negotiation.
        let zero = parts
            .filter_map(|p| p.split_once('='))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .any(|(_, v)| v.trim().parse::<f32>().map_or(true, |q| q <= 0.0));
        listed.push((coding, !zero));
    }
    let ok = |c: &str| {
        let c = if c == "x-gzip" { "gzip" } else { c };
        listed
            .iter()
            .find(|(l, _)| l == c || (c == "gzip" && l == "x-gzip"))
            .or_else(|| listed.iter().find(|(l, _)| l == "*"))
            .is_some_and(|(_, ok)| *ok)
    };
    codings.iter().all(|c| ok(c))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use http::HeaderValue;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap().into()
    }

    fn list(s: &[&str]) -> Vec<String> {
        s.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn every_coding_we_know_decodes_and_the_rest_is_refused() {
        let plain = b"hello, hello, hello, hello".repeat(10);
        assert_eq!(
            decode(&list(&["gzip"]), gzip(&plain), 1 << 20).unwrap(),
            plain
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&plain).unwrap();
        let z = Bytes::from(z.finish().unwrap());
        assert_eq!(decode(&list(&["deflate"]), z, 1 << 20).unwrap(), plain);
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(&plain).unwrap();
        let raw = Bytes::from(raw.finish().unwrap());
        assert_eq!(decode(&list(&["deflate"]), raw, 1 << 20).unwrap(), plain);
        let br = crate::compress::encode_all(crate::encoding::Encoding::Brotli, 4, &plain).unwrap();
        assert_eq!(decode(&list(&["br"]), br.clone(), 1 << 20).unwrap(), plain);
        // Two codings, applied gzip then br: undone br then gzip.
        let both = crate::compress::encode_all(crate::encoding::Encoding::Brotli, 4, &gzip(&plain))
            .unwrap();
        assert_eq!(
            decode(&list(&["gzip", "br"]), both, 1 << 20).unwrap(),
            plain
        );
        assert!(matches!(
            decode(
                &list(&["gzip"]),
                Bytes::from_static(b"\x1f\x8bnope"),
                1 << 20
            ),
            Err(Undecodable::Malformed { .. })
        ));
        assert_eq!(
            decode(&list(&["zstd"]), Bytes::new(), 1 << 20),
            Err(Undecodable::Unknown("zstd".into()))
        );
        // A bomb stops at the limit.
        let bomb = gzip(&vec![0u8; 1 << 20]);
        assert_eq!(
            decode(&list(&["gzip"]), bomb, 4096),
            Err(Undecodable::TooBig(4096))
        );
    }

    #[test]
    fn codings_and_what_a_client_accepts() {
        let mut h = HeaderMap::new();
        h.append(
            "content-encoding",
            HeaderValue::from_static("gzip, identity"),
        );
        h.append("content-encoding", HeaderValue::from_static("BR"));
        assert_eq!(codings(&h), list(&["gzip", "br"]));
        let req = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("accept-encoding", HeaderValue::from_static(v));
            h
        };
        assert!(accepts(&req("gzip, br"), &list(&["gzip", "br"])));
        assert!(accepts(&req("x-gzip"), &list(&["gzip"])));
        assert!(accepts(&req("*"), &list(&["deflate"])));
        assert!(!accepts(&req("gzip;q=0"), &list(&["gzip"])));
        assert!(!accepts(&req("gzip;q=0.000, *"), &list(&["gzip"])));
        assert!(accepts(&req("gzip;q=0.5"), &list(&["gzip"])));
        assert!(!accepts(&req("br"), &list(&["gzip"])));
        assert!(!accepts(&HeaderMap::new(), &list(&["gzip"])));
    }
}
