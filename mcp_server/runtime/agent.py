"""The agent inside a local long-lived workload: exec, files and a port bridge over Unix sockets.

It runs *inside* the sandbox (its mount, pid and network namespaces, its uid and rlimits), as
``python3 -I -S -c SOURCE CONTROL_FD BRIDGE_FD PORT``. The gateway creates and binds both
listening sockets in the run dir, which the sandbox cannot see or write, and hands them down as
inherited file descriptors, so a tenant can neither replace a socket nor point the gateway at
another one, and the sandbox keeps ``--unshare-net``:

- CONTROL: each connection carries one request, a marshal'd dict after its 4-byte length
  (``op``: ``ping``, ``exec``, ``read``, ``write``, ``stats``, ``watch``). Replies are JSON (the gateway
  never unmarshals what comes out of a sandbox): one line, or for ``exec`` frames of 1 byte
  kind (``o``/``e``/``x``), 4 bytes length and the payload. A closed connection kills the command.
- BRIDGE: every connection is spliced to ``127.0.0.1:PORT`` inside the sandbox.

A deployment replica's agent also supervises its app: see ``agent_app``, which comes first in the
same script (``workload.agent_script``).

File paths are confined to the agent's cwd (the workload's home) after resolving symlinks, and the
I/O happens here, with the sandbox's own rights: a link planted in the sandbox can at most reach
what the sandbox itself can.

Start-up time is the workload's latency: the hot path uses only builtin modules (``_socket``,
``_thread``, ``marshal``; ``socket``, ``threading`` and ``json`` cost ~50 ms to import here), and
what exec needs is imported once the agent has answered its first ping.
"""

from __future__ import annotations

import _socket
import _thread
import marshal
import os
import sys
from typing import Any

from mcp_server.runtime.agent_app import App, killpg, load_app

_CHUNK = 65536
_DIAL_WAITS = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)
"""Seconds each connect to the workload's port may take before it is tried again (see ``_dial``)."""
_ROOT = os.path.realpath(os.getcwd())
_STREAM = _socket.SOCK_STREAM
_warm = [False]
_APP: list[App] = []


class Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def main(control_fd: int, bridge_fd: int, port: int) -> None:
    # Small stacks, and one malloc arena (MALLOC_ARENA_MAX, set for this process only): by default
    # each thread may reserve 64 MiB of address space, which the sandbox's RLIMIT_AS soon refuses.
    os.environ.pop("MALLOC_ARENA_MAX", None)
    _thread.stack_size(256 * 1024)
    for fd in (control_fd, bridge_fd):  # handed down to this process, never to the app it spawns
        os.set_inheritable(fd, False)
    app = os.environ.pop("KUBEGATE_APP", None)
    if app is not None:
        _APP.append(load_app(app))
    bridge = _socket.socket(_socket.AF_UNIX, _STREAM, 0, bridge_fd)
    _thread.start_new_thread(_accept, (bridge, lambda conn: _splice(conn, port)))
    _accept(_socket.socket(_socket.AF_UNIX, _STREAM, 0, control_fd), _serve)


def _accept(listener: Any, handle: Any) -> None:
    while True:
        try:
            fd, _ = listener._accept()
        except OSError:
            continue  # out of fds, or a connection that went away: the next one may do
        conn = _socket.socket(_socket.AF_UNIX, _STREAM, 0, fd)
        try:
            _thread.start_new_thread(_guarded, (handle, conn))
        except RuntimeError:  # no thread to be had (the sandbox's limits): refuse this one only
            conn.close()


def _guarded(handle: Any, conn: Any) -> None:
    try:
        handle(conn)
    except OSError:
        pass  # the gateway went away mid-request
    finally:
        conn.close()


class _Reader:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.buffer = b""

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.conn.recv(max(_CHUNK, size - len(self.buffer)))
            if not chunk:
                raise OSError("the gateway hung up")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def _serve(conn: Any) -> None:
    reader = _Reader(conn)
    request: dict[str, Any] = marshal.loads(reader.exactly(int.from_bytes(reader.exactly(4), "big")))
    op = request.get("op")
    try:
        if op == "exec":
            _exec(conn, request)
        elif op == "read":
            data = _read(request["path"], int(request["max"]))
            conn.sendall(_reply(ok=True, size=len(data)) + data)
        elif op == "write":
            _write(request["path"], reader.exactly(int(request["size"])))
            conn.sendall(_reply(ok=True))
        elif op == "stats":
            conn.sendall(_reply(ok=True, **_stats(skip=str(os.getpid()) if request.get("appOnly") else None)))
        elif op == "watch" and _APP:
            _APP[0].watch(conn)
        else:
            conn.sendall(_reply(ok=True, pid=os.getpid()))
    except Refused as exc:
        conn.sendall(_reply(ok=False, code=exc.code, message=str(exc)))
    except OSError as exc:
        conn.sendall(_reply(ok=False, code=400, message=exc.strerror or str(exc)))
    except (UnicodeError, ValueError) as exc:  # a path the file system cannot take
        conn.sendall(_reply(ok=False, code=400, message=f"invalid path: {exc}"))
    if not _warm[0]:
        _warm[0] = True
        _thread.start_new_thread(_warm_up, ())


def _warm_up() -> None:
    """Import what exec needs while nobody waits; its first call would otherwise pay for it."""
    import json  # noqa: F401
    import selectors  # noqa: F401
    import subprocess  # noqa: F401


