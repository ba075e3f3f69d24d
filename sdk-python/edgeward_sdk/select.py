"""Choosing among candidates."""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

from .types import Candidate


def healthy(candidates: Sequence[Candidate]) -> Iterator[Candidate]:
    return (c for c in candidates if c.healthy)


def least_loaded(candidates: Sequence[Candidate]) -> Optional[Candidate]:
    """The healthy candidate with the fewest requests in flight per unit of weight."""
    best: Optional[Candidate] = None
    for c in candidates:
        if c.healthy and c.weight > 0 and (best is None or c.in_flight * best.weight < best.in_flight * c.weight):
            best = c
    return best
