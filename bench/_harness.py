"""Shared benchmark plumbing: start servers as subprocesses, drive them with wrk, summarise."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: Sequence[str], env: dict[str, str], health_url: str, timeout: float = 30, *,
          cwd: Path | str = ROOT, output: IO[bytes] | int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """``args`` started, once ``health_url`` answers at all (``output`` takes its stdout and stderr)."""
    proc = subprocess.Popen(list(args), env=env, stdout=output, stderr=output, cwd=cwd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(health_url, timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{args} did not start")


@contextmanager
def bare_server(args: Sequence[str], port: int, *, cwd: Path | str, env: dict[str, str] | None = None,
                output: IO[bytes] | int = subprocess.DEVNULL) -> Iterator[str]:
    """A baseline server on the host, serving ``http://127.0.0.1:{port}`` (yielded) until the block ends."""
    proc = start(args, dict(os.environ) if env is None else env, f"http://127.0.0.1:{port}/", cwd=cwd, output=output)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()


def kubegate(data_dir: Path, port: int, extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEGATE_")}
    env.update({"KUBEGATE_DATA_DIR": str(data_dir), "KUBEGATE_PORT": str(port), **(extra or {})})
    return start([sys.executable, "-m", "mcp_server.cli", "serve"], env, f"http://127.0.0.1:{port}/healthz")


def mint_key(data_dir: Path, **env_extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEGATE_")}
    env.update({"KUBEGATE_DATA_DIR": str(data_dir), **env_extra})
    out = subprocess.run([sys.executable, "-m", "mcp_server.cli", "keys", "create", "--name", "bench"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_cpu(url: str, body: dict[str, object] | None, headers: dict[str, str], *, seconds: int, connections: int,
            pid: int) -> tuple[float, float]:
    """Requests per second, and the server's CPU microseconds per request, under one wrk run.

    CPU per request moves less than throughput on a shared machine: a neighbour stealing the
    core slows both servers' clocks but not the work each request costs.
    """
    before = cpu_seconds(pid)
    rate = wrk(url, body, headers, seconds=seconds, connections=connections)
    used = cpu_seconds(pid) - before
    return rate, used / (rate * seconds) * 1e6


def wrk(url: str, body: dict[str, object] | None, headers: dict[str, str], *, seconds: int,
        connections: int) -> float:
    """Requests per second wrk achieved POSTing ``body`` (GET when None; one wrk thread: the other core serves)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    lines = ['wrk.method = "GET"'] if body is None else [
        'wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}"]
    lines += [f'wrk.headers[{json.dumps(k)}] = {json.dumps(v)}' for k, v in headers.items()]
    lines += ["function response(status, headers, body)",
              '  if status ~= 200 then io.stderr:write("HTTP " .. status .. " " .. body .. "\\n") end', "end"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name, url],
                         capture_output=True, text=True, check=True)
    os.unlink(script.name)
    if "Non-2xx" in out.stdout:
        raise RuntimeError(f"errors during load:\n{out.stdout}\n{out.stderr[:2000]}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    assert match, out.stdout
    return float(match.group(1))


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def line(label: str, values: Sequence[float]) -> str:
    """A latency row: p50 and p99 in milliseconds."""
    return f"{label:<38} p50 {median(values):7.1f} ms   p99 {percentile(values, 99):7.1f} ms"


def ratio_line(label: str, value: float) -> str:
    return f"{label:<38} {value:7.2f}x"


def rate_line(label: str, value: float) -> str:
    return f"{label:<38}{value:9.0f} req/s"


def wrk_get(url: str, headers: dict[str, str], seconds: int) -> float:
    """Requests per second wrk achieved GETting ``url`` (one thread, 8 connections); any error fails the run."""
    args = ["wrk", "-t1", "-c8", f"-d{seconds}s", url]
    for name, value in headers.items():
        args[1:1] = ["-H", f"{name}: {value}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"errors during load:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def report_ratio(name: str, value: float, baseline: str, *, better: str = "higher") -> None:
    """One machine-readable line (``RATIO {json}``) that ``bench/run_all.py`` gathers into RESULTS.md.

    ``better`` says which way is good: ``higher`` (a throughput ratio) or ``lower`` (a latency ratio).
    """
    print("RATIO " + json.dumps({"name": name, "value": round(value, 3), "baseline": baseline, "better": better}),
          flush=True)
