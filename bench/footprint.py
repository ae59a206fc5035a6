"""Start-up time and idle memory of ``kubegate serve`` against a bare MCP SDK server, in one run.

The brief's goal: ``kubegate serve`` starts within 1.5x and idles within 1.4x the memory of a bare
MCP SDK server. Rounds alternate the two servers, so a neighbour's load falls on both:

- start: from ``Popen`` until ``/healthz`` answers 200, polled every 5 ms. kubegate starts on the
  embedded defaults twice a round: on a fresh data dir (it creates and migrates its database, as a
  first start does), then again on that data dir (a restart); both probe the sandbox. The bare
  server is ``bench/_bare_mcp.py --sessions``;
- idle memory: the resident set (``VmRSS``, the process and every child it left running) once the
  server has answered one MCP session (initialize, tools/list, one tool call) and then sat idle
  for a second.

    python bench/footprint.py [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import ROOT, free_port, median, mint_key, ratio_line, report_ratio  # noqa: E402

_MCP = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
_VERSION = "2025-11-25"


def _rss_kib(pid: int) -> int:
    """The resident set of ``pid`` and all its descendants, in KiB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        todo.extend(int(child) for child in children)
    return total


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before it answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def _session(base: str, path: str, tool: str, arguments: dict[str, object], headers: dict[str, str]) -> None:
    """One MCP session: initialize, initialized, tools/list and one tool call, each answered without error."""
    with httpx.Client(base_url=base, headers={**_MCP, **headers}, timeout=30) as http:
        init = http.post(path, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": _VERSION, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
        init.raise_for_status()
        session = {"Mcp-Session-Id": init.headers["mcp-session-id"], "Mcp-Protocol-Version": _VERSION}
        http.post(path, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        for number, (method, params) in enumerate(
                [("tools/list", {}), ("tools/call", {"name": tool, "arguments": arguments})], start=2):
            answer = http.post(path, json={"jsonrpc": "2.0", "id": number, "method": method, "params": params},
                               headers=session)
            answer.raise_for_status()
            if '"error"' in answer.text or '"isError":true' in answer.text.replace(" ", ""):
                raise RuntimeError(f"{method} failed: {answer.text[:300]}")


def _measure(start: Callable[[int], tuple[subprocess.Popen[bytes], Callable[[str], None]]]) -> tuple[float, int]:
    """(seconds until /healthz answered, idle KiB after one MCP session) for one start of a server."""
    port = free_port()
    began = time.perf_counter()
    proc, drive = start(port)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        started = time.perf_counter() - began
        drive(f"http://127.0.0.1:{port}")
        time.sleep(1.0)
        return started, _rss_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _bare(port: int) -> tuple[subprocess.Popen[bytes], Callable[[str], None]]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_bare_mcp.py"), str(port), "--sessions"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return proc, lambda base: _session(base, "/mcp", "echo", {"text": "hi"}, {})


def _kubegate(data_dir: Path) -> Callable[[int], tuple[subprocess.Popen[bytes], Callable[[str], None]]]:
    def start(port: int) -> tuple[subprocess.Popen[bytes], Callable[[str], None]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEGATE_")}
        env.update({"KUBEGATE_DATA_DIR": str(data_dir), "KUBEGATE_PORT": str(port)})
        proc = subprocess.Popen([sys.executable, "-m", "mcp_server.cli", "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)

        def drive(base: str) -> None:
            key = mint_key(data_dir)  # another process: it adds nothing to the gateway's memory
            _session(base, "/api/mcp", "api_keys_list", {}, {"Authorization": f"Bearer {key}"})

        return proc, drive
    return start


def main(rounds: int) -> None:
    # A data dir outside /tmp, as a real install has (the run-uid layout refuses a world-writable parent).
    base_dir = Path(tempfile.mkdtemp(prefix="kubegate-footprint-", dir="/var/tmp"))
    try:
        bare, fresh, ours = [], [], []
        _measure(_bare)  # warm the page cache for both before anything is counted
        _measure(_kubegate(Path(tempfile.mkdtemp(dir=base_dir))))
        for _ in range(rounds):
            data_dir = Path(tempfile.mkdtemp(dir=base_dir))
            bare.append(_measure(_bare))
            fresh.append(_measure(_kubegate(data_dir)))
            ours.append(_measure(_kubegate(data_dir)))
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)
    start_bare, start_ours = median([s for s, _ in bare]), median([s for s, _ in ours])
    start_fresh = median([s for s, _ in fresh])
    rss_bare, rss_ours = median([m for _, m in bare]), median([m for _, m in ours])
    print(f"{'start -> /healthz, bare MCP SDK server':<44} p50 {start_bare * 1000:7.0f} ms")
    print(f"{'start -> /healthz, kubegate serve, restart':<44} p50 {start_ours * 1000:7.0f} ms")
    print(f"{'start -> /healthz, kubegate serve, first':<44} p50 {start_fresh * 1000:7.0f} ms")
    print(ratio_line("start, kubegate restart / bare (goal <= 1.5x)", start_ours / start_bare))
    print(ratio_line("start, kubegate first start / bare", start_fresh / start_bare))
    print(f"{'idle RSS, bare MCP SDK server':<44} p50 {rss_bare / 1024:7.1f} MiB")
    print(f"{'idle RSS, kubegate serve (with children)':<44} p50 {rss_ours / 1024:7.1f} MiB")
    print(ratio_line("idle memory, kubegate / bare (goal <= 1.4x)", rss_ours / rss_bare))
    report_ratio("kubegate serve (re)start -> /healthz / bare MCP SDK server, p50", start_ours / start_bare,
                 "bare MCP SDK server (sessions), same rounds", better="lower")
    report_ratio("kubegate serve first start (new database) -> /healthz / bare MCP SDK server, p50",
                 start_fresh / start_bare, "bare MCP SDK server (sessions), same rounds", better="lower")
    report_ratio("kubegate serve idle RSS / bare MCP SDK server, p50", rss_ours / rss_bare,
                 "bare MCP SDK server (sessions) after one session", better="lower")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    args = parser.parse_args()
    main(3 if args.quick else args.rounds)
