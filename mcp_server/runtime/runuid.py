"""A host uid of its own for each run of a root gateway, so that the kernel's per-user limits bind it.

bubblewrap maps a run's uid (65534 inside) to the uid that started bubblewrap. For a root gateway
that is uid 0, which the kernel exempts from ``RLIMIT_NPROC``; without a pids cgroup nothing
else caps the run's processes, and a sandbox escape would land as root. So a root gateway's
supervisor drops, right before it executes bubblewrap, to a uid taken from
``KUBEGATE_RUN_UID_RANGE`` (one no real user holds), which bubblewrap then maps 65534 to.

Why always when root, not only without cgroups: one code path for every root gateway, cgroups
(where present) still bound memory, CPU and processes, and an escape from the sandbox lands on an
unprivileged uid either way. Each live run holds a uid of its own (``shimkit.claim_uid``: an
``flock`` on ``DATA_DIR/uids/UID`` held by its supervisor, so it is freed when the supervisor ends,
whichever gateway started it), so one run's processes never count against another's limit.

What that uid can reach (``open_layout``): bubblewrap resolves every path it binds as the uid it
runs as, so the data dir and the runs dir become traverse-only (0711, never listable) and the
shim hands the run its own run dir (``root:UID 0710``) and work dir (``UID:UID 0700``). Everything
else in the data dir is made owner-only (files 0600, directories 0700): the database (SQLite gives
its -wal and -shm files the database's mode), the login-state key, other runs' dirs and logs.

Before using the range, ``probe`` runs the gateway's real sandbox layout as the range's first uid;
if the kernel refuses unprivileged user namespaces, or a configured read-only path is out of that
uid's reach (say, under a 0700 home), runs stay root outside and ``/healthz`` says why.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from mcp_server.runtime.sandbox import Layout, sandbox_argv

LOCKS = "uids"
"""Under the data dir: one lock file per uid in use."""
_REACHABLE = {"runs": 0o711, "sandbox": 0o755}


def open_layout(data_dir: Path) -> Path:
    """Make ``data_dir`` traversable by run uids and everything in it but the runs unreadable to them.

    Answers the locks directory.
    """
    runs, locks = data_dir / "runs", data_dir / LOCKS
    with contextlib.suppress(FileExistsError):  # a runs path that is no directory fails each run's start, with
        runs.mkdir(parents=True, exist_ok=True)  # its reason, rather than every command that opens the data dir
    locks.mkdir(mode=0o700, exist_ok=True)
    for entry in os.scandir(data_dir):
        if entry.is_symlink():
            continue
        mode = _REACHABLE.get(entry.name, 0o700) if entry.is_dir() else os.stat(entry.path).st_mode & 0o700
        with contextlib.suppress(OSError):
            os.chmod(entry.path, mode)
    data_dir.chmod(0o711)
    return locks


def probe(layout: Layout, state_dir: Path, uid: int) -> str | None:
    """``None`` when ``uid`` can build the gateway's sandbox, else why not."""
    argv = [*sandbox_argv(layout, str(state_dir), network=False, tmp_bytes=1 << 20), "true"]
    try:
        done = subprocess.run(argv, user=uid, group=uid, extra_groups=[], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap cannot start as uid {uid} ({exc})"
    if done.returncode == 0:
        return None
    return f"bwrap cannot build a sandbox as uid {uid} ({done.stderr.strip()[:300]}){_userns_hint()}"


def _userns_hint() -> str:
    """The kernel switch that refuses unprivileged user namespaces, if one does."""
    for switch, off in (("kernel/unprivileged_userns_clone", "0"), ("user/max_user_namespaces", "0"),
                        ("kernel/apparmor_restrict_unprivileged_userns", "1")):
        with contextlib.suppress(OSError):
            if Path(f"/proc/sys/{switch}").read_text().strip() == off:
                return f"; the kernel refuses unprivileged user namespaces ({switch.replace('/', '.')} = {off})"
    return ""
