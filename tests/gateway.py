"""A real ``kubegate serve`` process on 127.0.0.1 for end-to-end tests, and CLI helpers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kubegate_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEGATE_")}
    env["KUBEGATE_DATA_DIR"] = str(data_dir)
    env.update(extra or {})
    return env


def mint_key(data_dir: Path, *, name: str = "test", user: str | None = None, scopes: list[str] | None = None,
             days: int | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run ``kubegate keys create`` and return the key it prints on its last line."""
    args = [sys.executable, "-m", "mcp_server.cli", "keys", "create", "--name", name]
    if user:
        args += ["--user", user]
    if scopes:
        args += ["--scopes", *scopes]
    if days is not None:
        args += ["--expires-in-days", str(days)]
    out = subprocess.run(args, env=kubegate_env(data_dir, env), capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


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

    def start(self, timeout: float = 30.0) -> Gateway:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"gateway-{self.port}.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcp_server.cli", "serve"], env=self.env(), stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kubegate serve exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # bounded wait for the port to open
        raise TimeoutError(f"kubegate serve did not become healthy:\n{self.log_path.read_text()}")

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
