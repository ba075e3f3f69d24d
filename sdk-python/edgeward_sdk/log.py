"""Leveled log lines through the host, which tags them with the plugin's name
and rate-limits them. `print` goes nowhere: plugins have no stdio."""

from __future__ import annotations

from enum import IntEnum

from ._host import current


class Level(IntEnum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


def enabled(level: Level) -> bool:
    return current().log_enabled(level)


def log(level: Level, message: str) -> None:
    current().log(level, message)


def trace(message: str) -> None:
    log(Level.TRACE, message)


def debug(message: str) -> None:
    log(Level.DEBUG, message)


def info(message: str) -> None:
    log(Level.INFO, message)


def warn(message: str) -> None:
    log(Level.WARN, message)


def error(message: str) -> None:
    log(Level.ERROR, message)
