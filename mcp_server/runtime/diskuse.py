"""A run's disk allowance in total: what its work dir holds, watched by the shim while it runs.

``RLIMIT_FSIZE`` caps each file (SIGXFSZ), the private ``/tmp`` and ``/dev/shm`` are size-capped
tmpfs, and the log is capped by the pump; what is left is the work dir as a whole. No kernel
mechanism caps one directory for an unprivileged gateway (project quotas and loop-mounted
filesystems need root and a prepared filesystem, and cost more than a run's start may), so the
shim measures it: every ``interval`` it walks the work dir and adds up

- the blocks every file and directory occupies (``st_blocks``, so sparse files count as what
  they really use; hard links once),
- the files the run still holds open after deleting them (``/proc/PID/fd`` of every process of
  the run whose target under the work dir is ``(deleted)``): space no walk would find;

and counts the entries, since inodes are disk too and the walk's own cost grows with them. Past
``max_bytes`` or ``max_files`` the run is killed and ends with reason ``disk_limit``. A directory
the run made unreadable is given ``u+rwx`` back first (the shim owns what the run writes).

Bounds: between two walks a run can write at disk speed, each file at most ``RLIMIT_FSIZE``;
the interval adapts to the walk's cost (``INTERVAL`` .. ``MAX_INTERVAL``), so the overshoot is
that rate times at most ``MAX_INTERVAL``. Like the shim, this module imports only builtins.
"""

from __future__ import annotations

import os
import stat
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

INTERVAL = 0.25
MAX_INTERVAL = 2.0
_DELETED = " (deleted)"


class DiskWatch:
    def __init__(self, work: str, inside: str, max_bytes: int, max_files: int, root_pid: int) -> None:
        self.work = work
        """The work dir as the shim sees it."""
        self.inside = inside.rstrip("/") + "/"
        """The work dir as the run's processes see it (their fd targets are named that way)."""
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.root_pid = root_pid
        self.interval = INTERVAL
        self.used = (0, 0)

    def over(self) -> str | None:
        """Measure now; a sentence saying what is over the allowance, or None."""
        began = time.monotonic()
        size, files = walk(self.work, self.max_files)
        size += held_deleted(self.root_pid, self.inside)
        self.used = (size, files)
        self.interval = min(MAX_INTERVAL, max(INTERVAL, 20 * (time.monotonic() - began)))
        if files > self.max_files:
            return f"its work dir holds more than {self.max_files} files and directories"
        if size > self.max_bytes:
            return f"its work dir holds {size} bytes, over its allowance of {self.max_bytes}"
        return None


def walk(root: str, max_files: int) -> tuple[int, int]:
    """``(bytes, entries)`` under ``root`` (entries counted up to just past ``max_files``)."""
    seen: set[tuple[int, int]] = set()
    total = entries = 0
    pending = [root]
    while pending:
        for entry in _entries(pending.pop()):
            entries += 1
            if entries > max_files:
                return total, entries
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
                if (info.st_dev, info.st_ino) in seen:
                    continue
                seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
            if stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)
    return total, entries


def _entries(path: str) -> Iterator[os.DirEntry[str]]:
    """The entries of ``path``, streamed (a directory may hold millions), reopened if the run locked it."""
    try:
        listing = os.scandir(path)
    except PermissionError:
        try:
            os.chmod(path, 0o700)  # the run locked it; its owner (the shim's uid) may open it again
            listing = os.scandir(path)
        except OSError:
            return
    except OSError:
        return
    with listing:
        yield from listing


def held_deleted(root_pid: int, inside: str) -> int:
    """Bytes of files under ``inside`` that the processes below ``root_pid`` hold open, deleted."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for pid in _descendants(root_pid):
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
                if not (target.startswith(inside) and target.endswith(_DELETED)):
                    continue
                info = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


def _descendants(root: int) -> list[int]:
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as file:
                    pending += [int(child) for child in file.read().split()]
            except OSError:
                continue
    return found
