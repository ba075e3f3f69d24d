import pytest

from app import Plugin
from edgeward_sdk import ConfigError, ScaleDirection, ScaleSnapshot
from edgeward_sdk.testing import FakeHost


def test_one_replica_per_target_rps():
    host = FakeHost()
    p = host.scaler(Plugin, {"target": "100"})
    d = host.evaluate(p, ScaleSnapshot(request_rate=250.0, current_replicas=2))
    assert (d.desired_replicas, d.direction) == (3, ScaleDirection.UP)
    with pytest.raises(ConfigError):
        host.scaler(Plugin, {"target": "0"})
