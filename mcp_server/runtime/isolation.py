"""How a local run is confined: the finished plan (argv, env, limits, cgroups) the shim executes.

Everything here is a pure function of the run's spec, its paths and the gateway's ``Confinement``,
so the shim gets a finished plan and never has to import this package. The sandbox itself is
``sandbox.sandbox_argv``; limits come from cgroups where the gateway may create them (see
``cgroups``) and from rlimits otherwise, which are always set as a backstop.

Fail closed: ``auto`` without a usable bubblewrap does not run tasks on the host. The runtime then
refuses runs with ``Confinement.refusal``, which says how to install bubblewrap or opt out.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mcp_server.errors import Unavailable
from mcp_server.runtime.base import DEFAULT_SIZE, SIZES, RunSpec
from mcp_server.runtime.sandbox import WORK, Layout, sandbox_argv

OUTPUT_FILE = ".kubegate-output"
"""Name of the file, inside the work dir, that ``$KUBEGATE_OUTPUT`` points at."""

BASE_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
DEFAULT_MAX_FILE_BYTES = 1 << 30
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap) and make "
    "sure user namespaces are allowed, or set KUBEGATE_ISOLATION=none to run tasks unconfined on this host"
)

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
    cgroups: list[str] = field(default_factory=list)
    """Cgroup directories the task joins before it executes; killed and removed when the run ends."""
    network: list[str] | None = None
    """``slirp4netns`` argv (without the namespace) to attach once bwrap has built the sandbox."""
    log_bytes: int = 0
    """Cap of the run's log; past it the head is dropped (0: no cap)."""
    disk_bytes: int = 0
    """The work dir's allowance in all (0: not watched); see ``diskuse``."""
    disk_files: int = 0
    work_inside: str = WORK
    """The work dir as the run's processes name it."""
    run_uids: tuple[int, int] | None = None
    """``(first, count)``: the host uids the shim picks the run's from (root gateway; see ``runuid``)."""
    uid_locks: str = ""


@dataclass(frozen=True, slots=True)
class Confinement:
    """What confines this gateway's runs; built once, shared by every plan."""

    mode: Literal["bwrap", "none", "unavailable"]
    layout: Layout | None = None
    refusal: str | None = None
    """Why runs are refused (``mode == "unavailable"``)."""
    slirp: str | None = None
    tmp_bytes: int = 256 << 20
    log_bytes: int = 8 << 20
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    disk_bytes: int = 4 << 30
    disk_files: int = 100_000
    rootless: bool = False
    run_uids: tuple[int, int] | None = None
    """``(first, count)`` of the host uids runs get (a root gateway's; see ``runuid``), or None."""
    uid_locks: str = ""
    uids_problem: str | None = None
    """Why a root gateway's runs stay uid 0 outside (the range is off or cannot be used)."""


def find_bwrap(mode: Literal["auto", "bwrap", "none"]) -> tuple[str | None, str | None]:
    """``(bwrap, problem)``: the ``bwrap`` to use for ``mode``, or why there is none.

    ``auto`` takes bubblewrap only when it is installed *and* can build a sandbox here (it cannot
    in some containers without user namespaces); ``bwrap`` insists and fails loudly otherwise.
    """
    if mode == "none":
        return None, None
    path = shutil.which("bwrap")
    problem = "bubblewrap (bwrap) is not installed" if path is None else _probe(path)
    if problem is None:
        return path, None
    if mode == "bwrap":
        raise Unavailable(f"KUBEGATE_ISOLATION=bwrap but {problem}; {INSTALL_HINT}")
    return None, problem


def _probe(bwrap: str) -> str | None:
    probe = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--cap-drop", "ALL",
             "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--disable-userns", "--", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=10, check=False, text=True)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap cannot start ({exc})"
    return None if done.returncode == 0 else f"bwrap cannot build a sandbox here ({done.stderr.strip()})"


def plan(spec: RunSpec, work_dir: Path, confinement: Confinement, cgroups: Sequence[str] = ()) -> Plan:
    """The finished command line, environment and limits for ``spec`` running in ``work_dir``."""
    if not spec.command:
        raise ValueError("a run needs a command")
    if confinement.refusal is not None:
        raise Unavailable(confinement.refusal)
    layout = confinement.layout
    if spec.network and layout is not None and confinement.slirp is None:
        raise Unavailable("this run asks for network, which needs slirp4netns on the gateway's host "
                          "(apt-get install slirp4netns); without it runs can have no network")
    inside = WORK if layout is not None else str(work_dir)
    env = {**BASE_ENV, "HOME": inside, **spec.env, "KUBEGATE_OUTPUT": f"{inside}/{OUTPUT_FILE}"}
    limits = rlimits(spec, max_file_bytes=confinement.max_file_bytes, cgroups=bool(cgroups),
                     per_sandbox=layout is not None)
    joined, c = list(cgroups), confinement
    if layout is None:
        return Plan(list(spec.command), env, str(work_dir), limits, ignore_term=False, die_with_shim=True,
                    cgroups=joined, log_bytes=c.log_bytes, disk_bytes=c.disk_bytes, disk_files=c.disk_files,
                    work_inside=str(work_dir))
    network = spec.network and confinement.slirp is not None
    argv = sandbox_argv(layout, str(work_dir), network=network, tmp_bytes=confinement.tmp_bytes)
    argv += ["env", "--default-signal=TERM", "--", *spec.command]
    return Plan(argv, env, str(work_dir), limits, ignore_term=True, die_with_shim=False,
                cgroups=joined, network=slirp_argv(confinement) if network else None, log_bytes=c.log_bytes,
                disk_bytes=c.disk_bytes, disk_files=c.disk_files, run_uids=c.run_uids, uid_locks=c.uid_locks)


def slirp_argv(confinement: Confinement) -> list[str]:
    """``slirp4netns`` with NAT out and no way back to the host's loopback (10.0.2.2 refused)."""
    assert confinement.slirp is not None
    argv = [confinement.slirp, "--configure", "--mtu=65520", "--disable-host-loopback"]
    # Its own sandbox and seccomp filter need privileges only a root gateway has.
    return argv if confinement.rootless else [*argv, "--enable-sandbox", "--enable-seccomp"]


def rlimits(spec: RunSpec, *, max_file_bytes: int, cgroups: bool, per_sandbox: bool) -> list[Limit]:
    """rlimits from the run's size: the limits where there are no cgroups, a backstop where there are.

    RLIMIT_CPU is a backstop, not the timeout: the CPU the size may use over the whole timeout
    (at least one core's worth), so it bites only on a runaway that outlives its supervisor.
    RLIMIT_AS stands in for a memory cgroup only without one (it breaks programs that reserve
    address space). RLIMIT_NPROC counts every process of the user (within its user namespace):
    a per-run bound only inside a sandbox, and the kernel never applies it to a gateway's uid 0.
    """
    size = SIZES.get(spec.size) or SIZES[DEFAULT_SIZE]
    memory = size.memory_mib * 1024 * 1024
    cpu = math.ceil(spec.timeout_seconds * max(1.0, size.cpu_millis / 1000)) + 1
    limits: list[Limit] = [
        (resource.RLIMIT_CPU, cpu, cpu + 5),
        (resource.RLIMIT_FSIZE, max_file_bytes, max_file_bytes),
    ]
    if not cgroups:
        limits.append((resource.RLIMIT_AS, memory, memory))
        if per_sandbox:
            limits.append((resource.RLIMIT_NPROC, size.max_pids, size.max_pids))
    return limits
