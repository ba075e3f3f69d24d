"""A canary router in Python: the same logic as examples/canary-plugin (Rust).

Endpoints tagged `canary` get every request with `X-Canary: 1` (none with
`X-Canary: 0`) and otherwise a stable share of clients (10 % by default),
chosen by a hash of the client address or of `client-header`. Round robin
within each side over healthy endpoints (cursors in host state); a side with
no healthy endpoint sends its requests to the other side.
"""

from edgeward_sdk import UNAVAILABLE, Config, ConfigError, Router, export_router, forward, hash, state

#: Resolution of the stable percentage: basis points, as in the Rust example.
BUCKETS = 10_000


class Canary(Router):
    def __init__(self, config: Config) -> None:
        config.allow_only(["tag", "percent", "header", "client-header"])
        percent = config.float_or("percent", 10.0)
        if not 0.0 <= percent <= 100.0:
            raise ConfigError(f"config `percent`: {percent:g} is outside 0..=100")
        self.tag = config.get_or("tag", "canary").strip()
        if not self.tag:
            raise ConfigError("config `tag`: must not be empty")
        self.share = round(percent * 100)
        self.header = config.get_or("header", "x-canary").strip().lower()
        ch = config.get("client-header")
        self.client_header = ch.strip().lower() if ch is not None else None

    def wants_canary(self, req) -> bool:
        v = req.header(self.header)
        if v is not None and v.strip() in ("1", "0"):
            return v.strip() == "1"
        value = req.header(self.client_header) if self.client_header else None
        key = hash.text(value.strip()) if value is not None else hash.ip(req.client_addr())
        return hash.bucket(key, BUCKETS) < self.share

    def choose(self, req, upstream, candidates):
        canary_ids = set(upstream.tagged(self.tag))
        wanted = self.wants_canary(req)
        for canary in (wanted, not wanted):
            side = [c for c in candidates if c.healthy and (c.id in canary_ids) == canary]
            if side:
                key = upstream.state_key("canary/canary" if canary else "canary/stable", candidates)
                return forward(side[state.next_index(key, len(side))])
        return UNAVAILABLE


WitWorld = export_router(Canary)
