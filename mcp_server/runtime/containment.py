"""What confines this gateway's local runs, found once at start-up and reported by ``/healthz``.

Fail closed: ``KUBEGATE_ISOLATION=auto`` without a usable bubblewrap gives mode ``unavailable``,
in which the runtime refuses runs (``Confinement.refusal`` says how to install bubblewrap or opt
out with ``KUBEGATE_ISOLATION=none``); it never quietly runs tasks on the host.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Literal

from mcp_server.config import Settings
from mcp_server.runtime import cgroups
from mcp_server.runtime.isolation import INSTALL_HINT, Confinement, find_bwrap
from mcp_server.runtime.sandbox import build_layout


def confine(settings: Settings) -> tuple[Confinement, cgroups.Cgroups | None]:
    """The confinement and the cgroups (None: rlimits only) this gateway gives its runs."""
    bwrap, problem = find_bwrap(settings.isolation)
    found = cgroups.detect()
    if bwrap is None:
        if problem is None:
            return _confinement(settings, "none"), found
        refusal = f"this gateway refuses to run tasks: {problem} (KUBEGATE_ISOLATION=auto); {INSTALL_HINT}"
        return _confinement(settings, "unavailable", refusal=refusal), found
    data_dir = settings.data_dir.resolve()
    hidden = [data_dir, *([settings.kubeconfig.resolve()] if settings.kubeconfig else []), Path.home()]
    layout = build_layout(bwrap, data_dir / "sandbox", settings.readonly_paths, settings.masked_paths, hidden)
    slirp = shutil.which("slirp4netns")
    return _confinement(settings, "bwrap", layout=layout, slirp=slirp, rootless=os.geteuid() != 0), found


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
        "limits": found.describe() if found else _rlimits(confinement),
        "network": network if confinement.mode == "bwrap" else ("host" if confinement.mode == "none" else "none"),
    }


def _rlimits(confinement: Confinement) -> str:
    if confinement.mode == "bwrap" and not confinement.rootless:
        # A run's uid maps to root outside, and the kernel never applies RLIMIT_NPROC to root.
        return ("rlimits (processes NOT capped per run: a root gateway needs cgroups for that; "
                "delegate the pids controller or run the gateway as a non-root user)")
    return "rlimits"
