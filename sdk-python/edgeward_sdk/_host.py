"""Where state, log and clock calls go: the gateway inside a component, or a
`testing.FakeHost` under pytest. Kept in one place so the rest of the SDK is
the same code in both."""

from __future__ import annotations

from typing import Any, Optional

_current: Optional[Any] = None


def current() -> Any:
    global _current
    if _current is None:
        try:
            from . import _wasm  # only importable inside a component build
        except ImportError as e:
            raise RuntimeError(
                "no host: inside a component the gateway is the host; in tests, "
                "call through edgeward_sdk.testing.FakeHost (host.router(...), host.run(...))"
            ) from e
        _current = _wasm.HOST
    return _current


def install(host: Any) -> Optional[Any]:
    """Make `host` the current host; returns the previous one."""
    global _current
    previous, _current = _current, host
    return previous
