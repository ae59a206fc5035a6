"""A real ``kubegate serve`` process on 127.0.0.1 for end-to-end tests, and CLI helpers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kubegate_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEGATE_")}
    env["KUBEGATE_DATA_DIR"] = str(data_dir)
    env.update(extra or {})
    return env


class _Minter:
    """This worker's one ``tests/keyminter.py`` process (started on first use, ends with the worker)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: subprocess.Popen[str] | None = None

    def mint(self, request: dict[str, Any]) -> str:
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self.process = subprocess.Popen([sys.executable, "-m", "tests.keyminter"], cwd=ROOT, text=True,
                                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the key minter (tests/keyminter.py) ended; its stderr is above")
        answer: dict[str, str] = json.loads(line)
        if "key" not in answer:
            raise RuntimeError(f"keys create failed: {answer['error']}")
        return answer["key"]


_minter = _Minter()


def mint_key(data_dir: Path, *, name: str = "test", user: str | None = None, scopes: list[str] | None = None,
             days: int | None = None, env: Mapping[str, str] | None = None) -> str:
    """What ``kubegate keys create`` mints and prints on its last line, through tests/keyminter.py (the same
    arguments, environment and coroutine) to spare a start-up per key."""
    argv = ["--name", name]
    if user:
        argv += ["--user", user]
    if scopes:
        argv += ["--scopes", *scopes]
    if days is not None:
        argv += ["--expires-in-days", str(days)]
    # The whole environment the CLI would start in: a fixture may have changed ours since (XDG_CONFIG_HOME).
    return _minter.mint({"env": kubegate_env(data_dir, env), "argv": argv})


@dataclass
class Gateway:
    data_dir: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return kubegate_env(self.data_dir, {"KUBEGATE_PORT": str(self.port), **self.env_extra})

    def start(self, timeout: float = 60.0) -> Gateway:
        """Start ``kubegate serve`` and return once uvicorn says it is listening (its output goes to a log).

        ``timeout`` bounds a hang, it measures nothing: under coverage, with other suites on the same two
        cores, a healthy start has taken over 30 s (an empty log, then a failed fixture)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"gateway-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcp_server.cli", "serve"], env=self.env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        listening = threading.Event()
        threading.Thread(target=self._copy_output, args=(listening,), daemon=True).start()
        if not listening.wait(timeout) or self.process.poll() is not None:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"kubegate serve did not start:\n{self.logs()}")
        return self

    def _copy_output(self, listening: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None and self.log_path is not None
        with self.log_path.open("ab") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                if b"Uvicorn running on" in line:
                    listening.set()
        listening.set()  # the process ended: let start() see it

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path else ""
