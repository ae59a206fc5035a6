"""Deployment latency and proxy throughput on the local runtime, through REST on a real ``kubegate serve``.

Reports, in one run:
- create -> Ready of the example app (``hello-python`` from examples/templates.yaml): the client's
  send time against the stamp the gateway writes when the runtime reports Ready (same clock, from
  the SQLite file), against the same app's command started bare on the host and polled on its
  health path every 5 ms; the difference of the p50s is kubegate's overhead;
- HTTP requests/s through the deployment's URL (gateway -> port bridge -> app) against the same
  app on the host, hit directly; both with wrk;
- crash -> Ready again: the app exits on a request; the time until the runtime reports it Ready
  again (restart after its backoff, which is 0.25 s for a first crash, plus start and health).

    python bench/deployments.py [--samples 20] [--seconds 5] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

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
    report_ratio,
    wrk_get,
)

from mcp_server.ids import parse  # noqa: E402

NEEDS = ("wrk",)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "templates.yaml"
CRASHER = """
import http.server, os
class App(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            os._exit(1)
        self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers(); self.wfile.write(b"ok\\n")
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), App).serve_forever()
"""


def example(name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in yaml.safe_load(EXAMPLES.read_text())["templates"] if t["name"] == name)
    return found


def row(db: Path, name: str) -> tuple[str, str] | None:
    with sqlite3.connect(db) as conn:
        found = conn.execute("SELECT status, updated_at FROM deployments WHERE name = ?", (name,)).fetchone()
    return (found[0], found[1]) if found else None


async def ready_after(db: Path, name: str, after: float, timeout: float = 60) -> float:
    """The time (epoch seconds) the gateway recorded the deployment Ready, once that is after ``after``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = row(db, name)
        if found and found[0] == "Ready" and (at := parse(found[1]).timestamp()) > after:
            return at
        if found and found[0] == "Error":
            raise RuntimeError(f"{name} failed")
        await asyncio.sleep(0.005)
    raise RuntimeError(f"{name} never became Ready")


async def create_latency(http: httpx.AsyncClient, db: Path, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        sent = time.time()
        name = (await http.post("/api/deployments", json={"template": "hello-python"})).json()["name"]
        times.append((await ready_after(db, name, sent) - sent) * 1000)
        await http.delete(f"/api/deployments/{name}")
    return times


def bare_start(samples: int) -> list[float]:
    """The example app's own command on the host, polled on its health path every 5 ms until 2xx."""
    template = example("hello-python")
    times = []
    for _ in range(samples):
        port = free_port()
        env = {"PATH": os.environ["PATH"], "PORT": str(port),
               **{e["name"]: str(e["value"]) for e in template["envVars"]}}
        began = time.perf_counter()
        proc = subprocess.Popen(template["command"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}{template['healthCheckPath']}", timeout=1).is_success:
                        break
                except httpx.TransportError:
                    time.sleep(0.005)
            times.append((time.perf_counter() - began) * 1000)
        finally:
            proc.kill()
            proc.wait()
    return times


async def crash_latency(http: httpx.AsyncClient, gateway: str, db: Path, samples: int) -> list[float]:
    body = {"image": "python:3.12-slim", "port": 8080, "command": ["python3", "-c", CRASHER]}
    created = (await http.post("/api/deployments", json=body)).json()
    host = created["url"].split("://", 1)[1]
    await ready_after(db, created["name"], 0)
    times = []
    async with httpx.AsyncClient(base_url=gateway, headers={"Host": host}, timeout=30) as app:
        for _ in range(samples):
            sent = time.time()
            try:
                await app.get("/crash")
            except httpx.TransportError:
                pass  # the app died mid-request, as asked
            times.append((await ready_after(db, created["name"], sent) - sent) * 1000)
    await http.delete(f"/api/deployments/{created['name']}")
    return times


async def proxy_ratio(http: httpx.AsyncClient, gateway: str, db: Path, seconds: int) -> tuple[float, float]:
    # Limits of a "large" local size, so the app's cgroup CPU quota does not throttle it against the bare one.
    site = {**example("static-site"), "name": "bench-site", "cpuLimit": "2", "memoryLimit": "1Gi"}
    made = await http.post("/api/templates", json={k: v for k, v in site.items() if k != "envVars"})
    assert made.status_code == 201, made.text
    created = (await http.post("/api/deployments", json={"template": "bench-site"})).json()
    await ready_after(db, created["name"], 0)
    through = wrk_get(gateway + "/index.html", {"Host": created["url"].split("://", 1)[1]}, seconds)
    await http.delete(f"/api/deployments/{created['name']}")

    port = free_port()
    with tempfile.TemporaryDirectory() as work, open(Path(work) / "log", "wb") as log:
        # Its request log goes to a file, as a deployment's goes to the gateway's copy.
        env = {**os.environ, "PORT": str(port), "SITE_TITLE": "bench"}
        with bare_server(site["command"], port, cwd=work, env=env, output=log) as direct_url:
            direct = wrk_get(f"{direct_url}/index.html", {}, seconds)
    return through, direct


async def main(samples: int, seconds: int) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    data_dir = Path(tempfile.mkdtemp(prefix="kubegate-bench-dep-", dir="/var/tmp"))
    port = free_port()
    extra = {"KUBEGATE_MAX_DEPLOYMENTS_PER_USER": "500", "KUBEGATE_TEMPLATES_FILE": str(EXAMPLES),
             "KUBEGATE_ADMIN_EMAILS": "operator@localhost"}
    key = mint_key(data_dir, **extra)
    server = kubegate(data_dir, port, extra)
    gateway = f"http://127.0.0.1:{port}"
    db = data_dir / "kubegate.db"
    try:
        async with httpx.AsyncClient(base_url=gateway, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            create_times = await create_latency(http, db, samples)
            bare_times = bare_start(samples)
            crash_times = await crash_latency(http, gateway, db, samples)
            through, direct = await proxy_ratio(http, gateway, db, seconds)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(line("create -> Ready (hello-python)", create_times))
    print(line("same app bare, polled on /healthz", bare_times))
    print(f"{'overhead, p50':<38} {median(create_times) - median(bare_times):7.1f} ms   (target < 100 ms)")
    print(ratio_line("create / bare, p50", median(create_times) / median(bare_times)))
    print(line("crash -> Ready again", crash_times), "  (includes the 250 ms first-crash backoff)")
    print(rate_line("HTTP through the deployment URL", through))
    print(rate_line("HTTP to the same app, direct", direct))
    print(ratio_line("URL / direct", through / direct), "  (target >= 0.5x)")
    report_ratio("deployment create->Ready / the app bare, p50", median(create_times) / median(bare_times),
                 "the same app started bare, polled on its health path", better="lower")
    report_ratio("deployment URL req/s / direct", through / direct, "the same app hit directly")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="5 samples, 2 s of load")
    options = parser.parse_args()
    if options.quick:
        options.samples, options.seconds = 5, 2
    asyncio.run(main(options.samples, options.seconds))
