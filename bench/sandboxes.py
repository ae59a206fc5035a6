"""Sandbox latency and proxy throughput on the local runtime, through REST on a real ``kubegate serve``.

Reports, in one run:
- create -> running, p50/p99: the client's send time against the ``startedAt`` stamp the gateway
  writes when the sandbox's agent first answers (same clock, from the SQLite file);
- ``exec`` of ``true`` through REST, p50/p99, against a bare ``bwrap ... true`` with the runtime's
  own bubblewrap plan, started as a subprocess;
- HTTP requests/s through the sandbox URL (gateway -> port bridge -> server in the sandbox)
  against the same server program on the host, hit directly; both with wrk.

    python bench/sandboxes.py [--samples 50] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import (  # noqa: E402
    bare_server,
    free_port,
    kubegate,
    line,
    median,
    mint_key,
    rate_line,
    ratio_line,
    wrk_get,
)

from mcp_server.config import Settings  # noqa: E402
from mcp_server.ids import parse  # noqa: E402
from mcp_server.runtime import containment, isolation  # noqa: E402
from mcp_server.runtime.base import RunSpec  # noqa: E402

SERVER = "python3 -m http.server {port} --bind 127.0.0.1"


def started_at(db: Path, sandbox_id: str) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT started_at FROM sandboxes WHERE id = ?", (sandbox_id,)).fetchone()
    return row[0] if row else None


async def running(http: httpx.AsyncClient, sid: str) -> None:
    deadline = time.monotonic() + 30
    while (await http.get(f"/api/sandboxes/{sid}")).json()["sandbox"]["status"] != "running":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sid} never ran")
        await asyncio.sleep(0.005)


async def create_latency(http: httpx.AsyncClient, db: Path, samples: int) -> list[float]:
    times = []
    for i in range(samples):
        sent = time.time()
        response = await http.post("/api/sandboxes", json={"name": f"b{i}", "image": "ubuntu", "timeout": "10m"})
        sid = response.json()["sandbox"]["id"]
        await running(http, sid)
        stamp = started_at(db, sid)
        assert stamp, sid
        times.append((parse(stamp).timestamp() - sent) * 1000)
        await http.delete(f"/api/sandboxes/{sid}")
    return times


async def exec_latency(http: httpx.AsyncClient, sid: str, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        out = (await http.post(f"/api/sandboxes/{sid}/exec", json={"command": ["true"]})).json()
        times.append((time.perf_counter() - began) * 1000)
        assert out["exitCode"] == 0, out
    return times


def bare_bwrap(work: Path, samples: int, command: tuple[str, ...] = ("true",)) -> list[float]:
    """``command`` under the runtime's own bubblewrap plan, as a bare subprocess."""
    confinement, _ = containment.confine(Settings(data_dir=work.parent))
    plan = isolation.plan(RunSpec(run_id="bench", owner="bench", image="x", command=command), work, confinement)
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        subprocess.run(plan.argv, env=plan.env, cwd=plan.cwd, check=True)
        times.append((time.perf_counter() - began) * 1000)
    return times



async def url_rate(http: httpx.AsyncClient, gateway: str, body: dict[str, str], server: str,
                   seconds: int) -> tuple[str, float]:
    """A sandbox (``body``) serving index.html with ``server`` on port 8080: its id, and the req/s its URL took."""
    sandbox = (await http.post("/api/sandboxes", json=body)).json()["sandbox"]
    sid, url, password = sandbox["id"], sandbox["url"], sandbox["credentials"]["password"]
    await running(http, sid)
    await http.post(f"/api/sandboxes/{sid}/files", json={"path": "index.html", "content": "hello\n"})
    await http.post(f"/api/sandboxes/{sid}/exec", json={"command": ["sh", "-c", f"nohup {server} >/dev/null 2>&1 &"]})
    host = url.split("://", 1)[1]
    auth = "Basic " + base64.b64encode(f"u:{password}".encode()).decode()
    deadline = time.monotonic() + 30
    while (await http.get(gateway + "/", headers={"Host": host, "Authorization": auth})).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the sandbox's server never answered")
        await asyncio.sleep(0.05)
    return sid, wrk_get(gateway + "/index.html", {"Host": host, "Authorization": auth}, seconds)


async def proxy_ratio(http: httpx.AsyncClient, gateway: str, seconds: int) -> tuple[float, float]:
    # large: the sandbox's cgroup CPU quota (half a core for small) would throttle its server, not the proxy.
    body = {"name": "web", "image": "ubuntu", "timeout": "10m", "size": "large"}
    sid, through = await url_rate(http, gateway, body, SERVER.format(port=8080), seconds)
    await http.delete(f"/api/sandboxes/{sid}")

    port = free_port()
    with tempfile.TemporaryDirectory() as site:
        Path(site, "index.html").write_text("hello\n")
        with bare_server(SERVER.format(port=port).split(), port, cwd=site) as direct_url:
            direct = wrk_get(f"{direct_url}/index.html", {}, seconds)
    return through, direct


async def main(samples: int, seconds: int) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    data_dir = Path(tempfile.mkdtemp(prefix="kubegate-bench-sbx-", dir="/var/tmp"))
    port = free_port()
    extra = {"KUBEGATE_MAX_SANDBOXES_PER_USER": "1000"}
    key = mint_key(data_dir, **extra)
    server = kubegate(data_dir, port, extra)
    gateway = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=gateway, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            created = create_latency(http, data_dir / "kubegate.db", samples)
            create_times = await created
            sid = (await http.post("/api/sandboxes", json={"name": "exec", "image": "ubuntu"})).json()["sandbox"]["id"]
            await running(http, sid)
            exec_times = await exec_latency(http, sid, samples)
            await http.delete(f"/api/sandboxes/{sid}")
            work = data_dir / "bare-work"
            work.mkdir()
            bare_times = bare_bwrap(work, samples)
            # The floor under create -> running: a sandbox is a Python supervisor plus a Python agent.
            python_times = bare_bwrap(work, samples, ("/usr/bin/python3", "-I", "-S", "-c", "pass"))
            through, direct = await proxy_ratio(http, gateway, seconds)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(line("create -> running", create_times), "  (target p50 < 100 ms)")
    print(line("bare `bwrap ... python3 -c pass`", python_times))
    print(line("exec `true` through REST", exec_times), "  (target p50 < 20 ms)")
    print(line("bare `bwrap ... true` (baseline)", bare_times))
    print(ratio_line("exec / bare bwrap, p50", median(exec_times) / median(bare_times)))
    print(rate_line("HTTP through the sandbox URL", through))
    print(rate_line("HTTP to the same server, direct", direct))
    print(ratio_line("URL / direct", through / direct), "  (target >= 0.5x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(main(options.samples, options.seconds))
