"""What a plugin reads: the request, the upstream response, the upstream.

Each method is one host call that copies only what it returns: read only what
the decision needs. Inside a component these wrap the gateway's resources;
under pytest `testing.FakeRequest`/`FakeUpstream` implement them."""

from __future__ import annotations

import ipaddress
from typing import Dict, List, Optional, Sequence, Union

from .hash import mix64
from .types import Candidate, HttpVersion

IpAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class Request:
    """The downstream request, read-only, valid for one call."""

    def method(self) -> str: raise NotImplementedError
    def scheme(self) -> str: raise NotImplementedError
    def authority(self) -> Optional[str]: raise NotImplementedError
    def path(self) -> str: raise NotImplementedError
    def query(self) -> Optional[str]: raise NotImplementedError
    def header(self, name: str) -> Optional[str]: raise NotImplementedError
    def header_all(self, name: str) -> List[str]: raise NotImplementedError
    def cookie(self, name: str) -> Optional[str]: raise NotImplementedError
    def client_addr(self) -> IpAddress: raise NotImplementedError
    def http_version(self) -> HttpVersion: raise NotImplementedError
    def route(self) -> str: raise NotImplementedError


class Response:
    """The upstream response, read-only, valid for one `on_response` call."""

    def status(self) -> int: raise NotImplementedError
    def header(self, name: str) -> Optional[str]: raise NotImplementedError
    def header_all(self, name: str) -> List[str]: raise NotImplementedError


# Upstream names by endpoint-set fingerprint: a per-instance cache of host
# data (losing it costs one host call), as in the Rust SDK.
_NAMES: Dict[int, str] = {}


class Upstream:
    """The upstream a router chooses for, valid for one `choose` call."""

    def name(self) -> str: raise NotImplementedError
    def address(self, id: int) -> Optional[str]: raise NotImplementedError
    def zone_name(self, zone: int) -> Optional[str]: raise NotImplementedError
    def local_zone(self) -> int: raise NotImplementedError
    def tags(self, id: int) -> List[str]: raise NotImplementedError
    def tagged(self, tag: str) -> List[int]: raise NotImplementedError

    def state_key(self, prefix: str, candidates: Sequence[Candidate]) -> str:
        """`"{prefix}/{upstream name}"`, the name fetched once per endpoint set (as the Rust SDK does)."""
        fp = len(candidates)
        for c in candidates:
            fp = mix64(fp ^ c.key)
        name = _NAMES.get(fp)
        if name is None:
            if len(_NAMES) >= 64:
                _NAMES.clear()
            name = _NAMES[fp] = self.name()
        return f"{prefix}/{name}"
