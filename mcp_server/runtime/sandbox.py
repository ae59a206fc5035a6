"""The bubblewrap command line of an allow-list sandbox: reusable by anything that confines a process.

A sandbox is built from nothing, never from the host's ``/``:

- no privilege: a user namespace of its own with uid/gid 65534 inside, every capability dropped
  (``--cap-drop ALL``), no further user namespaces (``--disable-userns``), and bubblewrap's
  ``no_new_privs``, so setuid binaries, mounts, ``chroot`` and raw sockets all fail;
- a read-only view of the host's system paths (``Layout.readonly``, configurable) with secrets in
  them masked (an empty file over a file, an empty read-only tmpfs over a directory); whatever the
  gateway must keep to itself (its data dir, home directories, the kubeconfig, ``/run``) is masked
  too should a configured path contain it;
- a private ``/proc`` and a minimal, read-only ``/dev``; size-capped tmpfs on ``/tmp`` and
  ``/dev/shm``; the root itself read-only; one writable directory, the work dir, at ``/work``;
- a network namespace of its own, always: empty, or (``network=True``) one that the shim wires to
  ``slirp4netns`` through ``--info-fd``/``--block-fd`` (see ``netstart``), with NAT outwards and
  no route to the host's loopback.

``Layout`` is computed once per gateway (it stats the host); ``sandbox_argv`` is pure and cheap.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

WORK = "/work"
"""Where the work dir appears inside the sandbox."""
INNER_ID = "65534"
INFO_FD, BLOCK_FD = "%INFO_FD%", "%BLOCK_FD%"
"""Placeholders the shim replaces with the fds it opens for the network hand-shake."""

DEFAULT_READONLY = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
DEFAULT_MASKED = (
    "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/security/opasswd", "/etc/sudoers",
    "/etc/sudoers.d", "/etc/ssh/ssh_host_*_key", "/etc/ssl/private", "/etc/kubernetes", "/etc/rancher",
    "/etc/kubegate", "/etc/docker", "/etc/containers/auth.json",
)
ALWAYS_HIDDEN = ("/root", "/home", "/run", "/var/run", "/var/lib")
"""Never visible, even when a configured read-only path contains them."""


@dataclass(frozen=True, slots=True)
class Layout:
    """What the host offers every sandbox, resolved against the host's file system once."""

    bwrap: str
    binds: tuple[tuple[str, str, str], ...]
    """``(option, source, path)``: ``--ro-bind`` for real directories, ``--symlink`` for merged-/usr links."""
    masked_files: tuple[str, ...]
    masked_dirs: tuple[str, ...]
    empty_file: str
    resolv_conf: str
    """A resolv.conf naming slirp4netns's DNS, bound over /etc/resolv.conf in networked sandboxes."""


def build_layout(bwrap: str, state_dir: Path, readonly: Iterable[str], masked: Iterable[str],
                 hidden: Iterable[Path] = ()) -> Layout:
    """Resolve ``readonly`` and ``masked`` against this host; ``hidden`` adds the gateway's own secrets.

    ``state_dir`` receives the two small files every sandbox binds (an empty file, a resolv.conf).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    empty, resolv = state_dir / "empty", state_dir / "resolv.conf"
    empty.write_bytes(b"")
    resolv.write_text("nameserver 10.0.2.3\n")
    for path in (empty, resolv):
        path.chmod(0o444)
    binds = tuple(bind for path in dict.fromkeys(readonly) if (bind := _bind(path)) is not None)
    roots = [path for option, _, path in binds if option == "--ro-bind"]
    candidates = [*_expand(masked), *ALWAYS_HIDDEN, *(str(p) for p in hidden)]
    inside = [p for p in dict.fromkeys(candidates) if _under(p, roots) and os.path.lexists(p)]
    dirs = tuple(p for p in inside if os.path.isdir(p) and not os.path.islink(p))
    files = tuple(p for p in inside if p not in dirs and not os.path.islink(p))
    return Layout(bwrap, binds, files, dirs, str(empty), str(resolv))


def sandbox_argv(layout: Layout, work: str, *, network: bool, tmp_bytes: int,
                 readonly_binds: Sequence[str] = (), binds: Sequence[tuple[str, str]] = ()) -> list[str]:
    """``bwrap`` options (up to and including ``--``) confining one process to ``work``.

    ``readonly_binds`` are extra host paths shown read-only at the same place; ``binds`` are extra
    ``(host, inside)`` writable binds. With ``network`` the caller must hand bwrap the info and
    block fds (``INFO_FD``/``BLOCK_FD``) and attach the namespace before releasing it.
    """
    # No --new-session: the supervisor signals the run's process group, which setsid would leave.
    # It guards against TIOCSTI on a controlling terminal, and runs never have one (stdin is
    # /dev/null and the supervisor is in a session of its own without a terminal).
    argv = [layout.bwrap, "--unshare-all", "--unshare-user", "--die-with-parent",
            "--uid", INNER_ID, "--gid", INNER_ID, "--cap-drop", "ALL"]
    for option, source, path in layout.binds:
        argv += [option, source, path]
    for path in readonly_binds:
        argv += ["--ro-bind", path, path]
    for path in layout.masked_files:
        argv += ["--ro-bind", layout.empty_file, path]
    for path in layout.masked_dirs:
        argv += ["--tmpfs", path, "--remount-ro", path]
    if network:
        argv += ["--ro-bind", layout.resolv_conf, "/etc/resolv.conf", "--info-fd", INFO_FD, "--block-fd", BLOCK_FD]
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(tmp_bytes), "--tmpfs", "/dev/shm",
             "--remount-ro", "/dev", "--size", str(tmp_bytes), "--tmpfs", "/tmp",
             "--bind", work, WORK]
    for host, inside in binds:
        argv += ["--bind", host, inside]
    argv += ["--remount-ro", "/", "--chdir", WORK, "--disable-userns", "--"]
    return argv


def _bind(path: str) -> tuple[str, str, str] | None:
    """How to show ``path``: a read-only bind, a symlink (``/bin -> usr/bin``), or not at all."""
    path = os.path.abspath(path)
    if os.path.islink(path):
        return ("--symlink", os.readlink(path), path)
    if os.path.isdir(path) or os.path.isfile(path):
        return ("--ro-bind", path, path)
    return None


def _expand(patterns: Iterable[str]) -> list[str]:
    found: list[str] = []
    for pattern in patterns:
        found += sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    return found


def _under(path: str, roots: Sequence[str]) -> bool:
    path = os.path.abspath(path)
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)
