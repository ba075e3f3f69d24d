"""The three roles and `export_*`, which turn a plugin class into the
component's `WitWorld`.

Write `WitWorld = export_router(MyRouter)` at the bottom of the app module:
componentize-py builds the component from that name. `__init__(config)` is
`init` (raise `ConfigError` for a bad config: it becomes the plugin's load
error); the plugin object lives as long as the instance."""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence, Type, TypeVar

from .config import Config
from .request import Request, Response, Upstream
from .types import Action, Candidate, Decision, ScaleDecision, ScaleSnapshot


class Router:
    """Picks the endpoint for each request."""

    def __init__(self, config: Config) -> None:
        config.allow_only([])

    def choose(self, req: Request, upstream: Upstream, candidates: Sequence[Candidate]) -> Decision:
        raise NotImplementedError


class Filter:
    """Sees a route's requests before routing and its responses on the way back."""

    def __init__(self, config: Config) -> None:
        config.allow_only([])

    def on_request(self, req: Request) -> Action:
        raise NotImplementedError

    def on_response(self, req: Request, resp: Response) -> Action:
        raise NotImplementedError


class Scaler:
    """Turns a service's measurements into a replica count."""

    def __init__(self, config: Config) -> None:
        config.allow_only([])

    def evaluate(self, snapshot: ScaleSnapshot) -> ScaleDecision:
        raise NotImplementedError


T = TypeVar("T")


try:
    # Inside a componentize-py build this runs at pre-initialisation, while
    # module files can still be read: at run time the gateway grants no
    # filesystem, so a module first imported during a call cannot be loaded.
    from . import _wasm as _bindings
except ImportError:  # natively: no bindings, tests use testing.FakeHost
    _bindings = None


def _wasm() -> Any:
    if _bindings is None:
        raise RuntimeError("no component bindings: natively, call plugins through edgeward_sdk.testing.FakeHost")
    return _bindings


def _guarded(what: str, call: Callable[..., Any]) -> Callable[..., Any]:
    """An exception would trap with its traceback on stderr, which the host
    does not keep: send it through the host log first, then trap."""

    def run(*args: Any) -> Any:
        try:
            return call(*args)
        except Exception as e:
            _wasm().log_fault(what, e)
            raise

    return run


def _init(cls: Type[T], holder: Dict[str, T], config: Any) -> None:
    try:
        holder["plugin"] = cls(Config(config))  # type: ignore[call-arg]
    except Exception as e:
        _wasm().init_failed(e)


def export_router(cls: Type[Router]) -> type:
    holder: Dict[str, Router] = {}

    class WitWorld:
        def init(self, config: Any) -> None:
            _init(cls, holder, config)

        def choose(self, req: Any, target: Any, candidates: Any) -> Any:
            w = _wasm()
            d = holder["plugin"].choose(w.WasmRequest(req), w.WasmUpstream(target), candidates)
            return w.decision(d)

    WitWorld.choose = _guarded("choose", WitWorld.choose)  # type: ignore[method-assign]
    return WitWorld


def export_filter(cls: Type[Filter]) -> type:
    holder: Dict[str, Filter] = {}

    class WitWorld:
        def init(self, config: Any) -> None:
            _init(cls, holder, config)

        def on_request(self, req: Any) -> Any:
            w = _wasm()
            return w.action(holder["plugin"].on_request(w.WasmRequest(req)))

        def on_response(self, req: Any, resp: Any) -> Any:
            w = _wasm()
            return w.action(holder["plugin"].on_response(w.WasmRequest(req), w.WasmResponse(resp)))

    WitWorld.on_request = _guarded("on-request", WitWorld.on_request)  # type: ignore[method-assign]
    WitWorld.on_response = _guarded("on-response", WitWorld.on_response)  # type: ignore[method-assign]
    return WitWorld


def export_scaler(cls: Type[Scaler]) -> type:
    holder: Dict[str, Scaler] = {}

    class WitWorld:
        def init(self, config: Any) -> None:
            _init(cls, holder, config)

        def evaluate(self, snapshot: Any) -> Any:
            return _wasm().scale_decision(holder["plugin"].evaluate(snapshot))

    WitWorld.evaluate = _guarded("evaluate", WitWorld.evaluate)  # type: ignore[method-assign]
    return WitWorld
