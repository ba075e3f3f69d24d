"""Time as the host sees it (a fake clock under `testing.FakeHost`)."""

from ._host import current


def monotonic_ns() -> int:
    """Nanoseconds on a clock shared by every instance; for durations only."""
    return current().monotonic_now()


def wall_ns() -> int:
    """Nanoseconds since the Unix epoch (UTC); can jump."""
    return current().wall_now()
