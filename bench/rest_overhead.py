"""kubegate's REST throughput as a ratio of a bare Starlette JSON endpoint's, measured in one run.

wrk drives ``GET /api/tasks`` at each server in turn, round after round: kubegate authenticates
the API key, counts the request against the rate limit, reads the user's tasks from SQLite and
validates and serialises the page; the bare endpoint (``_bare_rest.py``, same uvicorn settings)
returns a constant. Goal: kubegate >= 0.35x. As in ``mcp_overhead.py`` a bare server with
kubegate's ``gc.freeze()`` start-up tuning is measured too.

    python bench/rest_overhead.py [--seconds 5] [--connections 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import free_port, kubegate, median, mint_key, start, wrk_cpu  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="kg-bench-"))
    key = mint_key(data_dir)
    script = str(Path(__file__).parent / "_bare_rest.py")
    ports = {"bare": free_port(), "frozen": free_port(), "kubegate": free_port()}
    procs = {
        "bare": start([sys.executable, script, str(ports["bare"])], {}, f"http://127.0.0.1:{ports['bare']}/healthz"),
        "frozen": start([sys.executable, script, str(ports["frozen"]), "--freeze"], {},
                        f"http://127.0.0.1:{ports['frozen']}/healthz"),
        "kubegate": kubegate(data_dir, ports["kubegate"], {"KUBEGATE_RATE_LIMIT_API_KEY": "100000000"}),
    }
    headers = {"kubegate": {"Authorization": f"Bearer {key}"}}
    rates: dict[str, list[float]] = {name: [] for name in procs}
    cpu: dict[str, list[float]] = {name: [] for name in procs}
    try:
        for _ in range(opts.rounds):
            for name, proc in procs.items():
                rate, micros = wrk_cpu(f"http://127.0.0.1:{ports[name]}/api/tasks", None, headers.get(name, {}),
                                       seconds=opts.seconds, connections=opts.connections, pid=proc.pid)
                rates[name].append(rate)
                cpu[name].append(micros)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait()

    def line(label: str, name: str) -> str:
        each = ", ".join(f"{r:.0f}" for r in rates[name])
        return f"{label:32}: {median(rates[name]):8.0f} req/s  (rounds: {each})"

    print(line("bare Starlette JSON endpoint", "bare"))
    print(line("bare Starlette, frozen", "frozen"))
    print(line("kubegate GET /api/tasks + key", "kubegate"))
    kg, bare, frozen = (median(rates[n]) for n in ("kubegate", "bare", "frozen"))
    print(f"{'ratio kubegate / bare':32}: {kg / bare:.2f}x  (goal >= 0.35x)")
    print(f"{'ratio kubegate / bare, frozen':32}: {kg / frozen:.2f}x  (same GC tuning on both sides)")
    paired = median([k / b for k, b in zip(rates["kubegate"], rates["bare"], strict=True)])
    print(f"{'median of per-round ratios':32}: {paired:.2f}x")
    print(f"{'server CPU per request':32}: bare {median(cpu['bare']):.0f} us, bare frozen "
          f"{median(cpu['frozen']):.0f} us, kubegate {median(cpu['kubegate']):.0f} us")


if __name__ == "__main__":
    main()
