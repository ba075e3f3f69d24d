"""State shared by every instance of the plugin, owned by the host.

Instances are pooled, run concurrently and are thrown away after a fault, so
anything that must outlive one call (a round-robin cursor, an affinity table,
a sustain window) lives here, never in a module global. Each operation is
atomic on its own. Keys are per plugin: put the upstream name in keys that
are per upstream (`Upstream.state_key`)."""

from __future__ import annotations

from typing import Optional

from ._host import current

MAX_KEY_LEN = 256
MAX_VALUE_LEN = 4096
_I64 = 1 << 64


class StateError(Exception):
    """The host refused a write: `too-large` or `full`."""


def _wrap(v: int) -> int:
    v &= _I64 - 1
    return v - _I64 if v >= 1 << 63 else v


def counter_get(key: str) -> int:
    """Counter `key`; 0 if never written."""
    return current().counter_get(key)


def counter_add(key: str, delta: int) -> int:
    """Add `delta` (a signed 64-bit value) to counter `key`; returns the new value, wrapping."""
    return current().counter_add(key, _wrap(delta))


def counter_set(key: str, value: int) -> None:
    current().counter_set(key, _wrap(value))


def counter_compare_and_swap(key: str, expected: int, new: int) -> bool:
    """Set `key` to `new` if it holds `expected` (a missing counter holds 0)."""
    return current().counter_compare_and_swap(key, _wrap(expected), _wrap(new))


def next_index(key: str, n: int) -> int:
    """A shared round-robin cursor, 0, 1, 2, … across all instances, modulo `n` (0 when `n` is 0)."""
    if n <= 0:
        return 0
    return (counter_add(key, 1) - 1) % n


def kv_get(key: str) -> Optional[bytes]:
    """The value under `key`; None if absent or expired."""
    return current().kv_get(key)


def kv_get_str(key: str) -> Optional[str]:
    v = kv_get(key)
    if v is None:
        return None
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        return None


def kv_set(key: str, value: bytes | str, ttl_ms: Optional[int] = None) -> None:
    """Store `value` under `key`, expiring after `ttl_ms` (or living until evicted).
    Raises `StateError` when the host refuses."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    current().kv_set(key, bytes(value), ttl_ms)


def kv_delete(key: str) -> bool:
    """Remove `key`; returns whether it was present."""
    return current().kv_delete(key)
