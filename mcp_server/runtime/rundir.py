"""A local run on disk, which is all that survives a gateway restart.

::

    runs_dir/RUN_ID/
        spec.bin    the shim's plan (argv, env, limits); deleted by the shim once read
        shim.pid    "PID START_TICKS" of the shim, written by the shim
        log         stdout + stderr of the run
        cancel      present once a cancel was asked for
        exit.json   {"exit_code", "reason", "started_at", "finished_at"}, written last by the shim
        work/       the run's cwd and only writable place; holds $KUBEGATE_OUTPUT

Reading follows the shim's order: a shim that is gone has already written ``exit.json`` (or
died without it, which makes the run ``lost``), so "is the shim alive?" is asked before "is there
an exit record?", never the other way round.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import re
import shutil
import stat
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from mcp_server.runtime import shim
from mcp_server.runtime.base import OUTPUT_LIMIT, ExitReason, cap_output, decode_tail, last_line
from mcp_server.runtime.isolation import OUTPUT_FILE, Plan

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_REASONS: frozenset[str] = frozenset(get_args(ExitReason))


@dataclass(frozen=True, slots=True)
class ExitRecord:
    exit_code: int | None
    reason: ExitReason
    finished_at: datetime


class RunDir:
    """Paths and readers for one run's directory."""

    def __init__(self, runs_dir: Path, run_id: str) -> None:
        if not _RUN_ID.fullmatch(run_id):
            raise ValueError(f"run id {run_id!r} is not a safe file name")
        self.path = runs_dir / run_id
        self.work = self.path / "work"
        self.log = self.path / "log"

    def create(self, plan: Plan, *, timeout: float, grace: float) -> None:
        """Lay out a new run; FileExistsError if the run id was used before."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.mkdir(mode=0o700)  # a root gateway's shim opens it to the run's uid alone (``runuid``)
        self.work.mkdir()
        fd = os.open(self.path / shim.SPEC_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as file:
            marshal.dump({**asdict(plan), "timeout": timeout, "grace": grace}, file)

    def open_log(self) -> int:
        return os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

    def shim_identity(self) -> tuple[int, int] | None:
        """``(pid, start_ticks)`` the shim recorded, or None if it never did."""
        try:
            pid, ticks = (self.path / shim.PID_FILE).read_text().split()
            return int(pid), int(ticks)
        except (OSError, ValueError):
            return None

    def mark_cancelled(self) -> None:
        (self.path / "cancel").touch()

    def exit_record(self) -> ExitRecord | None:
        """What the shim recorded when the run ended, or None if it recorded nothing."""
        try:
            raw: dict[str, Any] = json.loads((self.path / shim.EXIT_FILE).read_bytes())
            finished_at = datetime.fromtimestamp(float(raw["finished_at"]), UTC)
        except (OSError, ValueError, TypeError, KeyError):
            return None
        code, reason = raw.get("exit_code"), raw.get("reason")
        return ExitRecord(
            exit_code=code if isinstance(code, int) else None,
            reason=reason if reason in _REASONS else "error",
            finished_at=finished_at,
        )

    def was_cancelled(self) -> bool:
        return (self.path / "cancel").exists()

    def output(self) -> str | None:
        """``$KUBEGATE_OUTPUT`` if the run wrote it, else the last non-empty line of its log.

        One trailing newline is dropped, as in ``$(...)``, since ``echo x > $KUBEGATE_OUTPUT`` is
        the common way to write it.
        """
        written = _read_regular(self.work / OUTPUT_FILE, OUTPUT_LIMIT)
        if written is not None:
            return cap_output(decode_tail(written, cut=False).removesuffix("\n"))
        return last_line(self.read_log(2 * OUTPUT_LIMIT))

    def read_log(self, tail: int | None) -> str:
        """The last ``tail`` bytes of the log (all of it for None), "" when there is none."""
        try:
            with self.log.open("rb") as file:
                if tail is not None:
                    seek_tail(file.fileno(), tail)
                return decode_tail(file.read(), cut=tail is not None)
        except FileNotFoundError:
            return ""


def seek_tail(fd: int, tail: int) -> None:
    os.lseek(fd, max(0, os.fstat(fd).st_size - max(0, tail)), os.SEEK_SET)


def _read_regular(path: Path, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of ``path`` if it is a regular file.

    The run controls its work dir: a symlink there could point at a gateway secret and a FIFO
    would block the gateway, so neither is followed nor opened for reading.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return file.read(limit)


def remove_tree(path: Path) -> list[str]:
    """Delete ``path`` whatever modes the run set inside it; answers what could not be removed.

    A run may have taken the write or search bit off its own directories, which stops a plain
    ``rmtree`` for a gateway that is not root. Every directory gets ``u+rwx`` back first. Symlinks
    are never followed (the run chose where they point), and the run is over, so nothing moves.
    """
    with contextlib.suppress(OSError):
        if not path.is_symlink():
            path.chmod(0o700)
    for top, dirs, _files in os.walk(path):
        for name in dirs:
            child = os.path.join(top, name)
            with contextlib.suppress(OSError):
                if not os.path.islink(child):
                    os.chmod(child, 0o700)
    failed: list[str] = []
    shutil.rmtree(path, onerror=lambda _func, where, _exc: failed.append(where))
    return [str(where) for where in dict.fromkeys(failed) if os.path.lexists(where)]  # rmtree may hand back the Path
