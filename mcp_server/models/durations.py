"""Durations: one grammar, one parser, one formatter, and a JSON Schema pattern that agrees.

A duration is Go-style whole hours, minutes and seconds, each at most once and in that order:
``30s``, ``10m``, ``1h30m``, ``90m``, ``1h0m5s``. Digits are ASCII only and the total is
more than zero. Fractions (``1.5h``) and units below a second (``500ms``) are refused with a
message saying so, rather than rounded: a timeout is shown back exactly as it runs.

``PATTERN`` is what clients see in the schema; ``parse`` accepts exactly the strings it
matches (tests/models/test_durations.py checks both directions, and ``format`` round-trips).
"""

from __future__ import annotations

import re

PATTERN = r"^(?=[0-9hms]*[1-9])(?:[0-9]{1,9}h)?(?:[0-9]{1,9}m)?(?:[0-9]{1,9}s)?$"
"""ECMA-262 and Python agree on this one: a non-zero digit somewhere, then h, m, s in order."""
MAX_LENGTH = 32

_GRAMMAR = re.compile(r"(?:([0-9]{1,9})h)?(?:([0-9]{1,9})m)?(?:([0-9]{1,9})s)?", re.ASCII)
_FRACTION_OR_SUBSECOND = re.compile(r"[0-9]\.[0-9]|ms|us|µs|ns", re.ASCII)
HINT = "use whole hours, minutes and seconds such as 30s, 10m or 1h30m"


def parse(text: str) -> int:
    """Whole seconds in ``text``; ``ValueError`` with a message a user can act on otherwise."""
    found = _GRAMMAR.fullmatch(text) if len(text) <= MAX_LENGTH else None
    if not text or found is None:
        if _FRACTION_OR_SUBSECOND.search(text):
            raise ValueError(f"fractions and units below a second are not supported: {HINT}")
        raise ValueError(f"must be a duration: {HINT}")
    hours, minutes, seconds = (int(part or 0) for part in found.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError("must be longer than zero")
    return total


def format(seconds: int) -> str:  # noqa: A001 - the pair of parse
    """``seconds`` in the grammar's shortest form (``5400`` -> ``1h30m``)."""
    if seconds <= 0:
        raise ValueError("a duration is longer than zero")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)


def shown(seconds: float) -> str:
    """A stored timeout as the API shows it. Rows from before sub-second units were refused may hold a
    fraction; it is shown exactly (``500ms``, ``1s250ms``), never rounded to ``0s``."""
    whole = int(seconds)
    millis = round((seconds - whole) * 1000)
    if not millis:
        return format(whole) if whole > 0 else "0s"
    return (format(whole) if whole > 0 else "") + f"{millis}ms"
