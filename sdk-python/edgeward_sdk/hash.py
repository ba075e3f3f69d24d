"""Stable hashing, bit for bit the Rust SDK's (`edgeward_sdk::hash`).

The same input gives the same number on every node, build and run, and in
every SDK language, so a client hashed by a Python router lands where a Rust
router would put it. `Candidate.key` is `fnv1a64` of the endpoint's address.
"""

from __future__ import annotations

import ipaddress
from typing import Union

_MASK = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x00000100000001B3

IpLike = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64 bit, as an unsigned int."""
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK
    return h


def mix64(x: int) -> int:
    """The SplitMix64 finalizer: spreads FNV's weak high bits on short inputs."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def ip(addr: IpLike) -> int:
    """A stable, well-mixed key for a client address; IPv4-mapped IPv6 hashes as IPv4."""
    a = ipaddress.ip_address(addr) if isinstance(addr, str) else addr
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return mix64(fnv1a64(a.packed))


def text(s: str) -> int:
    """A stable, well-mixed key for any text (a header value, a user id)."""
    return mix64(fnv1a64(s.encode("utf-8")))


def bucket(key: int, buckets: int) -> int:
    """Map `key` to one of `buckets`, uniformly and stably: `bucket(k, 100) < 10` is a stable 10 %."""
    if buckets <= 0:
        raise ValueError("bucket count must be positive")
    return (mix64(key & _MASK) * buckets) >> 64
