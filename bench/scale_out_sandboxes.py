"""Sandboxes among replicas: create -> running through a follower (the start handed to the leader by
the store and a ``NOTIFY``) against the same create sent to the leader itself, in one run.

Two ``kubegate serve`` replicas (local runtime, bubblewrap) on one throwaway PostgreSQL database
and one data dir. Each sample sends ``POST /api/sandboxes`` to the leader or to the follower, in
turn, and measures from the send to the ``started_at`` stamp the leader writes when the sandbox's
agent first answers (same clock); the sandbox is then deleted. The ratio is the hand-over's cost.

    python bench/scale_out_sandboxes.py [--samples 30] [--quick]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _harness import free_port, kubegate, line, median, mint_key, report_ratio  # noqa: E402

from tests.pg import PgCluster, pg_bin  # noqa: E402

NEEDS = ("postgresql", "bwrap")


def leader_port(ports: list[int]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for port in ports:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["leader"]:
                return port
        time.sleep(0.02)
    raise RuntimeError("no leader")


def started_seconds(conn: psycopg.Connection[tuple[str]], sandbox_id: str) -> float:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = conn.execute("SELECT started_at, status FROM sandboxes WHERE id = %s", (sandbox_id,)).fetchone()
        if row is not None and row[0] is not None:
            return datetime.fromisoformat(str(row[0]).replace("Z", "+00:00")).timestamp()
        if row is not None and row[1] not in ("provisioning", "running"):
            raise RuntimeError(f"{sandbox_id} ended: {row[1]}")
        time.sleep(0.002)
    raise RuntimeError(f"{sandbox_id} never ran")


def create_to_running(port: int, key: str, conn: psycopg.Connection[tuple[str]], name: str) -> float:
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    sent = time.time()
    made = httpx.post(f"{base}/api/sandboxes", json={"name": name, "image": "ubuntu", "timeout": "10m"},
                      headers=headers, timeout=60)
    sandbox_id = made.json()["sandbox"]["id"]
    took = (started_seconds(conn, sandbox_id) - sent) * 1000
    httpx.delete(f"{base}/api/sandboxes/{sandbox_id}", headers=headers, timeout=60)
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--quick", action="store_true")
    opts = parser.parse_args()
    if opts.quick:
        opts.samples = 5
    bin_dir = pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is needed: apt-get install -y postgresql")
    cluster = PgCluster(bin_dir).start()
    data_dir = Path(tempfile.mkdtemp(prefix="kubegate-bench-sbx-replicas-", dir="/var/tmp"))
    url = cluster.create_database()
    extra = {"KUBEGATE_DATABASE_URL": url, "KUBEGATE_MAX_SANDBOXES_PER_USER": "1000"}
    ports = [free_port(), free_port()]
    gateways = [kubegate(data_dir, port, extra) for port in ports]
    try:
        key = mint_key(data_dir, **extra)
        leader = leader_port(ports)
        follower = next(port for port in ports if port != leader)
        direct: list[float] = []
        handed: list[float] = []
        with psycopg.connect(url, autocommit=True) as conn:
            for i in range(opts.samples):
                direct.append(create_to_running(leader, key, conn, f"l{i}"))
                handed.append(create_to_running(follower, key, conn, f"f{i}"))
        print(line("create -> running, sent to the leader (ms)", direct))
        print(line("create -> running, sent to a follower (ms)", handed))
        print(f"hand-over cost at p50: {median(handed) - median(direct):+.1f} ms")
        report_ratio("sandbox create -> running through a follower vs the leader", median(handed) / median(direct),
                     "the same create sent to the leader", better="lower")
    finally:
        for proc in gateways:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        cluster.stop()


if __name__ == "__main__":
    main()
