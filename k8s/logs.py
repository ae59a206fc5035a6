"""The gateway's own copy of each run's log, at ``runs_dir/<run_id>/log``.

Pods are garbage-collected (Job deletion, evictions, node loss) and their logs go with them,
so the runtime copies the container log into this file while the run goes on and reads only
from the file. The file only ever grows. The copier asks for timestamped lines and a
reconnecting copier resumes *by time* (``LogCursor``): the kubelet rotates container logs and
then serves only the newest file, so "skip the bytes I already have" would drop new output.
"""

from __future__ import annotations

import math
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from mcp_server.runtime.base import decode_tail

CLOCK_SLACK = 60
"""Seconds asked for beyond the last line seen: the node's clock may be ahead of the gateway's."""
Stamp = tuple[bytes, int]


def _stamp(raw: bytes) -> Stamp | None:
    """``2026-01-02T03:04:05.123456789Z`` as (seconds, nanoseconds), comparable across precisions."""
    if len(raw) < 20 or raw[10:11] != b"T":
        return None
    seconds, _, fraction = raw.rstrip(b"Z").partition(b".")
    digits = fraction[:9].ljust(9, b"0")
    return (seconds[:19], int(digits)) if digits.isdigit() else None


class LogCursor:
    """Turns timestamped log streams into new bytes only, across reconnects and log rotation.

    Several lines may carry the same timestamp (a runtime stamps one read at a time), so the
    cursor counts how many lines at its last timestamp it already took and skips that many.
    """

    def __init__(self) -> None:
        self.last: Stamp | None = None
        self._same = 0
        self._skip = 0
        self._pending = b""

    @classmethod
    def load(cls, path: Path) -> LogCursor:
        """The cursor saved beside a log copy, so a restarted gateway appends only what it lacks."""
        cursor = cls()
        try:
            seconds, nanos, same = path.read_text().split()
            cursor.last, cursor._same = (seconds.encode(), int(nanos)), int(same)
        except (FileNotFoundError, ValueError):
            pass
        return cursor

    def save(self, path: Path) -> None:
        if self.last is not None:
            path.write_text(f"{self.last[0].decode()} {self.last[1]} {self._same}")

    def since_seconds(self, now: datetime | None = None) -> int | None:
        if self.last is None:
            return None
        seen = datetime.strptime(self.last[0].decode(), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        return max(1, math.ceil(((now or datetime.now(UTC)) - seen).total_seconds()) + CLOCK_SLACK)

    def begin(self) -> None:
        """A new stream starts: it repeats lines at (and before) the last timestamp taken."""
        self._skip, self._pending = self._same, b""

    def feed(self, chunk: bytes) -> bytes:
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        return b"".join(self._line(line + b"\n") for line in lines)

    def end(self, final: bool) -> bytes:
        """The stream ended; a last line without newline counts only when the container is done."""
        pending, self._pending = self._pending, b""
        return self._line(pending) if final and pending else b""

    def _line(self, line: bytes) -> bytes:
        raw, _, content = line.partition(b" ")
        stamp = _stamp(raw)
        if stamp is None:
            return line
        if self.last is not None and stamp < self.last:
            return b""
        if stamp == self.last:
            if self._skip:
                self._skip -= 1
                return b""
            self._same += 1
        else:
            self.last, self._same, self._skip = stamp, 1, 0
        return content



def read_tail(path: Path, tail: int) -> str:
    """The last ``tail`` bytes of ``path`` as text ("" when missing)."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - tail))
            return decode_tail(handle.read(), cut=True)
    except FileNotFoundError:
        return ""


class RunLog:
    """One run's log file, appended to by its copier until ``done``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done = False

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    async def append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(data)

    async def finish(self) -> None:
        self.done = True

    def remove(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)
