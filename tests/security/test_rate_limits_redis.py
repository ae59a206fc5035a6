"""Rate limits shared between replicas through Redis: two gateways, one budget per user."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway import Gateway, free_port, mint_key

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ready = threading.Event()

    def watch() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if b"Ready to accept connections" in line:
                ready.set()
        ready.set()

    threading.Thread(target=watch, daemon=True).start()
    assert ready.wait(20) and proc.poll() is None, "redis-server did not start"
    yield f"redis://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


async def test_two_replicas_share_one_budget(redis_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = mint_key(data_dir, user="replicated@example.test")
    env = {"KUBEGATE_RATE_LIMIT_STORAGE": redis_url, "KUBEGATE_RATE_LIMIT_API_KEY": "10"}
    replicas = [Gateway(data_dir, env_extra=env).start(), Gateway(data_dir, env_extra=env).start()]
    try:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(headers=headers) as http:
            responses = await asyncio.gather(*(
                http.get(f"{replicas[i % 2].url}/api/api-keys") for i in range(16)
            ))
        statuses = sorted(r.status_code for r in responses)
        # With a budget per replica, 8 requests to each would all pass; shared, exactly 10 do.
        assert statuses.count(200) == 10 and statuses.count(429) == 6, statuses
        served = {r.url.port for r in responses if r.status_code == 200}
        assert len(served) == 2, "both replicas answered within the one shared budget"
        refused = next(r for r in responses if r.status_code == 429)
        assert refused.json()["error"] == "rate_limit_exceeded" and "retry-after" in refused.headers
    finally:
        for gw in replicas:
            gw.stop()
