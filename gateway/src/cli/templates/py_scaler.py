# edgeward-world: scaler
"""{{name}}: an Edgeward scaler. One replica per `target` requests per second
(default 50), at least one."""

import math

from edgeward_sdk import Config, ConfigError, ScaleDecision, Scaler, export_scaler


class Plugin(Scaler):
    def __init__(self, config: Config) -> None:
        config.allow_only(["target"])
        self.target = config.float_or("target", 50.0)
        if not self.target > 0:
            raise ConfigError(f"config `target`: {self.target:g} must be positive")

    def evaluate(self, s):
        desired = max(1, math.ceil(s.request_rate / self.target))
        return ScaleDecision.new(s.current_replicas, desired, f"{s.request_rate:.0f} rps / {self.target:g} per replica")


WitWorld = export_scaler(Plugin)
