//! Stable hashing: the same input gives the same number on every node, every
//! build and every run (unlike `std`'s randomly seeded `HashMap` hasher), so
//! hash-based affinity survives restarts and is shared across a region.

use std::hash::Hasher;
use std::net::IpAddr;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bit. The host computes [`Candidate::key`](crate::Candidate::key)
/// with exactly this over the endpoint's address text.
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

/// FNV-1a as a [`Hasher`], for hashing composite keys stably.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self(FNV_OFFSET)
    }
}

impl Hasher for Fnv1a64 {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
}

/// A strong 64-bit mixer (the SplitMix64 finalizer). FNV alone spreads short
/// inputs such as IP addresses poorly in its high bits; run it through this
/// before taking a modulus or comparing hashes.
pub const fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A stable, well-mixed key for a client address. IPv4 and IPv4-mapped IPv6
/// addresses hash the same.
pub fn ip(addr: IpAddr) -> u64 {
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    mix64(match addr {
        IpAddr::V4(v4) => fnv1a64(&v4.octets()),
        IpAddr::V6(v6) => fnv1a64(&v6.octets()),
    })
}

/// A stable, well-mixed key for any text (a header value, a user id).
pub fn text(s: &str) -> u64 {
    mix64(fnv1a64(s.as_bytes()))
}

/// Map a key to one of `buckets` buckets, uniformly and stably.
/// `bucket(k, 100) < 10` selects a stable 10 % of keys.
///
/// # Panics
/// If `buckets` is 0.
pub fn bucket(key: u64, buckets: u64) -> u64 {
    assert!(buckets > 0, "bucket count must be positive");
    // Multiply-shift instead of `%`: unbiased enough and uses the high bits.
    ((u128::from(mix64(key)) * u128::from(buckets)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        let mut h = Fnv1a64::default();
        h.write(b"foo");
        h.write(b"bar");
        assert_eq!(h.finish(), fnv1a64(b"foobar"));
    }

    #[test]
    fn mapped_ipv6_hashes_like_ipv4() {
        let v4 = Ipv4Addr::new(10, 1, 2, 3);
        assert_eq!(ip(IpAddr::V4(v4)), ip(IpAddr::V6(v4.to_ipv6_mapped())));
        assert_ne!(ip(IpAddr::V4(v4)), ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }

    #[test]
    fn buckets_are_roughly_uniform() {
        let mut counts = [0u32; 10];
        for i in 0..100_000u64 {
            counts[bucket(i, 10) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..=10_500).contains(&c), "{counts:?}");
        }
    }
}
