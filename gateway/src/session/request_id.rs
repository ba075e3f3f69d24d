//! `X-Request-Id`: taken from the client only on listeners that trust it
//! (`trust-request-id: true`, e.g. behind a balancer that sets it), otherwise
//! generated — a UUIDv7, so IDs sort by time. Forwarded upstream, returned
//! to the client, written to the access log, readable by plugins as a header.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied ID kept; longer ones are replaced.
const MAX_LEN: usize = 200;

/// The request's ID, set in `headers` (a single value).
pub fn ensure(headers: &mut HeaderMap, trust: bool) -> HeaderValue {
    if trust
        && let Some(v) = headers.get(&X_REQUEST_ID)
        && !v.is_empty()
        && v.len() <= MAX_LEN
        && headers.get_all(&X_REQUEST_ID).iter().count() == 1
    {
        return v.clone();
    }
    let id = HeaderValue::from_bytes(&uuid_v7()).unwrap_or(HeaderValue::from_static("-"));
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
}

/// 64 random-looking bits: a per-process random key (std's hasher seed)
/// over a counter. Unique and unpredictable enough for IDs, not for secrets.
fn random64() -> u64 {
    static SEED: OnceLock<std::hash::RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = SEED.get_or_init(std::hash::RandomState::new).build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// 16 random bytes in base64, as a `Sec-WebSocket-Key` (RFC 6455 §4.1).
pub fn random_key() -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&random64().to_be_bytes());
    bytes[8..].copy_from_slice(&random64().to_be_bytes());
    let mut out = String::with_capacity(24);
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

/// RFC 9562 §5.7: 48 bits of Unix milliseconds, version 7, 74 random bits,
/// in its text form, written in place (no formatter: one per request).
fn uuid_v7() -> [u8; 36] {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        & 0xFFFF_FFFF_FFFF;
    let (a, b) = (random64(), random64());
    let hi = (ms << 16) | 0x7000 | (a & 0x0FFF);
    let lo = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    text((u128::from(hi) << 64) | u128::from(lo))
}

/// A UUID's 128 bits as 8-4-4-4-12 lower-case hex.
fn text(bits: u128) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    let mut nibble = 0;
    for (i, c) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        *c = HEX[((bits >> (124 - 4 * nibble)) & 0xF) as usize];
        nibble += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_v7_and_distinct() {
        let (a, b) = (uuid_v7(), uuid_v7());
        assert_ne!(a, b);
        let a = std::str::from_utf8(&a).unwrap();
        assert_eq!(&a[14..15], "7");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn the_text_form_is_8_4_4_4_12_hex() {
        for bits in [0u128, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210] {
            let want = format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                bits >> 96,
                (bits >> 80) & 0xFFFF,
                (bits >> 64) & 0xFFFF,
                (bits >> 48) & 0xFFFF,
                bits & 0xFFFF_FFFF_FFFF
            );
            assert_eq!(std::str::from_utf8(&text(bits)).unwrap(), want);
        }
    }

    #[test]
    fn client_ids_are_kept_only_when_trusted() {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc"));
        assert_eq!(ensure(&mut h.clone(), true), "abc");
        let id = ensure(&mut h, false);
        assert_ne!(id, "abc");
        assert_eq!(h.get(&X_REQUEST_ID), Some(&id));
    }
}
