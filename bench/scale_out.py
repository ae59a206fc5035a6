"""Scale-out: leader failover, REST through a round-robin proxy with 1 and 3 replicas, SQLite vs PostgreSQL.

Everything runs on this machine: a throwaway PostgreSQL cluster (``tests/pg.py``), ``kubegate
serve`` replicas on it sharing one data dir, and the tests' round-robin proxy in a process of its
own (``python -m tests.roundrobin``).

- failover: three replicas; a workflow's first step holds on a FIFO; the leader is SIGKILLed and
  the step released at once; measured from the kill to the second step's ``started_at`` as the
  new leader records it. Leadership is a PostgreSQL advisory lock: a killed leader's session ends
  with its socket, so the lock passes at once; a silent partition is bounded by TCP keepalives
  (4 s idle + 2 probes 2 s apart, ~8 s). Baseline: Argo's 10 s requeue (target < 10 s).
- Lease takeover (Kubernetes runtime, the fake cluster): the leader is SIGKILLed; measured until
  another replica reports itself leader. The Lease lasts 8 s, is renewed every 2 s (deadline 6 s)
  and followers retry every 1 s, so a killed leader is replaced within about 9 s.
- REST: wrk ``GET /api/tasks`` with a key through the proxy, to one replica and to three.
  Two cores run wrk, the proxy and the replicas together, so three replicas cannot go faster
  here; the ratio says what the proxy and the sharing cost, not what three machines would give.
- store: the same ``GET /api/tasks`` straight to one gateway on SQLite and one on PostgreSQL.
- deployment hand-off: the example app created through a follower (which only writes the row; its
  ``NOTIFY`` tells the leader, which keeps every deployment) against the same app created through
  the leader itself, from the client's send to the Ready the leader records; three replicas, the
  local runtime under bubblewrap, trials alternating.

    python bench/scale_out.py [--trials 5] [--seconds 5] [--connections 16] [--quick] [--store-only]
                              [--deployments-only]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
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

from _harness import free_port, kubegate, median, mint_key, report_ratio, start, wrk, wrk_cpu  # noqa: E402

from tests.pg import PgCluster, pg_bin  # noqa: E402

NEEDS = ("wrk", "fake-cluster", "postgresql")
ARGO_REQUEUE_SECONDS = 10.0


def replicas(data_dir: Path, url: str, count: int, extra: dict[str, str]) -> list[tuple[int, subprocess.Popen[bytes]]]:
    env = {"KUBEGATE_DATABASE_URL": url, "KUBEGATE_ISOLATION": "none", **extra}
    ports = [free_port() for _ in range(count)]
    return [(port, kubegate(data_dir, port, env)) for port in ports]


def leader(gateways: list[tuple[int, subprocess.Popen[bytes]]]) -> tuple[int, subprocess.Popen[bytes]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for port, proc in gateways:
            try:
                if proc.poll() is None and httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["leader"]:
                    return port, proc
            except httpx.HTTPError:
                continue
        time.sleep(0.02)
    raise RuntimeError("no leader")


def stamp_seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def failover(url: str, trials: int) -> list[float]:
    data_dir = Path(tempfile.mkdtemp(prefix="kg-bench-scale-"))
    fifo_dir = Path(tempfile.mkdtemp(prefix="kg-bench-gate-"))
    public = free_port()
    extra = {"KUBEGATE_PUBLIC_URL": f"http://127.0.0.1:{public}"}
    gateways = replicas(data_dir, url, 3, extra)
    key = mint_key(data_dir, KUBEGATE_DATABASE_URL=url)
    seconds: list[float] = []
    try:
        for trial in range(trials):
            gate = fifo_dir / f"gate-{trial}"
            os.mkfifo(gate)
            held = os.open(gate, os.O_RDWR | os.O_NONBLOCK)
            port, proc = leader(gateways)
            body = {"name": "failover", "steps": [
                {"name": "hold", "image": "alpine", "command": ["sh", "-c", f"read x < {gate}"]},
                {"name": "next", "image": "alpine", "command": ["true"], "dependsOn": ["hold"]}]}
            made = httpx.post(f"http://127.0.0.1:{port}/api/workflows", json=body,
                              headers={"Authorization": f"Bearer {key}"}, timeout=30).json()["workflow"]["id"]
            with psycopg.connect(url) as conn:
                _until(conn, "SELECT 1 FROM workflow_steps WHERE workflow_id = %s AND name = 'hold' "
                       "AND status = 'running' AND started_at IS NOT NULL", made)
                killed_at = time.time()
                proc.send_signal(signal.SIGKILL)
                os.write(held, b"go\n")
                started = _until(conn, "SELECT started_at FROM workflow_steps WHERE workflow_id = %s "
                                 "AND name = 'next' AND started_at IS NOT NULL", made)
            proc.wait()
            os.close(held)
            seconds.append(stamp_seconds(started) - killed_at)
            index = next(i for i, (p, _) in enumerate(gateways) if p == port)
            fresh = free_port()  # not the killed one's: its socket may linger a moment
            gateways[index] = (fresh, kubegate(data_dir, fresh, {"KUBEGATE_DATABASE_URL": url,
                                                                 "KUBEGATE_ISOLATION": "none", **extra}))
    finally:
        for _, proc in gateways:
            proc.terminate()
            proc.wait()
    return seconds


def deployment_handoff(url: str, trials: int) -> tuple[list[float], list[float]]:
    """create -> Ready (ms) of the example app made through a follower, and through the leader."""
    data_dir = Path(tempfile.mkdtemp(prefix="kg-bench-apps-", dir="/var/tmp"))  # bwrap hides /tmp
    extra = {"KUBEGATE_DATABASE_URL": url, "KUBEGATE_TEMPLATES_FILE": str(HERE.parent / "examples" / "templates.yaml"),
             "KUBEGATE_PUBLIC_URL": f"http://127.0.0.1:{free_port()}"}
    gateways = [(port, kubegate(data_dir, port, extra)) for port in (free_port() for _ in range(3))]
    headers = {"Authorization": f"Bearer {mint_key(data_dir, KUBEGATE_DATABASE_URL=url)}"}
    through: dict[str, list[float]] = {"follower": [], "leader": []}
    try:
        lead, _ = leader(gateways)
        follower = next(port for port, _ in gateways if port != lead)
        with psycopg.connect(url, autocommit=True) as conn:
            for trial in range(trials * 2):
                kind, port = ("follower", follower) if trial % 2 == 0 else ("leader", lead)
                sent = time.time()
                made = httpx.post(f"http://127.0.0.1:{port}/api/deployments", json={"template": "hello-python"},
                                  headers=headers, timeout=30).json()["name"]
                ready = _until(conn, "SELECT updated_at FROM deployments WHERE name = %s AND status = 'Ready'", made)
                through[kind].append((stamp_seconds(ready) - sent) * 1000)
                httpx.delete(f"http://127.0.0.1:{lead}/api/deployments/{made}", headers=headers, timeout=30)
                _gone(conn, made)
    finally:
        for _, proc in gateways:
            proc.terminate()
            proc.wait()
    return through["follower"], through["leader"]


def _gone(conn: psycopg.Connection[tuple[str]], name: str) -> None:
    deadline = time.monotonic() + 60
    while conn.execute("SELECT 1 FROM deployments WHERE name = %s", (name,)).fetchone() is not None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} was never deleted")
        time.sleep(0.01)


def _until(conn: psycopg.Connection[tuple[str]], sql: str, workflow_id: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = conn.execute(sql, (workflow_id,)).fetchone()
        if row is not None:
            return str(row[0])
        time.sleep(0.005)
    raise RuntimeError(f"timed out: {sql}")


def serve(data_dir: Path, port: int, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    """``kubegate serve`` with a patient start: the Kubernetes client's import alone is slow on a busy machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEGATE_")}
    env.update({"KUBEGATE_DATA_DIR": str(data_dir), "KUBEGATE_PORT": str(port), **extra})
    return start([sys.executable, "-m", "mcp_server.cli", "serve"], env, f"http://127.0.0.1:{port}/healthz",
                 timeout=120)


