"""The plugin's `config:` map from the YAML, with typed, well-worded getters.

Every error names the key and the bad value: it ends up in the gateway's
startup error next to the plugin's name (`edgeward check` shows it too)."""

from __future__ import annotations

import math
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple


class ConfigError(ValueError):
    """A bad `config:` entry; `init` turns it into the plugin's load error."""


class Config:
    """The `config:` pairs handed to `init`, in file order."""

    def __init__(self, entries: Iterable[Tuple[str, str]] = ()) -> None:
        self._entries: List[Tuple[str, str]] = [(str(k), str(v)) for k, v in entries]

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return iter(self._entries)

    def get(self, key: str) -> Optional[str]:
        """The value of `key`, if set; the first occurrence wins."""
        for k, v in self._entries:
            if k == key:
                return v
        return None

    def get_or(self, key: str, default: str) -> str:
        v = self.get(key)
        return default if v is None else v

    def float_or(self, key: str, default: float) -> float:
        v = self.get(key)
        if v is None:
            return default
        try:
            f = float(v.strip())
        except ValueError:
            raise ConfigError(f"config `{key}`: invalid value `{v}`: expected a number") from None
        if not math.isfinite(f):
            raise ConfigError(f"config `{key}`: invalid value `{v}`: expected a finite number")
        return f

    def int_or(self, key: str, default: int) -> int:
        v = self.get(key)
        if v is None:
            return default
        try:
            return int(v.strip())
        except ValueError:
            raise ConfigError(f"config `{key}`: invalid value `{v}`: expected an integer") from None

    def bool_or(self, key: str, default: bool) -> bool:
        """`true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`."""
        v = self.get(key)
        if v is None:
            return default
        t = v.strip().lower()
        if t in ("true", "yes", "on", "1"):
            return True
        if t in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"config `{key}`: invalid value `{t}`: expected true or false")

    def duration_ms(self, key: str, default: Optional[float] = None) -> Optional[float]:
        """A duration such as `250ms`, `30s`, `5m`, `2h`, `1d` (a bare number is seconds), in ms."""
        v = self.get(key)
        if v is None:
            return default
        t = v.strip()
        i = 0
        while i < len(t) and (t[i].isdigit() or t[i] == "."):
            i += 1
        number, unit = t[:i], t[i:].strip()
        scale = {"ms": 1.0, "": 1000.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0, "d": 86_400_000.0}
        try:
            n = float(number)
        except ValueError:
            raise ConfigError(
                f"config `{key}`: invalid value `{v}`: expected a number followed by ms, s, m, h or d"
            ) from None
        if unit not in scale:
            raise ConfigError(f"config `{key}`: invalid value `{v}`: unknown unit `{unit}` (use ms, s, m, h or d)")
        return n * scale[unit]

    def allow_only(self, known: Sequence[str]) -> None:
        """Reject any key not in `known`, suggesting the closest known key."""
        for k, _ in self._entries:
            if k not in known:
                close = sorted(known, key=lambda c: _distance(k, c))
                hint = f"; did you mean `{close[0]}`?" if close and _distance(k, close[0]) <= 2 else ""
                listed = ", ".join(known) if known else "none"
                raise ConfigError(f"config: unknown key `{k}` (known: {listed}){hint}")


def _distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a):
        prev, row[0] = row[0], i + 1
        for j, cb in enumerate(b):
            cur = row[j + 1]
            row[j + 1] = min(prev + (ca != cb), row[j] + 1, cur + 1)
            prev = cur
    return row[len(b)]
