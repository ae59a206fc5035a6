"""What confines this gateway's local runs, found once at start-up and reported by ``/healthz``.

Fail closed: ``KUBEGATE_ISOLATION=auto`` without a usable bubblewrap gives mode ``unavailable``,
in which the runtime refuses runs (``Confinement.refusal`` says how to install bubblewrap or opt
out with ``KUBEGATE_ISOLATION=none``); it never quietly runs tasks on the host.
"""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal

from mcp_server.config import Settings
from mcp_server.runtime import cgroups, runuid
from mcp_server.runtime.isolation import INSTALL_HINT, Confinement, find_bwrap
from mcp_server.runtime.sandbox import Layout, build_layout

Found = tuple[Confinement, cgroups.Cgroups | None]
_early: list[tuple[Settings, Future[Found]]] = []


def confine_soon(settings: Settings) -> None:
    """Start finding ``confine(settings)`` in a thread now; the runtime built later takes that answer.

    The finding waits on two short subprocesses (bubblewrap's own probe, then a sandbox built as the
    first run uid); ``kubegate serve`` starts it before its imports, which it then overlaps.
    """
    future: Future[Found] = Future()

    def find() -> None:
        try:
            future.set_result(_confine(settings))
        except BaseException as exc:  # handed to the caller of ``confine``, as if it had run there
            future.set_exception(exc)

    _early.append((settings, future))
    threading.Thread(target=find, name="kubegate-confine", daemon=True).start()


def confine(settings: Settings) -> Found:
    """The confinement and the cgroups (None: rlimits only) this gateway gives its runs."""
    for index, (early, future) in enumerate(_early):
        if early is settings:
            del _early[index]
            return future.result()
    return _confine(settings)


def _confine(settings: Settings) -> Found:
    bwrap, problem = find_bwrap(settings.isolation)
    found = cgroups.detect() if settings.run_cgroups == "auto" else None
    if bwrap is None:
        if problem is None:
            return _confinement(settings, "none"), found
        refusal = f"this gateway refuses to run tasks: {problem} (KUBEGATE_ISOLATION=auto); {INSTALL_HINT}"
        return _confinement(settings, "unavailable", refusal=refusal), found
    data_dir = settings.data_dir.resolve()
    hidden = [data_dir, *([settings.kubeconfig.resolve()] if settings.kubeconfig else []), Path.home()]
    layout = build_layout(bwrap, data_dir / "sandbox", settings.readonly_paths, settings.masked_paths, hidden)
    slirp = shutil.which("slirp4netns")
    rootless = os.geteuid() != 0
    uids = {} if rootless else _run_uids(settings, layout, data_dir)
    return _confinement(settings, "bwrap", layout=layout, slirp=slirp, rootless=rootless, **uids), found


def _run_uids(settings: Settings, layout: Layout, data_dir: Path) -> dict[str, Any]:
    """A root gateway's run uids (``runuid``), or why its runs stay uid 0 outside."""
    wanted = settings.run_uids
    if wanted is None:
        return {"uids_problem": "KUBEGATE_RUN_UID_RANGE=off"}
    locks = runuid.open_layout(data_dir)
    problem = runuid.probe(layout, data_dir / "sandbox", wanted[0])
    if problem is not None:
        data_dir.chmod(0o700)  # nothing will traverse it then
        return {"uids_problem": f"{problem}; check user namespaces and KUBEGATE_RUN_READONLY_PATHS"}
    return {"run_uids": wanted, "uid_locks": str(locks)}


def _confinement(settings: Settings, mode: Literal["bwrap", "none", "unavailable"], **fields: Any) -> Confinement:
    return Confinement(mode, tmp_bytes=settings.run_tmp_bytes, log_bytes=settings.run_log_bytes,
                       max_file_bytes=settings.run_max_file_bytes, disk_bytes=settings.run_disk_bytes,
                       disk_files=settings.run_disk_files, **fields)


def describe(confinement: Confinement, found: cgroups.Cgroups | None) -> dict[str, str]:
    """``/healthz``'s and the start-up line's account of the confinement in force."""
    fenced = "slirp4netns (no host loopback, no host address)"
    network = fenced if confinement.slirp else "none (slirp4netns is not installed)"
    return {
        "isolation": confinement.mode,
        "limits": _limits(confinement, found),
        "network": network if confinement.mode == "bwrap" else ("host" if confinement.mode == "none" else "none"),
    }


def _limits(confinement: Confinement, found: cgroups.Cgroups | None) -> str:
    limits = found.describe() if found else _rlimits(confinement)
    if confinement.run_uids is not None:
        first, count = confinement.run_uids
        limits += f"; each run has a host uid of its own from {first}-{first + count - 1}"
    return limits


def _rlimits(confinement: Confinement) -> str:
    if confinement.mode == "bwrap" and not confinement.rootless:
        if confinement.run_uids is not None:
            return "rlimits (processes capped per run: RLIMIT_NPROC binds the run's own host uid)"
        # A run's uid maps to root outside, and the kernel never applies RLIMIT_NPROC to root.
        why = f" ({confinement.uids_problem})" if confinement.uids_problem else ""
        return ("rlimits (processes NOT capped per run: its uid is root outside, which RLIMIT_NPROC never binds"
                f"{why}; delegate the pids controller, set a usable KUBEGATE_RUN_UID_RANGE, or run the "
                "gateway as a non-root user)")
    return "rlimits"