def lease_takeover(url: str, trials: int) -> list[float]:
    import asyncio

    from k8s.client import KubeClient

    data_dir = Path(tempfile.mkdtemp(prefix="kg-bench-lease-"))
    kubeconfig = data_dir / "kubeconfig"
    sim = subprocess.Popen([sys.executable, "-m", "k8s.sim", "--port", str(free_port()), "--kubeconfig",
                            str(kubeconfig)], stdout=subprocess.PIPE, text=True)
    assert sim.stdout is not None and "fake cluster at" in sim.stdout.readline()

    async def gateway_namespace() -> None:
        kube = await KubeClient.connect(kubeconfig)
        await kube.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubegate"}})
        await kube.close()

    asyncio.run(gateway_namespace())
    env = {"KUBEGATE_DATABASE_URL": url, "KUBEGATE_RUNTIME": "kubernetes", "KUBEGATE_KUBECONFIG": str(kubeconfig)}
    gateways = [(port, serve(data_dir, port, env)) for port in (free_port(), free_port())]
    seconds: list[float] = []
    try:
        for _ in range(trials):
            port, proc = leader(gateways)
            killed_at = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            leader([g for g in gateways if g[0] != port])
            seconds.append(time.monotonic() - killed_at)
            index = next(i for i, (p, _) in enumerate(gateways) if p == port)
            fresh = free_port()
            gateways[index] = (fresh, serve(data_dir, fresh, env))
    finally:
        for _, proc in gateways:
            proc.terminate()
            proc.wait()
        sim.terminate()
        sim.wait()
    return seconds


def through_proxy(url: str, count: int, seconds: int, connections: int) -> float:
    data_dir = Path(tempfile.mkdtemp(prefix="kg-bench-rr-"))
    public = free_port()
    extra = {"KUBEGATE_PUBLIC_URL": f"http://127.0.0.1:{public}", "KUBEGATE_RATE_LIMIT_API_KEY": "100000000"}
    gateways = replicas(data_dir, url, count, extra)
    key = mint_key(data_dir, KUBEGATE_DATABASE_URL=url)
    argv = [sys.executable, "-m", "tests.roundrobin", str(public), *(str(p) for p, _ in gateways)]
    proxy = start(argv, dict(os.environ), f"http://127.0.0.1:{public}/healthz")
    try:
        return wrk(f"http://127.0.0.1:{public}/api/tasks", None, {"Authorization": f"Bearer {key}"},
                   seconds=seconds, connections=connections)
    finally:
        for proc in [proxy, *(p for _, p in gateways)]:
            proc.terminate()
            proc.wait()


