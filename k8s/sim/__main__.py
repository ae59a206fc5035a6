"""``python -m k8s.sim --port PORT --kubeconfig FILE``: serve a fake cluster until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from k8s.sim.cluster import FakeCluster


async def serve(port: int, kubeconfig: Path, validate: bool = True) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with FakeCluster(port=port, kubeconfig_path=kubeconfig, validate=validate) as cluster:
        print(f"fake cluster at {cluster.url}; kubeconfig {kubeconfig}", flush=True)
        await stop.wait()
        for write in cluster.invalid_writes:
            print(f"invalid write: {write.resource}/{write.name}: {write.error}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m k8s.sim", description="Serve a fake Kubernetes API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=6443, help="port to listen on (0 picks a free one)")
    parser.add_argument("--kubeconfig", type=Path, default=Path("kubeconfig.sim"), help="where to write the kubeconfig")
    parser.add_argument("--no-validation", action="store_true",
                        help="skip schema validation of writes (benchmarks only: tests always validate)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.kubeconfig, validate=not args.no_validation))


if __name__ == "__main__":
    main()
