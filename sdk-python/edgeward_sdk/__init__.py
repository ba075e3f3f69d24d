"""Write Edgeward gateway plugins (routers, filters, scalers) in Python.

A plugin is a class; `export_router`/`export_filter`/`export_scaler` turns it
into the component's `WitWorld`; `python -m edgeward_sdk.build` builds the
component with componentize-py; `edgeward_sdk.testing.FakeHost` runs the same
class natively under pytest. Mirrors the Rust SDK (`edgeward-sdk`), including
its stable hashes, bit for bit."""

from . import clock, hash, log, select, state
from .config import Config, ConfigError
from .plugin import Filter, Router, Scaler, export_filter, export_router, export_scaler
from .request import Request, Response, Upstream
from .types import (
    PASS,
    UNAVAILABLE,
    Action,
    Candidate,
    Continue,
    Decision,
    DirectResponse,
    Forward,
    HeaderEdit,
    HttpVersion,
    Respond,
    ScaleDecision,
    ScaleDirection,
    ScaleSnapshot,
    Unavailable,
    endpoint_of,
    forward,
    forward_or_unavailable,
)

__version__ = "0.1.0"

__all__ = [
    "Action", "Candidate", "Config", "ConfigError", "Continue", "Decision", "DirectResponse",
    "Filter", "Forward", "HeaderEdit", "HttpVersion", "PASS", "Request", "Respond", "Response",
    "Router", "ScaleDecision", "ScaleDirection", "ScaleSnapshot", "Scaler", "UNAVAILABLE",
    "Unavailable", "Upstream", "clock", "endpoint_of", "export_filter", "export_router",
    "export_scaler", "forward", "forward_or_unavailable", "hash", "log", "select", "state",
]
