"""The component side: the gateway's imports as the SDK's host, and the SDK's
values converted to the bindings' at the boundary. Importable only inside a
componentize-py build (the `wit_world` package is generated there)."""

from __future__ import annotations

import ipaddress
from typing import Any, List

from componentize_py_types import Err
from wit_world.imports import clock as _clock
from wit_world.imports import log as _log
from wit_world.imports import state as _state
from wit_world.imports import types as _t

from .request import Request, Response, Upstream
from .state import StateError
from .types import (
    Continue,
    DirectResponse,
    Forward,
    HeaderEdit,
    HttpVersion,
    Respond,
    ScaleDecision,
    ScaleDirection,
    Unavailable,
)

_LEVELS = [_log.Level.TRACE, _log.Level.DEBUG, _log.Level.INFO, _log.Level.WARN, _log.Level.ERROR]


class _Host:
    counter_get = staticmethod(_state.counter_get)
    counter_add = staticmethod(_state.counter_add)
    counter_set = staticmethod(_state.counter_set)
    counter_compare_and_swap = staticmethod(_state.counter_compare_and_swap)
    kv_get = staticmethod(_state.kv_get)
    kv_delete = staticmethod(_state.kv_delete)
    monotonic_now = staticmethod(_clock.monotonic_now)
    wall_now = staticmethod(_clock.wall_now)

    @staticmethod
    def kv_set(key: str, value: bytes, ttl_ms: Any) -> None:
        try:
            _state.kv_set(key, value, ttl_ms)
        except Err as e:
            raise StateError("too-large" if e.value == _state.StateError.TOO_LARGE else "full") from None

    @staticmethod
    def log_enabled(level: int) -> bool:
        return _log.enabled(_LEVELS[int(level)])

    @staticmethod
    def log(level: int, message: str) -> None:
        _log.log(_LEVELS[int(level)], message)


HOST = _Host()


def log_fault(what: str, e: BaseException) -> None:
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    _log.log(_log.Level.ERROR, f"{what} raised {type(e).__name__}: {e}{where}")


def init_failed(e: BaseException) -> None:
    raise Err(str(e) or type(e).__name__)


class WasmRequest(Request):
    __slots__ = ("_r",)

    def __init__(self, r: Any) -> None:
        self._r = r

    def method(self) -> str: return self._r.method()
    def scheme(self) -> str: return self._r.scheme()
    def authority(self) -> Any: return self._r.authority()
    def path(self) -> str: return self._r.path()
    def query(self) -> Any: return self._r.query()
    def header(self, name: str) -> Any: return self._r.header(name)
    def header_all(self, name: str) -> List[str]: return self._r.header_all(name)
    def cookie(self, name: str) -> Any: return self._r.cookie(name)
    def route(self) -> str: return self._r.route()
    def http_version(self) -> HttpVersion: return HttpVersion(self._r.http_version().value)

    def client_addr(self) -> Any:
        a = self._r.client_addr()
        if isinstance(a, _t.IpAddress_Ipv4):
            return ipaddress.IPv4Address(bytes(a.value))
        return ipaddress.IPv6Address(b"".join(x.to_bytes(2, "big") for x in a.value))


class WasmResponse(Response):
    __slots__ = ("_r",)

    def __init__(self, r: Any) -> None:
        self._r = r

    def status(self) -> int: return self._r.status()
    def header(self, name: str) -> Any: return self._r.header(name)
    def header_all(self, name: str) -> List[str]: return self._r.header_all(name)


class WasmUpstream(Upstream):
    __slots__ = ("_u",)

    def __init__(self, u: Any) -> None:
        self._u = u

    def name(self) -> str: return self._u.name()
    def address(self, id: int) -> Any: return self._u.address(id)
    def zone_name(self, zone: int) -> Any: return self._u.zone_name(zone)
    def local_zone(self) -> int: return self._u.local_zone()
    def tags(self, id: int) -> List[str]: return self._u.tags(id)
    def tagged(self, tag: str) -> List[int]: return self._u.tagged(tag)


def _edits(edits: List[HeaderEdit]) -> List[Any]:
    out: List[Any] = []
    for e in edits:
        if e.kind == "set":
            out.append(_t.HeaderEdit_Set(_t.Header(e.name, e.value)))
        elif e.kind == "append":
            out.append(_t.HeaderEdit_Append(_t.Header(e.name, e.value)))
        else:
            out.append(_t.HeaderEdit_Remove(e.name))
    return out


def _response(r: DirectResponse) -> Any:
    return _t.DirectResponse(r.status, [_t.Header(n, v) for n, v in r.headers], bytes(r.body))


def decision(d: Any) -> Any:
    if isinstance(d, Forward):
        return _t.Decision_Forward(_t.Forward(d.endpoint, _edits(d.request_headers), _edits(d.response_headers)))
    if isinstance(d, Respond):
        return _t.Decision_Respond(_response(d.response))
    if isinstance(d, Unavailable):
        return _t.Decision_Unavailable()
    raise TypeError(f"choose returned {type(d).__name__}, not a Decision (Forward, Respond, Unavailable)")


def action(a: Any) -> Any:
    if isinstance(a, Continue):
        return _t.Action_Continue(_edits(a.edits))
    if isinstance(a, Respond):
        return _t.Action_Respond(_response(a.response))
    raise TypeError(f"filter returned {type(a).__name__}, not an Action (Continue, Respond)")


_DIRECTIONS = {
    ScaleDirection.UP: _t.ScaleDirection.UP,
    ScaleDirection.DOWN: _t.ScaleDirection.DOWN,
    ScaleDirection.HOLD: _t.ScaleDirection.HOLD,
}


def scale_decision(d: ScaleDecision) -> Any:
    return _t.ScaleDecision(int(d.desired_replicas), _DIRECTIONS[d.direction], d.reason)