def store_read(url: str | None, seconds: int, connections: int) -> tuple[float, float]:
    """Requests/s and the gateway's CPU microseconds per request (steadier than the rate on shared cores)."""
    data_dir = Path(tempfile.mkdtemp(prefix="kg-bench-store-"))
    extra = {"KUBEGATE_RATE_LIMIT_API_KEY": "100000000", **({"KUBEGATE_DATABASE_URL": url} if url else {})}
    port = free_port()
    proc = kubegate(data_dir, port, extra)
    key = mint_key(data_dir, **({"KUBEGATE_DATABASE_URL": url} if url else {}))
    try:
        return wrk_cpu(f"http://127.0.0.1:{port}/api/tasks", None, {"Authorization": f"Bearer {key}"},
                       seconds=seconds, connections=connections, pid=proc.pid)
    finally:
        proc.terminate()
        proc.wait()


def store_cost(cluster: PgCluster, seconds: int, connections: int) -> None:
    (sqlite, sqlite_cpu), (postgres, postgres_cpu) = (store_read(None, seconds, connections),
                                                      store_read(cluster.create_database(), seconds, connections))
    print(f"REST GET /api/tasks, one gateway: SQLite {sqlite:.0f} req/s ({sqlite_cpu:.0f} us CPU/request), "
          f"PostgreSQL {postgres:.0f} req/s ({postgres_cpu:.0f} us CPU/request)  ({postgres / sqlite:.2f}x; "
          f"load {os.getloadavg()[0]:.1f})")
    report_ratio("REST read on PostgreSQL vs SQLite", postgres / sqlite, "the same read on SQLite")
    report_ratio("REST read gateway CPU per request, PostgreSQL vs SQLite", postgres_cpu / sqlite_cpu,
                 "the same read on SQLite", better="lower")


def handoff(cluster: PgCluster, trials: int) -> None:
    follower, lead = deployment_handoff(cluster.create_database(), trials)
    print(f"deployment create -> Ready through a follower: p50 {median(follower):.1f} ms, max {max(follower):.1f} ms;"
          f" through the leader: p50 {median(lead):.1f} ms, max {max(lead):.1f} ms ({trials} trials each)")
    report_ratio("deployment create->Ready through a follower vs the leader, p50", median(follower) / median(lead),
                 "the same create sent to the leader", better="lower")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--store-only", action="store_true", help="only the SQLite vs PostgreSQL read")
    parser.add_argument("--deployments-only", action="store_true", help="only the deployment hand-off")
    opts = parser.parse_args()
    if opts.quick:
        opts.trials, opts.seconds = 2, 2
    bin_dir = pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is needed: apt-get install -y postgresql")
    cluster = PgCluster(bin_dir).start()
    try:
        if opts.store_only:
            store_cost(cluster, opts.seconds, opts.connections)
            return
        if opts.deployments_only:
            handoff(cluster, opts.trials)
            return
        took = failover(cluster.create_database(), opts.trials)
        print(f"failover (leader SIGKILL -> next step started), {len(took)} trials: p50 {median(took):.3f} s, "
              f"max {max(took):.3f} s  (advisory lock; keepalive 4 s + 2 x 2 s; Argo requeue 10 s)")
        report_ratio("scale-out failover p50 vs Argo requeue", median(took) / ARGO_REQUEUE_SECONDS,
                     "Argo's 10 s requeue", better="lower")
        report_ratio("scale-out failover max vs Argo requeue", max(took) / ARGO_REQUEUE_SECONDS,
                     "Argo's 10 s requeue", better="lower")
        taken = lease_takeover(cluster.create_database(), opts.trials)
        print(f"Lease takeover on the Kubernetes runtime (leader SIGKILL -> a new leader), {len(taken)} trials: "
              f"p50 {median(taken):.3f} s, max {max(taken):.3f} s  (Lease 8 s, renew 2 s, deadline 6 s, retry 1 s)")
        report_ratio("Lease takeover max vs Argo requeue", max(taken) / ARGO_REQUEUE_SECONDS,
                     "Argo's 10 s requeue", better="lower")
        one = through_proxy(cluster.create_database(), 1, opts.seconds, opts.connections)
        three = through_proxy(cluster.create_database(), 3, opts.seconds, opts.connections)
        print(f"REST GET /api/tasks through the proxy: 1 replica {one:.0f} req/s, 3 replicas {three:.0f} req/s"
              f"  ({three / one:.2f}x)")
        report_ratio("REST through the proxy, 3 replicas vs 1", three / one, "1 replica behind the same proxy")
        store_cost(cluster, opts.seconds, opts.connections)
        handoff(cluster, opts.trials)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
