"""Run sizes: the one table of what ``small``, ``medium`` and ``large`` mean.

The wire models take a ``SizeName``; the runtimes turn it into rlimits (local) or requests and
limits (Kubernetes) through ``SIZES``. Both come from here, so a new size is one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

SizeName = Literal["small", "medium", "large"]
DEFAULT_SIZE: SizeName = "small"


@dataclass(frozen=True, slots=True)
class Size:
    """Resources for one run; rlimits locally, requests/limits on Kubernetes."""

    name: SizeName
    cpu_millis: int
    memory_mib: int
    max_pids: int


SIZES: Mapping[SizeName, Size] = {
    "small": Size("small", cpu_millis=500, memory_mib=512, max_pids=256),
    "medium": Size("medium", cpu_millis=1000, memory_mib=2048, max_pids=1024),
    "large": Size("large", cpu_millis=2000, memory_mib=4096, max_pids=4096),
}
if tuple(SIZES) != get_args(SizeName):  # pragma: no cover - a guard for whoever edits one and not the other
    raise AssertionError("SIZES and SizeName must name the same sizes in the same order")
