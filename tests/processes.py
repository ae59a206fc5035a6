"""Looking at this machine's processes from a test: is a run still going?"""

from __future__ import annotations

import os
from pathlib import Path

import anyio

POLL = 0.05
"""Seconds between two scans of /proc: a busy scan would take a core from the processes it waits for."""


def process_ids(marker: str) -> list[int]:
    """The processes with ``marker`` in their command line (arguments joined as the kernel keeps them; a
    zombie's is empty, so only live ones count)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


def process_alive(marker: str) -> bool:
    """Whether any process has ``marker`` in its command line."""
    return bool(process_ids(marker))


async def until_alive(marker: str, alive: bool = True, *, timeout: float = 20.0) -> None:
    """Return once a process with ``marker`` in its command line is (or, with ``alive=False``, is no longer) running."""
    with anyio.fail_after(timeout):
        while process_alive(marker) != alive:
            await anyio.sleep(POLL)
