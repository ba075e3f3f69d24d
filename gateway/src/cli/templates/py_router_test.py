import pytest

from app import Plugin
from edgeward_sdk import ConfigError
from edgeward_sdk.testing import FakeHost, FakeRequest, FakeUpstream


def test_rotates_over_healthy_endpoints():
    host = FakeHost()
    p = host.router(Plugin, {})
    up = FakeUpstream("app").with_endpoint("10.0.0.1:80").with_endpoint("10.0.0.2:80").with_endpoint("10.0.0.3:80")
    up.set_healthy(1, False)
    assert [host.choose(p, FakeRequest.get("/"), up).endpoint for _ in range(4)] == [0, 2, 0, 2]
    with pytest.raises(ConfigError):
        host.router(Plugin, {"typo": "1"})
