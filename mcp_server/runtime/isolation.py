"""How a local run is confined: the bubblewrap command line, its environment and its rlimits.

Everything here is a pure function of the run's spec and paths, so the shim gets a finished
plan (argv, env, limits) and never has to import this package.

With bubblewrap the run sees a read-only host (``--ro-bind / /``), fresh ``/dev`` and ``/proc``,
a private ``/tmp`` and one writable directory: its work dir, bound at the same path it has on the
host so ``$KUBEGATE_OUTPUT`` and ``cwd`` mean the same thing inside and out. Every namespace is
unshared, the network too unless the spec asks for it (then only the network is shared).

Signals: the shim stops a run by signalling its whole process group, which contains the outer
``bwrap`` too. ``bwrap`` does not forward signals and dies on SIGTERM, and ``--die-with-parent``
then SIGKILLs the sandbox at once, leaving the task no grace period. So ``bwrap`` is started with
SIGTERM ignored and the task is started through ``env --default-signal=TERM``, which puts SIGTERM
back to its default inside the sandbox; TERM then reaches the task only and KILL reaches all.
"""

from __future__ import annotations

import math
import resource
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mcp_server.errors import Unavailable
from mcp_server.runtime.base import DEFAULT_SIZE, SIZES, RunSpec

OUTPUT_FILE = ".kubegate-output"
"""Name of the file, inside the work dir, that ``$KUBEGATE_OUTPUT`` points at."""

BASE_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
DEFAULT_MAX_FILE_BYTES = 1 << 30

Limit = tuple[int, int, int]
"""``(resource, soft, hard)`` as given to ``setrlimit`` in the run's process."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What the shim executes for one run."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    limits: list[Limit]
    ignore_term: bool
    """Start the direct child with SIGTERM ignored (the outer ``bwrap``, see the module docstring)."""
    die_with_shim: bool
    """Have the kernel SIGKILL the task if the shim dies, as ``bwrap --die-with-parent`` does."""


def find_bwrap(mode: Literal["auto", "bwrap", "none"]) -> str | None:
    """The ``bwrap`` to use for ``mode``, or None to run unconfined.

    ``auto`` takes bubblewrap only when it is installed *and* can build a sandbox here (it cannot
    in some containers without user namespaces); ``bwrap`` insists and fails loudly otherwise.
    """
    if mode == "none":
        return None
    path = shutil.which("bwrap")
    problem = "bubblewrap (bwrap) is not installed" if path is None else _probe(path)
    if problem is None:
        return path
    if mode == "bwrap":
        raise Unavailable(f"isolation=bwrap but {problem}; install bubblewrap or set KUBEGATE_ISOLATION=none")
    return None


def _probe(bwrap: str) -> str | None:
    try:
        done = subprocess.run(
            [bwrap, *_SANDBOX, "--", "true"], capture_output=True, timeout=10, check=False, text=True
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap cannot start ({exc})"
    return None if done.returncode == 0 else f"bwrap cannot build a sandbox here ({done.stderr.strip()})"


_SANDBOX = ("--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc")


def plan(spec: RunSpec, work_dir: Path, bwrap: str | None, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Plan:
    """The finished command line, environment and limits for ``spec`` running in ``work_dir``."""
    if not spec.command:
        raise ValueError("a run needs a command")
    work = str(work_dir)
    env = {**BASE_ENV, "HOME": work, **spec.env, "KUBEGATE_OUTPUT": str(work_dir / OUTPUT_FILE)}
    limits = rlimits(spec, max_file_bytes=max_file_bytes, per_sandbox=bwrap is not None)
    if bwrap is None:
        return Plan(list(spec.command), env, work, limits, ignore_term=False, die_with_shim=True)
    argv = [bwrap, *_SANDBOX]
    if spec.network:
        argv.append("--share-net")
    # The tmpfs hides whatever lies under /tmp, the work dir included when the data dir is there,
    # so the work dir is bound after it.
    argv += ["--tmpfs", "/tmp", "--bind", work, work, "--chdir", work, "--"]
    argv += ["env", "--default-signal=TERM", "--", *spec.command]
    return Plan(argv, env, work, limits, ignore_term=True, die_with_shim=False)


def rlimits(spec: RunSpec, *, max_file_bytes: int, per_sandbox: bool) -> list[Limit]:
    """rlimits from the run's size.

    RLIMIT_CPU is a backstop, not the timeout: the CPU the size may use over the whole timeout
    (at least one core's worth), so it bites only on a runaway that outlives its supervisor.
    RLIMIT_NPROC counts every process of the user (within its user namespace): it is a per-run
    bound only inside a sandbox, so it is left alone without one. The kernel never applies it to
    uid 0, so a gateway running as root gets no pid limit from it.
    """
    size = SIZES.get(spec.size) or SIZES[DEFAULT_SIZE]
    memory = size.memory_mib * 1024 * 1024
    cpu = math.ceil(spec.timeout_seconds * max(1.0, size.cpu_millis / 1000)) + 1
    limits: list[Limit] = [
        (resource.RLIMIT_AS, memory, memory),
        (resource.RLIMIT_CPU, cpu, cpu + 5),
        (resource.RLIMIT_FSIZE, max_file_bytes, max_file_bytes),
    ]
    if per_sandbox:
        limits.append((resource.RLIMIT_NPROC, size.max_pids, size.max_pids))
    return limits
