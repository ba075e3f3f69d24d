"""Run plugin logic natively under pytest, as the Rust SDK's `testing::FakeHost`:
a fake host plays the gateway (state, clock, logs, and the checks the gateway
makes on answers), so tests need no component build.

    host = FakeHost()
    router = host.router(Canary, {"percent": "50"})
    up = FakeUpstream("app").with_endpoint("10.0.0.1:80").with_(FakeEndpoint("10.0.0.9:80").tag("canary"))
    assert host.choose(router, FakeRequest.get("/"), up).endpoint == 1
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Type, TypeVar, Union

from . import _host
from .config import Config
from .hash import fnv1a64
from .log import Level
from .request import IpAddress, Request, Response, Upstream
from .state import MAX_KEY_LEN, MAX_VALUE_LEN, StateError
from .types import (
    Action,
    Continue,
    Decision,
    FakeCandidate,
    Forward,
    HttpVersion,
    Respond,
    ScaleDecision,
    ScaleSnapshot,
    Unavailable,
)

T = TypeVar("T")
_I64 = 1 << 64


def _i64(v: int) -> int:
    v &= _I64 - 1
    return v - _I64 if v >= 1 << 63 else v


ConfigLike = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]


class FakeHost:
    """The gateway, in process. State, clock and logs are this object's; calls
    made through it (`router`, `choose`, `run`, …) see it as the host."""

    def __init__(self, max_entries: int = 10_000, log_level: Level = Level.DEBUG) -> None:
        self.counters: Dict[str, int] = {}
        self.kv: Dict[str, Tuple[bytes, Optional[int]]] = {}
        self.max_entries = max_entries
        self.log_level = log_level
        self.logs: List[Tuple[Level, str]] = []
        self.now_ns = 1_000_000_000
        self.wall_ns = 1_700_000_000 * 1_000_000_000

    # --- the host interfaces -------------------------------------------------
    def _key(self, key: str) -> None:
        if len(key.encode()) > MAX_KEY_LEN:
            raise StateError("too-large")

    def counter_get(self, key: str) -> int:
        return self.counters.get(key, 0)

    def counter_add(self, key: str, delta: int) -> int:
        self._key(key)
        self._room(key)
        v = _i64(self.counters.get(key, 0) + delta)
        self.counters[key] = v
        return v

    def counter_set(self, key: str, value: int) -> None:
        self._key(key)
        self._room(key)
        self.counters[key] = _i64(value)

    def counter_compare_and_swap(self, key: str, expected: int, new: int) -> bool:
        if self.counters.get(key, 0) != expected:
            return False
        self.counter_set(key, new)
        return True

    def _live(self, key: str) -> Optional[bytes]:
        e = self.kv.get(key)
        if e is None:
            return None
        value, expires = e
        if expires is not None and self.now_ns >= expires:
            del self.kv[key]
            return None
        return value

    def kv_get(self, key: str) -> Optional[bytes]:
        return self._live(key)

    def kv_set(self, key: str, value: bytes, ttl_ms: Optional[int]) -> None:
        self._key(key)
        if len(value) > MAX_VALUE_LEN:
            raise StateError("too-large")
        self._room(key)
        self.kv[key] = (bytes(value), None if ttl_ms is None else self.now_ns + ttl_ms * 1_000_000)

    def kv_delete(self, key: str) -> bool:
        present = self._live(key) is not None
        self.kv.pop(key, None)
        return present

    def _room(self, key: str) -> None:
        if key not in self.counters and key not in self.kv and len(self.counters) + len(self.kv) >= self.max_entries:
            raise StateError("full")

    def monotonic_now(self) -> int:
        return self.now_ns

    def wall_now(self) -> int:
        return self.wall_ns

    def log_enabled(self, level: Level) -> bool:
        return int(level) >= int(self.log_level)

    def log(self, level: Level, message: str) -> None:
        if self.log_enabled(level):
            self.logs.append((Level(int(level)), message[:1024]))

    # --- driving a plugin ---------------------------------------------------
    def run(self, f: Callable[[], T]) -> T:
        """Call `f` with this host installed."""
        previous = _host.install(self)
        try:
            return f()
        finally:
            _host.install(previous)

    def _make(self, cls: Type[T], config: ConfigLike) -> T:
        pairs = list(config.items()) if isinstance(config, Mapping) else list(config or [])
        return self.run(lambda: cls(Config(pairs)))  # type: ignore[call-arg]

    router = _make
    filter = _make
    scaler = _make

    def choose(self, router: Any, req: "FakeRequest", upstream: "FakeUpstream") -> Decision:
        """One `choose` call with the candidates the gateway would pass; checks
        the answer as the gateway does (an unknown id is a plugin error)."""
        candidates = upstream.candidates()
        d = self.run(lambda: router.choose(req, upstream, candidates))
        if isinstance(d, Forward):
            if not any(c.id == d.endpoint for c in candidates):
                raise AssertionError(f"choose forwarded to id {d.endpoint}, not among the candidates")
        elif isinstance(d, Respond):
            d.response.check()
        elif not isinstance(d, Unavailable):
            raise AssertionError(f"choose returned {d!r}, not a Decision")
        return d

    def choose_address(self, router: Any, req: "FakeRequest", upstream: "FakeUpstream") -> Optional[str]:
        d = self.choose(router, req, upstream)
        return upstream.address(d.endpoint) if isinstance(d, Forward) else None

    def on_request(self, flt: Any, req: "FakeRequest") -> Action:
        return self._action(self.run(lambda: flt.on_request(req)))

    def on_response(self, flt: Any, req: "FakeRequest", resp: "FakeResponse") -> Action:
        return self._action(self.run(lambda: flt.on_response(req, resp)))

    @staticmethod
    def _action(a: Any) -> Action:
        if isinstance(a, Respond):
            a.response.check()
        elif not isinstance(a, Continue):
            raise AssertionError(f"filter returned {a!r}, not an Action")
        return a

    def evaluate(self, scaler: Any, snapshot: ScaleSnapshot) -> ScaleDecision:
        return self.run(lambda: scaler.evaluate(snapshot))

    def advance(self, ms: float) -> None:
        """Move both clocks forward (TTL entries expire)."""
        self.now_ns += int(ms * 1_000_000)
        self.wall_ns += int(ms * 1_000_000)


class FakeRequest(Request):
    """A request as a plugin sees it. Builders return the request, so they chain."""

    def __init__(self, method: str = "GET", target: str = "/") -> None:
        self._method = method
        self._scheme = "http"
        self._authority: Optional[str] = "example.test"
        self._headers: List[Tuple[str, str]] = []
        self._client: IpAddress = ipaddress.IPv4Address("192.0.2.1")
        self._version = HttpVersion.HTTP11
        self._route = "default"
        self.with_target(target)

    @staticmethod
    def get(target: str = "/") -> "FakeRequest":
        return FakeRequest("GET", target)

    def with_target(self, target: str) -> "FakeRequest":
        path, sep, query = target.partition("?")
        self._path, self._query = path or "/", (query if sep else None)
        return self

    def with_method(self, method: str) -> "FakeRequest":
        self._method = method
        return self

    def with_header(self, name: str, value: str) -> "FakeRequest":
        self._headers.append((name.lower(), value))
        return self

    def with_cookie(self, name: str, value: str) -> "FakeRequest":
        return self.with_header("cookie", f"{name}={value}")

    def with_client(self, addr: Union[str, IpAddress]) -> "FakeRequest":
        self._client = ipaddress.ip_address(addr) if isinstance(addr, str) else addr
        return self

    def with_route(self, route: str) -> "FakeRequest":
        self._route = route
        return self

    def method(self) -> str: return self._method
    def scheme(self) -> str: return self._scheme
    def authority(self) -> Optional[str]: return self._authority
    def path(self) -> str: return self._path
    def query(self) -> Optional[str]: return self._query
    def client_addr(self) -> IpAddress: return self._client
    def http_version(self) -> HttpVersion: return self._version
    def route(self) -> str: return self._route

    def header(self, name: str) -> Optional[str]:
        all_ = self.header_all(name)
        return all_[0] if all_ else None

    def header_all(self, name: str) -> List[str]:
        n = name.lower()
        return [v for k, v in self._headers if k == n]

    def cookie(self, name: str) -> Optional[str]:
        for line in self.header_all("cookie"):
            for pair in line.split(";"):
                k, sep, v = pair.strip().partition("=")
                if sep and k == name:
                    return v
        return None


class FakeResponse(Response):
    def __init__(self, status: int = 200) -> None:
        self._status = status
        self._headers: List[Tuple[str, str]] = []

    def with_header(self, name: str, value: str) -> "FakeResponse":
        self._headers.append((name.lower(), value))
        return self

    def status(self) -> int: return self._status

    def header(self, name: str) -> Optional[str]:
        all_ = self.header_all(name)
        return all_[0] if all_ else None

    def header_all(self, name: str) -> List[str]:
        return [v for k, v in self._headers if k == name.lower()]


@dataclass
class FakeEndpoint:
    address: str
    weight: int = 1
    healthy: bool = True
    in_flight: int = 0
    latency_ewma_us: int = 0
    zone: Optional[str] = None
    tags: List[str] = field(default_factory=list)

    def tag(self, tag: str) -> "FakeEndpoint":
        self.tags.append(tag)
        return self


class FakeUpstream(Upstream):
    """An upstream as a router sees it: ids are indexes in insertion order,
    keys FNV-1a 64 of the address, as in the gateway."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.endpoints: List[FakeEndpoint] = []
        self.local_zone_name: Optional[str] = None

    def with_endpoint(self, address: str) -> "FakeUpstream":
        return self.with_(FakeEndpoint(address))

    def with_(self, endpoint: FakeEndpoint) -> "FakeUpstream":
        self.endpoints.append(endpoint)
        return self

    def set_healthy(self, id: int, healthy: bool) -> None:
        self.endpoints[id].healthy = healthy

    def _zones(self) -> List[str]:
        zones: List[str] = []
        for z in [self.local_zone_name] + [e.zone for e in self.endpoints]:
            if z is not None and z not in zones:
                zones.append(z)
        return zones

    def candidates(self) -> List[FakeCandidate]:
        zones = self._zones()
        return [
            FakeCandidate(
                id=i,
                key=fnv1a64(e.address.encode()),
                weight=e.weight,
                healthy=e.healthy,
                in_flight=e.in_flight,
                latency_ewma_us=e.latency_ewma_us,
                zone=zones.index(e.zone) + 1 if e.zone is not None else 0,
            )
            for i, e in enumerate(self.endpoints)
        ]

    def name(self) -> str: return self._name

    def address(self, id: int) -> Optional[str]:
        return self.endpoints[id].address if 0 <= id < len(self.endpoints) else None

    def zone_name(self, zone: int) -> Optional[str]:
        zones = self._zones()
        return zones[zone - 1] if 1 <= zone <= len(zones) else None

    def local_zone(self) -> int:
        return self._zones().index(self.local_zone_name) + 1 if self.local_zone_name else 0

    def tags(self, id: int) -> List[str]:
        return list(self.endpoints[id].tags) if 0 <= id < len(self.endpoints) else []

    def tagged(self, tag: str) -> List[int]:
        return [i for i, e in enumerate(self.endpoints) if tag in e.tags]
