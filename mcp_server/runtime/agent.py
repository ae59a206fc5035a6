"""The agent inside a local long-lived workload: exec, files and a port bridge over Unix sockets.

It runs *inside* the sandbox (its mount, pid and network namespaces, its uid and rlimits), as
``python3 -I -S -c SOURCE CONTROL_FD BRIDGE_FD PORT``. The gateway creates and binds both
listening sockets in the run dir, which the sandbox cannot see or write, and hands them down as
inherited file descriptors, so a tenant can neither replace a socket nor point the gateway at
another one, and the sandbox keeps ``--unshare-net``:

- CONTROL: one JSON line per connection, ``{"op": "ping" | "exec" | "read" | "write" | "stats"}``.
  ``exec`` answers frames (1 byte kind ``o``/``e``/``x``, 4 bytes length, payload); a closed
  connection kills the command. ``read``/``write`` answer one JSON line (``read`` then the bytes).
- BRIDGE: every connection is spliced to ``127.0.0.1:PORT`` inside the sandbox.

File paths are confined to the agent's cwd (the workload's home) after resolving symlinks, and the
I/O happens here, with the sandbox's own rights: a link planted in the sandbox can at most reach
what the sandbox itself can. Stdlib only, imported lazily: start-up time is the workload's latency.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from typing import Any

_CHUNK = 65536
_ROOT = os.path.realpath(os.getcwd())


class Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def main(control_fd: int, bridge_fd: int, port: int) -> None:
    bridge = socket.socket(fileno=bridge_fd)
    threading.Thread(target=_accept, args=(bridge, lambda c: _splice(c, port)), daemon=True).start()
    _accept(socket.socket(fileno=control_fd), _serve)


def _accept(listener: socket.socket, handle: Any) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_guarded, args=(handle, conn), daemon=True).start()


def _guarded(handle: Any, conn: socket.socket) -> None:
    try:
        handle(conn)
    except OSError:
        pass  # the gateway went away mid-request
    finally:
        conn.close()


def _serve(conn: socket.socket) -> None:
    reader = conn.makefile("rb")
    request: dict[str, Any] = json.loads(reader.readline(1 << 20) or b"{}")
    op = request.get("op")
    try:
        if op == "exec":
            _exec(conn, request)
        elif op == "read":
            data = _read(request["path"], int(request["max"]))
            _reply(conn, {"ok": True, "size": len(data)})
            conn.sendall(data)
        elif op == "write":
            _write(request["path"], reader.read(int(request["size"])))
            _reply(conn, {"ok": True})
        elif op == "stats":
            _reply(conn, {"ok": True, **_stats()})
        else:
            _reply(conn, {"ok": True, "pid": os.getpid()})
    except Refused as exc:
        _reply(conn, {"ok": False, "code": exc.code, "message": str(exc)})
    except OSError as exc:
        _reply(conn, {"ok": False, "code": 400, "message": exc.strerror or str(exc)})


def _reply(conn: socket.socket, body: dict[str, Any]) -> None:
    conn.sendall(json.dumps(body).encode() + b"\n")


def confine(path: str, *, root: str = _ROOT) -> str:
    """``path`` (relative to ``root``, or absolute inside it) resolved; Refused if it leaves ``root``."""
    if not path or "\0" in path:
        raise Refused(400, "path must be a non-empty file path")
    if ".." in path.split("/"):
        raise Refused(400, "path must not contain '..'")
    real = os.path.realpath(os.path.join(root, path))
    if os.path.commonpath([real, root]) != root or real == root:
        raise Refused(400, f"path {path!r} leads outside the sandbox's home {root} (symlinks are followed)")
    return real


def _read(path: str, limit: int) -> bytes:
    real = confine(path)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Refused(404, f"no file {path!r} in the sandbox") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not _is_regular(info.st_mode):
            raise Refused(400, f"{path!r} is not a regular file")
        if info.st_size > limit:
            raise Refused(413, f"{path!r} has {info.st_size} bytes, more than the {limit} allowed")
        return file.read(limit + 1)[:limit]


def _write(path: str, data: bytes) -> None:
    real = confine(path)
    os.makedirs(os.path.dirname(real), exist_ok=True)
    confine(path)  # the directories just made may not have moved it out
    fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as file:
        if not _is_regular(os.fstat(fd).st_mode):
            raise Refused(400, f"{path!r} is not a regular file")
        file.write(data)


def _is_regular(mode: int) -> bool:
    return mode & 0o170000 == 0o100000


def _stats() -> dict[str, int]:
    processes, rss = 0, 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/statm", "rb") as file:
                    rss += int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                processes += 1
            except (OSError, IndexError, ValueError):
                continue
    return {"processes": processes, "memoryBytes": rss}


def _exec(conn: socket.socket, request: dict[str, Any]) -> None:
    import selectors
    import signal
    import subprocess
    import time

    cwd = confine(request["cwd"]) if request.get("cwd") else _ROOT
    try:
        proc = subprocess.Popen(
            request["command"], cwd=cwd, env={**os.environ, **request.get("env", {})},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
    except OSError as exc:
        _frame(conn, b"e", f"cannot run {request['command'][0]!r}: {exc.strerror}\n".encode())
        _frame(conn, b"x", json.dumps({"exitCode": 127, "truncated": False, "timedOut": False}).encode())
        return
    threading.Thread(target=_feed, args=(proc, request.get("stdin", "").encode("latin-1")), daemon=True).start()
    cap, sent = int(request.get("cap", 1 << 20)), {b"o": 0, b"e": 0}
    truncated = timed_out = False
    deadline = time.monotonic() + float(request.get("timeout", 60))
    with selectors.DefaultSelector() as selector:
        assert proc.stdout is not None and proc.stderr is not None
        selector.register(proc.stdout, selectors.EVENT_READ, b"o")
        selector.register(proc.stderr, selectors.EVENT_READ, b"e")
        selector.register(conn, selectors.EVENT_READ, None)
        # Ends when both streams close, or soon after the command exits: a server it started in
        # the background may hold them open, and must keep running.
        exited_at: float | None = None
        while len(selector.get_map()) > 1:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                _killpg(proc.pid, signal.SIGKILL)
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > 0.05:
                break
            for key, _ in selector.select(min(deadline - now, 0.05 if exited_at else 0.5)):
                if key.data is None:  # the gateway hung up: the command goes too
                    _killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                kept = chunk[: max(0, cap - sent[key.data])]
                truncated = truncated or len(kept) < len(chunk)
                sent[key.data] += len(kept)
                if kept:
                    _frame(conn, key.data, kept)
    code = proc.wait()
    result = {"exitCode": code if code >= 0 else 128 - code, "truncated": truncated, "timedOut": timed_out}
    _frame(conn, b"x", json.dumps(result).encode())


def _feed(proc: Any, data: bytes) -> None:
    try:
        if data:
            proc.stdin.write(data)
        proc.stdin.close()
    except OSError:
        pass  # the command does not read its stdin


def _killpg(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except OSError:
        pass


def _frame(conn: socket.socket, kind: bytes, payload: bytes) -> None:
    conn.sendall(kind + len(payload).to_bytes(4, "big") + payload)


def _splice(conn: socket.socket, port: int) -> None:
    upstream = socket.create_connection(("127.0.0.1", port))
    try:
        pump = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
        pump.start()
        _pump(conn, upstream)
        pump.join()
    finally:
        upstream.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(_CHUNK):
            target.sendall(chunk)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        for side in (source, target):
            try:
                side.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
