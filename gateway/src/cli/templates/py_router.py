# edgeward-world: router
"""{{name}}: an Edgeward router. Round robin over the healthy endpoints, with
the cursor in host state so every instance shares it."""

from edgeward_sdk import UNAVAILABLE, Config, Router, export_router, forward, select, state


class Plugin(Router):
    def __init__(self, config: Config) -> None:
        config.allow_only([])

    def choose(self, req, upstream, candidates):
        healthy = list(select.healthy(candidates))
        if not healthy:
            return UNAVAILABLE
        return forward(healthy[state.next_index(upstream.state_key("rr", candidates), len(healthy))])


WitWorld = export_router(Plugin)
