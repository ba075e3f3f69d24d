"""Native tests: FakeHost plays the gateway; no component build needed."""

import ipaddress

import pytest

from app import Canary
from edgeward_sdk import UNAVAILABLE, ConfigError
from edgeward_sdk.testing import FakeEndpoint, FakeHost, FakeRequest, FakeUpstream


def upstream():
    """Two stable endpoints (ids 0, 1) and one canary (id 2)."""
    return (
        FakeUpstream("product")
        .with_endpoint("10.0.0.1:80")
        .with_endpoint("10.0.0.2:80")
        .with_(FakeEndpoint("10.0.0.9:80").tag("canary"))
    )


def client(i):
    return FakeRequest.get("/").with_client(ipaddress.IPv4Address(0x0A640000 + i))


def to_canary(host, r, req, up):
    return host.choose(r, req, up).endpoint == 2


def test_header_forces_either_side():
    host = FakeHost()
    r = host.router(Canary, {"percent": "50"})
    up = upstream()
    for i in range(50):
        assert to_canary(host, r, client(i).with_header("X-Canary", "1"), up)
        assert not to_canary(host, r, client(i).with_header("x-canary", "0"), up)


def test_a_stable_ten_percent_of_clients_go_to_canary():
    host = FakeHost()
    r = host.router(Canary, {})
    up = upstream()
    canary = [i for i in range(5_000) if to_canary(host, r, client(i), up)]
    assert 400 <= len(canary) <= 600, len(canary)
    other = host.router(Canary, {})
    assert all(to_canary(host, other, client(i), up) for i in canary[:100])


def test_stable_traffic_is_round_robin_over_stable_endpoints():
    host = FakeHost()
    r = host.router(Canary, {"percent": "0"})
    up = upstream()
    assert [host.choose(r, client(i), up).endpoint for i in range(4)] == [0, 1, 0, 1]


def test_falls_back_to_the_other_side_when_one_is_down():
    host = FakeHost()
    r = host.router(Canary, {})
    up = upstream()
    up.set_healthy(2, False)
    assert host.choose(r, client(1).with_header("x-canary", "1"), up).endpoint != 2
    up.set_healthy(2, True)
    up.set_healthy(0, False)
    up.set_healthy(1, False)
    assert host.choose(r, client(1).with_header("x-canary", "0"), up).endpoint == 2
    up.set_healthy(2, False)
    assert host.choose(r, client(1), up) == UNAVAILABLE


@pytest.mark.parametrize("bad,key", [(("percent", "150"), "percent"), (("percent", "lots"), "percent"),
                                     (("tag", " "), "tag"), (("precent", "5"), "precent")])
def test_config_errors_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        FakeHost().router(Canary, [bad])
