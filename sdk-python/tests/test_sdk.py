"""The SDK itself: hashes against the known answers shared with the Rust SDK,
config getters, state semantics and the export glue, under FakeHost."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeward_sdk import Config, ConfigError, Router, export_router, forward, hash, log, state  # noqa: E402
from edgeward_sdk.testing import FakeHost, FakeRequest, FakeUpstream  # noqa: E402

VECTORS = Path(__file__).resolve().parents[2] / "sdk" / "tests" / "hash-vectors.tsv"


def test_hashes_match_the_known_answers_shared_with_the_rust_sdk():
    n = 0
    for line in VECTORS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        f, given, want = line.split("\t")
        if f == "fnv1a64":
            got = hash.fnv1a64(given.encode())
        elif f == "text":
            got = hash.text(given)
        elif f == "ip":
            got = hash.ip(given)
        elif f == "bucket":
            k, b = given.split(" ")
            got = hash.bucket(int(k), int(b))
        else:
            pytest.fail(f"unknown function {f}")
        assert got == int(want), line
        n += 1
    assert n >= 20


def test_config_getters_name_the_key_and_suggest_the_closest():
    c = Config([("percent", "ten"), ("ttl", "90s"), ("sticky", "yes")])
    with pytest.raises(ConfigError, match="`percent`.*`ten`"):
        c.float_or("percent", 1.0)
    assert c.duration_ms("ttl") == 90_000
    assert c.bool_or("sticky", False)
    assert c.int_or("missing", 7) == 7
    with pytest.raises(ConfigError, match="did you mean `cookie`"):
        Config([("cokie", "x")]).allow_only(["cookie", "max-age"])
    with pytest.raises(ConfigError, match="ms, s, m, h or d"):
        Config([("d", "5 parsecs")]).duration_ms("d")


def test_state_is_shared_and_bounded_like_the_host():
    host = FakeHost(max_entries=2)

    def body():
        assert [state.next_index("rr", 3) for _ in range(4)] == [0, 1, 2, 0]
        assert state.counter_compare_and_swap("c", 0, 5)
        assert state.counter_get("c") == 5
        with pytest.raises(state.StateError):
            state.kv_set("third", "x")

    host.run(body)
    h = FakeHost()

    def ttl():
        state.kv_set("k", "v", ttl_ms=1000)
        assert state.kv_get_str("k") == "v"
        h.advance(1000)
        assert state.kv_get("k") is None
        with pytest.raises(state.StateError):
            state.kv_set("x" * 257, "v")
        assert state.counter_add("w", (1 << 63) - 1) == (1 << 63) - 1
        assert state.counter_add("w", 1) == -(1 << 63)

    h.run(ttl)


class Rr(Router):
    def choose(self, req, upstream, candidates):
        log.info("choosing")
        return forward(candidates[state.next_index(upstream.state_key("rr", candidates), len(candidates))])


def test_routers_share_cursors_through_the_host():
    host = FakeHost()
    r = host.router(Rr, {})
    up = FakeUpstream("app").with_endpoint("10.0.0.1:80").with_endpoint("10.0.0.2:80")
    assert [host.choose(r, FakeRequest.get("/"), up).endpoint for _ in range(3)] == [0, 1, 0]
    assert host.counters["rr/app"] == 3
    assert host.logs[0] == (log.Level.INFO, "choosing")
    with pytest.raises(ConfigError, match="unknown key `typo`"):
        host.router(Rr, {"typo": "1"})


def test_export_router_builds_the_component_world_class():
    world = export_router(Rr)
    assert callable(world.init) and callable(world.choose)


def test_mapped_ipv6_hashes_like_ipv4():
    assert hash.ip("::ffff:10.1.2.3") == hash.ip("10.1.2.3")
    assert hash.ip(FakeRequest().with_client("10.1.2.3").client_addr()) == hash.ip("10.1.2.3")
    assert hash.ip("::1") != hash.ip("10.1.2.3")
