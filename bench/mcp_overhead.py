"""kubegate's MCP-over-HTTP throughput as a ratio of a bare MCP SDK server's, measured in one run.

Both servers run stateless Streamable HTTP under uvicorn with the same defaults; wrk drives the
same JSON-RPC ``tools/call`` load at each in turn. The bare server echoes; kubegate answers
``api_keys_list``, which authenticates the API key and reads the database on every call (and
passes the rate limiter, audit, CSRF and body guards). Goal: kubegate >= 0.85x the bare SDK.

``kubegate serve`` freezes its start-up heap out of the garbage collector (see
``mcp_server.cli``), which any server could do. So a third server is measured too: the bare SDK
with that same tuning. The first ratio is the goal's; the second shows the overhead kubegate's
own work adds when both sides are tuned alike.

    python bench/mcp_overhead.py [--seconds 5] [--connections 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import free_port, kubegate, median, mint_key, report_ratio, start, wrk_cpu  # noqa: E402

NEEDS = ("wrk",)

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
           "MCP-Protocol-Version": "2025-11-25"}


def call(name: str, arguments: dict[str, object]) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one short round: a fast look, noisier")
    opts = parser.parse_args()
    if opts.quick:
        opts.seconds, opts.rounds = 2, 1

    data_dir = Path(tempfile.mkdtemp(prefix="kg-bench-"))
    key = mint_key(data_dir)
    bare_port, kg_port = free_port(), free_port()
    tuned_port = free_port()
    bare_script = str(Path(__file__).parent / "_bare_mcp.py")
    bare = start([sys.executable, bare_script, str(bare_port)], {}, f"http://127.0.0.1:{bare_port}/healthz")
    tuned = start([sys.executable, bare_script, str(tuned_port), "--freeze"], {},
                  f"http://127.0.0.1:{tuned_port}/healthz")
    gateway = kubegate(data_dir, kg_port, {"KUBEGATE_MCP_STATELESS": "1", "KUBEGATE_RATE_LIMIT_API_KEY": "100000000"})
    try:
        bare_rates, tuned_rates, kg_rates = [], [], []
        cpu: dict[str, list[float]] = {"bare": [], "tuned": [], "kubegate": []}
        for _ in range(opts.rounds):
            baselines = ((bare_port, bare, bare_rates, "bare"), (tuned_port, tuned, tuned_rates, "tuned"))
            for port, proc, rates, name in baselines:
                rate, micros = wrk_cpu(f"http://127.0.0.1:{port}/mcp", call("echo", {"text": "hi"}), HEADERS,
                                       seconds=opts.seconds, connections=opts.connections, pid=proc.pid)
                rates.append(rate)
                cpu[name].append(micros)
            rate, micros = wrk_cpu(f"http://127.0.0.1:{kg_port}/api/mcp", call("api_keys_list", {}),
                                   {**HEADERS, "Authorization": f"Bearer {key}"},
                                   seconds=opts.seconds, connections=opts.connections, pid=gateway.pid)
            kg_rates.append(rate)
            cpu["kubegate"].append(micros)
    finally:
        for proc in (bare, tuned, gateway):
            proc.terminate()
            proc.wait()
    bare_rate, tuned_rate, kg_rate = median(bare_rates), median(tuned_rates), median(kg_rates)

    def rounds(rates: list[float]) -> str:
        return ", ".join(f"{r:.0f}" for r in rates)

    print(f"bare MCP SDK echo tool          : {bare_rate:8.0f} calls/s  (rounds: {rounds(bare_rates)})")
    print(f"bare MCP SDK echo tool, frozen  : {tuned_rate:8.0f} calls/s  (rounds: {rounds(tuned_rates)})")
    print(f"kubegate api_keys_list          : {kg_rate:8.0f} calls/s  (rounds: {rounds(kg_rates)})")
    print(f"ratio kubegate / bare           : {kg_rate / bare_rate:.2f}x  (goal >= 0.85x)")
    print(f"ratio kubegate / bare, frozen   : {kg_rate / tuned_rate:.2f}x  (same GC tuning on both sides)")
    # Each round runs the servers back to back, so a round's ratio is less exposed to a neighbour's
    # load drifting over the run than the ratio of the medians is.
    paired = median([k / b for k, b in zip(kg_rates, bare_rates, strict=True)])
    paired_tuned = median([k / t for k, t in zip(kg_rates, tuned_rates, strict=True)])
    print(f"median of per-round ratios      : {paired:.2f}x, frozen {paired_tuned:.2f}x")
    report_ratio("MCP calls/s, kubegate api_keys_list", paired, "bare MCP SDK echo tool, same wrk load")
    report_ratio("MCP calls/s, kubegate vs GC-tuned bare", paired_tuned, "bare MCP SDK echo tool with gc.freeze()")
    bare_cpu, tuned_cpu, kg_cpu = (median(cpu[name]) for name in ("bare", "tuned", "kubegate"))
    print(f"server CPU per call             : bare {bare_cpu:.0f} us, bare frozen {tuned_cpu:.0f} us, "
          f"kubegate {kg_cpu:.0f} us")
    print(f"CPU ratio bare / kubegate       : {bare_cpu / kg_cpu:.2f}x, frozen {tuned_cpu / kg_cpu:.2f}x "
          f"(the same comparison by work per call)")


if __name__ == "__main__":
    main()