def _reply(**fields: object) -> bytes:
    """One JSON line; ints and bools by hand, strings (errors only) through ``json``."""
    if any(isinstance(v, str) for v in fields.values()):
        import json

        return json.dumps(fields).encode() + b"\n"
    items = (f'"{k}": {str(v).lower() if isinstance(v, bool) else int(v)}' for k, v in fields.items())  # type: ignore[call-overload]
    return ("{" + ", ".join(items) + "}\n").encode()


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
    try:
        info = os.fstat(fd)
        if not _is_regular(info.st_mode):
            raise Refused(400, f"{path!r} is not a regular file")
        if info.st_size > limit:
            raise Refused(413, f"{path!r} has {info.st_size} bytes, more than the {limit} allowed")
        chunks, total = [], 0
        while total <= limit and (chunk := os.read(fd, _CHUNK)):
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)[:limit]
    finally:
        os.close(fd)


def _write(path: str, data: bytes) -> None:
    real = confine(path)
    os.makedirs(os.path.dirname(real), exist_ok=True)
    confine(path)  # the directories just made may not have moved it out
    fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        if not _is_regular(os.fstat(fd).st_mode):
            raise Refused(400, f"{path!r} is not a regular file")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _is_regular(mode: int) -> bool:
    return mode & 0o170000 == 0o100000


def _stats(skip: str | None = None) -> dict[str, int]:
    """Processes, RSS and CPU time (ms, user + system) of everything in the workload's pid namespace.

    ``skip``: a pid left out (the agent itself, for a deployment replica's usage).
    """
    processes, rss, ticks = 0, 0, 0
    for name in os.listdir("/proc"):
        if name.isdigit() and name != skip:
            try:
                with open(f"/proc/{name}/statm", "rb") as file:
                    rss += int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                with open(f"/proc/{name}/stat", "rb") as file:
                    fields = file.read().rsplit(b")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
                processes += 1
            except (OSError, IndexError, ValueError):
                continue
    return {"processes": processes, "memoryBytes": rss, "cpuMillis": ticks * 1000 // os.sysconf("SC_CLK_TCK")}


def _exec(conn: Any, request: dict[str, Any]) -> None:
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
    except (OSError, ValueError) as exc:
        _frame(conn, b"e", f"cannot run {request['command'][0]!r}: {getattr(exc, 'strerror', None) or exc}\n".encode())
        _frame(conn, b"x", _reply(exitCode=127, truncated=False, timedOut=False))
        return
    _thread.start_new_thread(_feed, (proc, request.get("stdin", b"")))
    cap, sent = int(request.get("cap", 1 << 20)), {b"o": 0, b"e": 0}
    truncated = timed_out = False
    deadline = time.monotonic() + float(request.get("timeout", 60))
    with selectors.DefaultSelector() as selector:
        assert proc.stdout is not None and proc.stderr is not None
        selector.register(proc.stdout, selectors.EVENT_READ, b"o")
        selector.register(proc.stderr, selectors.EVENT_READ, b"e")
        selector.register(conn.fileno(), selectors.EVENT_READ, None)
        # Ends when both streams close, or soon after the command exits: a server it started in
        # the background may hold them open, and must keep running.
        exited_at: float | None = None
        while len(selector.get_map()) > 1:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                killpg(proc.pid, signal.SIGKILL)
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > 0.05:
                break
            for key, _ in selector.select(min(deadline - now, 0.05 if exited_at else 0.5)):
                if key.data is None:  # the gateway hung up: the command goes too
                    killpg(proc.pid, signal.SIGKILL)
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
    _frame(conn, b"x", _reply(exitCode=code if code >= 0 else 128 - code, truncated=truncated, timedOut=timed_out))


def _feed(proc: Any, data: bytes) -> None:
    try:
        if data:
            proc.stdin.write(data)
        proc.stdin.close()
    except OSError:
        pass  # the command does not read its stdin


def _frame(conn: Any, kind: bytes, payload: bytes) -> None:
    conn.sendall(kind + len(payload).to_bytes(4, "big") + payload)


def _dial(port: int) -> Any:
    """A connection to the workload's port, its dropped SYNs retried within milliseconds.

    A server whose accept queue is full drops the SYN, and the kernel sends it again only after
    1 s (then 3 s, ...). ``python3 -m http.server`` listens with a backlog of 5, so a burst of
    proxied requests stalled for whole seconds. On loopback a handshake with room in the queue
    completes at once (``accept`` need not have run), so a connect still pending after a few
    milliseconds was dropped: it is tried again on a new socket, waiting longer each time.
    """
    for wait in _DIAL_WAITS:
        upstream = _socket.socket(_socket.AF_INET, _STREAM)
        upstream.settimeout(wait)
        try:
            upstream.connect(("127.0.0.1", port))
        except TimeoutError:
            upstream.close()
            continue
        except OSError:
            upstream.close()
            raise
        upstream.settimeout(None)
        return upstream
    raise TimeoutError("the workload's port accepted no connection")


def _splice(conn: Any, port: int) -> None:
    upstream = _dial(port)
    try:
        done = _thread.allocate_lock()
        done.acquire()
        _thread.start_new_thread(_pump, (upstream, conn, done))
        _pump(conn, upstream, None)
        done.acquire()
    finally:
        upstream.close()


def _pump(source: Any, target: Any, done: Any) -> None:
    try:
        while chunk := source.recv(_CHUNK):
            target.sendall(chunk)
        target.shutdown(_socket.SHUT_WR)
    except OSError:
        for side in (source, target):
            try:
                side.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass
    finally:
        if done is not None:
            done.release()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
