"""The values plugins read and answer with, mirroring the Rust SDK's types.

Candidates are integer-only records; text about an endpoint (address, tags,
zone name) is fetched on demand through `Upstream`, so a plugin pays only for
what it reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional, Protocol, Union


class Candidate(Protocol):
    """One endpoint of the upstream at the moment of the call (see `wit/types.wit`)."""

    id: int
    key: int
    weight: int
    healthy: bool
    in_flight: int
    latency_ewma_us: int
    zone: int


@dataclass(frozen=True)
class FakeCandidate:
    """A `Candidate` made by hand (the tests' `FakeUpstream` makes these)."""

    id: int
    key: int
    weight: int = 1
    healthy: bool = True
    in_flight: int = 0
    latency_ewma_us: int = 0
    zone: int = 0


class HttpVersion(Enum):
    HTTP10 = 0
    HTTP11 = 1
    HTTP2 = 2
    HTTP3 = 3


@dataclass(frozen=True)
class HeaderEdit:
    """One edit to a header map: `set` replaces, `append` adds (for `set-cookie`), `remove` deletes."""

    kind: str
    name: str
    value: str = ""

    @staticmethod
    def set(name: str, value: str) -> "HeaderEdit":
        return HeaderEdit("set", name.lower(), value)

    @staticmethod
    def append(name: str, value: str) -> "HeaderEdit":
        return HeaderEdit("append", name.lower(), value)

    @staticmethod
    def remove(name: str) -> "HeaderEdit":
        return HeaderEdit("remove", name.lower())


@dataclass
class DirectResponse:
    """An answer instead of the upstream's; status 200..=599, body at most 64 KiB."""

    status: int
    headers: List[tuple] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str, value: str) -> "DirectResponse":
        self.headers.append((name.lower(), value))
        return self

    def text(self, body: str) -> "DirectResponse":
        self.body = body.encode("utf-8")
        return self.header("content-type", "text/plain; charset=utf-8")

    def check(self) -> None:
        """What the host checks; `FakeHost` calls it so tests fail like the gateway would."""
        if not 200 <= self.status <= 599:
            raise ValueError(f"direct response status {self.status} is outside 200..=599")
        if len(self.body) > 64 << 10:
            raise ValueError(f"direct response body of {len(self.body)} bytes is over 64 KiB")


@dataclass
class Forward:
    """Send the request to endpoint `endpoint` (a candidate's `id`), with header edits."""

    endpoint: int
    request_headers: List[HeaderEdit] = field(default_factory=list)
    response_headers: List[HeaderEdit] = field(default_factory=list)


@dataclass
class Respond:
    """Answer the client directly; nothing goes upstream."""

    response: DirectResponse


@dataclass(frozen=True)
class Unavailable:
    """No endpoint can take the request: the host answers 503."""


Decision = Union[Forward, Respond, Unavailable]
UNAVAILABLE = Unavailable()


def forward(candidate: Candidate) -> Forward:
    """Forward to `candidate` with no edits: the cheap, common case."""
    return Forward(candidate.id)


def forward_or_unavailable(candidate: Optional[Candidate]) -> Decision:
    return UNAVAILABLE if candidate is None else Forward(candidate.id)


def endpoint_of(decision: Decision) -> Optional[int]:
    """The endpoint a decision forwards to; None for respond or unavailable."""
    return decision.endpoint if isinstance(decision, Forward) else None


@dataclass
class Continue:
    """A filter's "carry on", after these edits (none is the cheap no-op)."""

    edits: List[HeaderEdit] = field(default_factory=list)


Action = Union[Continue, Respond]
PASS = Continue()


class ScaleDirection(Enum):
    UP = "up"
    DOWN = "down"
    HOLD = "hold"


@dataclass
class ScaleSnapshot:
    """What the gateway measured for one service over the last window."""

    service: str = "svc"
    at_ms: int = 0
    window_ms: int = 60_000
    current_replicas: int = 1
    healthy_replicas: int = 1
    request_rate: float = 0.0
    error_rate: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p90_ms: float = 0.0
    latency_p99_ms: float = 0.0
    in_flight: int = 0
    queue_depth: int = 0
    gateway_cpu: float = 0.0
    gateway_memory_bytes: int = 0
    service_cpu: Optional[float] = None
    service_memory: Optional[float] = None


@dataclass
class ScaleDecision:
    desired_replicas: int
    direction: ScaleDirection
    reason: str

    @staticmethod
    def new(current: int, desired: int, reason: str) -> "ScaleDecision":
        """`desired`, with the direction worked out from `current`."""
        d = ScaleDirection.UP if desired > current else ScaleDirection.DOWN if desired < current else ScaleDirection.HOLD
        return ScaleDecision(max(0, int(desired)), d, reason)
