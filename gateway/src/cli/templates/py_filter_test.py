import pytest

from app import Plugin
from edgeward_sdk import PASS, ConfigError, Respond
from edgeward_sdk.testing import FakeHost, FakeRequest


def test_denies_the_configured_prefix_only():
    host = FakeHost()
    p = host.filter(Plugin, {"deny": "/private"})
    a = host.on_request(p, FakeRequest.get("/private/x"))
    assert isinstance(a, Respond) and a.response.status == 403
    assert host.on_request(p, FakeRequest.get("/public")) == PASS
    with pytest.raises(ConfigError):
        host.filter(Plugin, {"deny": "nope"})
