"""Per-run cgroups: memory, processes and CPU bounded by the kernel, and one place to kill a run.

Each run gets a cgroup in every controller, nested under the gateway's own cgroup (as systemd
delegates), named after the run id. The shim moves the task into them before it executes, so the
sandbox and everything it forks inherit them. Two layouts are understood:

- cgroup v1 (``/sys/fs/cgroup/{memory,pids,cpu}``): ``memory.limit_in_bytes``, ``pids.max``,
  ``cpu.cfs_quota_us``. Where a cgroup2 hierarchy is mounted beside them (``/sys/fs/cgroup/unified``)
  with ``cgroup.kill``, the run gets a cgroup there too, which kills the whole run in one write;
- cgroup v2 with the memory, pids and cpu controllers delegated to the gateway's cgroup.

Anything else (no permission, a v2 cgroup the gateway cannot delegate from) gives ``None`` and
the runtime falls back to rlimits; ``describe`` is what ``/healthz`` shows either way.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mcp_server.runtime.base import Size
from mcp_server.runtime.shimkit import remove_cgroups

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpu")
_PERIOD_US = 100_000


@dataclass(frozen=True, slots=True)
class Cgroups:
    version: Literal[1, 2]
    parents: tuple[Path, ...]
    """One ``kubegate`` directory per controller (v1) or the single delegated one (v2)."""
    kill_parent: Path | None = None
    """A cgroup2 directory with ``cgroup.kill`` beside v1 controllers."""

    def describe(self) -> str:
        kill = ", cgroup.kill" if self.version == 2 or self.kill_parent else ""
        return f"cgroup v{self.version} ({', '.join(CONTROLLERS)}{kill})"

    def dirs(self, run_id: str) -> list[str]:
        parents = [*self.parents, *([self.kill_parent] if self.kill_parent else [])]
        return [str(parent / run_id) for parent in parents]

    def create(self, run_id: str, size: Size) -> list[str]:
        """The run's cgroups with the size's limits written; remove them on failure."""
        dirs = self.dirs(run_id)
        try:
            for path in dirs:
                os.mkdir(path)
            for path in dirs:
                _write_limits(Path(path), self.version, size)
        except OSError:
            remove_cgroups(dirs)
            raise
        return dirs


def detect(root: Path = ROOT) -> Cgroups | None:
    """The cgroups this gateway may create for its runs, or None (then rlimits are the limits)."""
    own = _own_paths()
    if (root / "cgroup.controllers").exists():
        return _detect_v2(root, own.get("", "/"))
    parents = []
    for controller in CONTROLLERS:
        parent = root / controller / own.get(controller, "/").lstrip("/") / "kubegate"
        if not _make(parent):
            return None
        parents.append(parent)
    kill_parent = root / "unified" / own.get("", "/").lstrip("/") / "kubegate"
    has_kill = (root / "unified").is_dir() and _make(kill_parent) and (kill_parent / "cgroup.kill").exists()
    return Cgroups(1, tuple(parents), kill_parent if has_kill else None)


def _detect_v2(root: Path, own: str) -> Cgroups | None:
    base = root / own.lstrip("/")
    try:
        available = set((base / "cgroup.controllers").read_text().split())
        if not set(CONTROLLERS) <= available:
            return None
        parent = base / "kubegate"
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))
    except OSError:
        return None  # the gateway's cgroup holds processes, or is not delegated to it
    return Cgroups(2, (parent,))


def _write_limits(path: Path, version: int, size: Size) -> None:
    memory, quota = size.memory_mib * 1024 * 1024, size.cpu_millis * _PERIOD_US // 1000
    files: dict[str, object] = (
        {"memory.limit_in_bytes": memory, "pids.max": size.max_pids, "cpu.cfs_quota_us": quota} if version == 1
        else {"memory.max": memory, "memory.swap.max": 0, "pids.max": size.max_pids, "cpu.max": f"{quota} {_PERIOD_US}"}
    )
    for name, value in files.items():
        if (path / name).exists():
            (path / name).write_text(str(value))
    if version == 1 and (path / "memory.memsw.limit_in_bytes").exists():
        with contextlib.suppress(OSError):  # no swap accounting: the memory limit alone holds
            (path / "memory.memsw.limit_in_bytes").write_text(str(memory))


def _own_paths() -> dict[str, str]:
    """controller -> this process's cgroup path (``""`` for the cgroup2 hierarchy)."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            paths[controller] = path
    return paths


def _make(path: Path) -> bool:
    try:
        path.mkdir(exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)
