"""The app supervisor of a deployment replica's agent (``agent``); the two make one script.

A deployment replica's agent also supervises its app (``KUBEGATE_APP`` in its environment: the
command, port and health path, marshal'd and hex-encoded, which needs no import): ``watch`` keeps
the connection open and sends one JSON line per change of the app's state (first the current one),
so the gateway learns of crashes and readiness without asking.
The app runs with the agent's environment (never its sockets); its output goes to the run's log,
each line prefixed with its UTC time, and it is restarted with exponential backoff whenever it exits.

It is the first part of the script the sandbox runs (``workload.agent_script``), so the same rules hold:
builtin modules only on the way to the app's start, no ``mcp_server`` import.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal (enum and all) would cost the app ~5 ms
import _socket
import _thread
import marshal
import os
from typing import Any

_CHUNK = 65536
_STREAM = _socket.SOCK_STREAM

_FAILING_AFTER = 3
"""Exits in a row without ever becoming ready after which the app is ``failing`` (the deployment's Error)."""
_BACKOFF_MAX = 30.0
_READY_PERIOD = 2.0
"""Seconds between health checks of a ready app (a readiness probe's period)."""
_UNREADY_AFTER = 3
"""Failed health checks in a row after which a ready app is no longer ready (a kubelet's failureThreshold):
under load one check can be lost to the app's full accept queue, and that is no outage. An app that exits is
unready at once, whatever this says."""
_STARTING_PERIOD, _STARTING_FOR = 0.005, 5.0
"""While nothing listens on an app's port yet, for its first 5 s, its health path is tried every 5 ms (a
refused connect costs microseconds and the app sees nothing), so Ready comes within 5 ms of it answering.
Once it answers without being ready (each try is a request it may log), or after 5 s, the tries back off
to 1 s apart. A backoff from the very first try left up to 85 ms between the app's first answer and its
Ready, most of the run-to-run spread of create -> Ready."""


def load_app(text: str) -> App:
    config = marshal.loads(bytes.fromhex(text))
    return App(list(config["command"]), int(config["port"]), str(config["health"]))


class App:
    """The supervised app of a deployment replica: restarted on exit, probed on its health path."""

    def __init__(self, command: list[str], port: int, health: str) -> None:
        self.command, self.port, self.health = command, port, health
        self.lock = _thread.allocate_lock()
        self.state: dict[str, Any] = {"ready": False, "restarts": 0, "lastError": None, "failing": False}
        self.watchers: list[Any] = []
        self.generation = 0
        self.tail: list[str] = []
        _thread.start_new_thread(self._supervise, ())

    def update(self, **changes: Any) -> None:
        import json

        with self.lock:
            if all(self.state.get(k) == v for k, v in changes.items()):
                return
            self.state.update(changes)
            line = json.dumps(self.state).encode() + b"\n"
            for conn in list(self.watchers):
                try:
                    conn.sendall(line)
                except OSError:
                    self.watchers.remove(conn)

    def watch(self, conn: Any) -> None:
        import json

        with self.lock:
            conn.sendall(json.dumps(self.state).encode() + b"\n")
            self.watchers.append(conn)
        try:
            while conn.recv(64):
                pass  # the gateway sends nothing; a read returning b"" means it hung up
        finally:
            with self.lock:
                if conn in self.watchers:
                    self.watchers.remove(conn)

    def log(self, text: str) -> None:
        import time

        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        os.write(1, f"{stamp} {text}\n".encode(errors="replace"))
        self.tail = (self.tail + [text])[-10:]

    def _supervise(self) -> None:
        import time

        failures = 0
        while True:
            self.tail = []
            self.generation += 1
            try:
                pid, output = _spawn_app(self.command)
            except (OSError, ValueError) as exc:
                self.log(f"[kubegate] cannot start {self.command[0]!r}: {getattr(exc, 'strerror', None) or exc}")
                code = 127
            else:
                self.update(started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                _thread.start_new_thread(self._probe, (self.generation,))
                for raw in _lines(output):
                    self.log(raw.decode(errors="replace"))
                code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                killpg(pid, 9)  # what it left running in its session goes with it
            self.generation += 1
            failures = 0 if self.state["ready"] else failures + 1
            code = code if code >= 0 else 128 - code
            self.log(f"[kubegate] the app exited with code {code}; restarting")
            error = "\n".join([f"exited with code {code}", *self.tail[-6:-1]])
            self.update(ready=False, started=None, restarts=self.state["restarts"] + 1, lastError=error,
                        failing=failures >= _FAILING_AFTER)
            time.sleep(min(0.25 * 2 ** max(failures - 1, 0), _BACKOFF_MAX))

    def _probe(self, generation: int) -> None:
        import time

        delay, fast_until = _STARTING_PERIOD, time.monotonic() + _STARTING_FOR
        misses = 0
        while generation == self.generation:
            answer = _healthy(self.port, self.health)
            if generation != self.generation:
                return
            ready = answer is True
            misses = 0 if ready else misses + 1
            if not ready and self.state["ready"] and misses < _UNREADY_AFTER:
                time.sleep(_READY_PERIOD)
                continue
            self.update(ready=ready, **({"failing": False} if ready else {}))
            time.sleep(_READY_PERIOD if ready else delay)
            if answer is not None or time.monotonic() > fast_until:
                delay = min(delay * 1.5, 1.0)


def _spawn_app(command: list[str]) -> tuple[int, int]:
    """Start the app in a session of its own, stdin empty, stdout and stderr into a pipe: its pid and the
    pipe's read end. ``posix_spawnp``, not ``subprocess``, whose import alone delays the app by ~10 ms."""
    read, write = os.pipe()  # both close-on-exec: the app gets the write end only as its fds 1 and 2
    try:
        # As subprocess does for its children: the default action for the signals Python ignores for
        # itself (a shell pipeline in the app must die of SIGPIPE, not print "Broken pipe"), none blocked.
        pid = os.posix_spawnp(command[0], command, os.environ, setsid=True, setsigmask=(),
                              setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ), file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, write, 1),
            (os.POSIX_SPAWN_DUP2, write, 2),
        ])
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    return pid, read


def _lines(fd: int) -> Any:
    """The lines read from ``fd`` until its end, without their newline (a last unended one too); closes it."""
    pending = b""
    try:
        while chunk := os.read(fd, _CHUNK):
            *whole, pending = (pending + chunk).split(b"\n")
            yield from whole
            if len(pending) > _CHUNK:  # a line without end is logged in pieces, not held whole
                yield pending
                pending = b""
        if pending:
            yield pending
    finally:
        os.close(fd)


def _healthy(port: int, path: str) -> bool | None:
    """Whether ``GET path`` on the app's port answers 2xx or 3xx within a second; None when nothing listens."""
    conn = _socket.socket(_socket.AF_INET, _STREAM)
    conn.settimeout(1.0)
    try:
        try:
            conn.connect(("127.0.0.1", port))
        except OSError:
            return None
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: kubegate-probe\r\n\r\n".encode())
        head = conn.recv(64)
        for _ in range(16):  # read the answer out: closing on an unread one resets the app's write
            if not conn.recv(4096):
                break
        return head.startswith(b"HTTP/") and head[9:10] in (b"2", b"3")
    except OSError:
        return False
    finally:
        conn.close()


def killpg(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except OSError:
        pass
