"""kubegate's MCP-over-HTTP throughput as a ratio of a bare MCP SDK server's, measured in one run.

Both servers run Streamable HTTP under uvicorn in the same mode: ``--mode session`` (the
default, and kubegate's: an MCP session, answers as SSE) or ``--mode stateless`` (each POST
stands alone), or ``--mode both``. wrk drives the same JSON-RPC ``tools/call`` load at each in
turn. The bare server echoes; kubegate answers ``api_keys_list``, which authenticates the API
key and reads the database on every call (and passes the edge: request id, Host check, rate
limiter, audit decision, metrics). Goals: kubegate >= 0.85x the bare SDK in session mode; the
stateless figure is kept for comparison.

``kubegate serve`` freezes its start-up heap out of the garbage collector (see
``mcp_server.cli``), which any server could do. So a third server is measured too: the bare SDK
with that same tuning. The first ratio is the goal's; the second shows the overhead kubegate's
own work adds when both sides are tuned alike.

    python bench/mcp_overhead.py [--mode session|stateless|both] [--seconds 5] [--connections 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import free_port, kubegate, median, mint_key, report_ratio, start, wrk_cpu  # noqa: E402

NEEDS = ("wrk",)

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
           "MCP-Protocol-Version": "2025-11-25"}
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "1"}}}


def call(name: str, arguments: dict[str, object]) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


def open_session(url: str, headers: dict[str, str]) -> dict[str, str]:
    """Initialize an MCP session and return the headers that continue it."""
    opened = httpx.post(url, json=INIT, headers=headers, timeout=30)
    opened.raise_for_status()
    session = {**headers, "Mcp-Session-Id": opened.headers["mcp-session-id"]}
    httpx.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session,
               timeout=30).raise_for_status()
    return session


def measure(mode: str, opts: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="kg-bench-"))
    key = mint_key(data_dir)
    ports = {"bare": free_port(), "frozen": free_port(), "kubegate": free_port()}
    script = str(Path(__file__).parent / "_bare_mcp.py")
    flag = ["--sessions"] if mode == "session" else []
    procs = {
        "bare": start([sys.executable, script, str(ports["bare"]), *flag], {},
                      f"http://127.0.0.1:{ports['bare']}/healthz"),
        "frozen": start([sys.executable, script, str(ports["frozen"]), "--freeze", *flag], {},
                        f"http://127.0.0.1:{ports['frozen']}/healthz"),
        "kubegate": kubegate(data_dir, ports["kubegate"], {"KUBEGATE_RATE_LIMIT_API_KEY": "100000000",
                                                           **({} if mode == "session" else
                                                              {"KUBEGATE_MCP_STATELESS": "1"})}),
    }
    urls = {"bare": f"http://127.0.0.1:{ports['bare']}/mcp", "frozen": f"http://127.0.0.1:{ports['frozen']}/mcp",
            "kubegate": f"http://127.0.0.1:{ports['kubegate']}/api/mcp"}
    headers = {"bare": HEADERS, "frozen": HEADERS, "kubegate": {**HEADERS, "Authorization": f"Bearer {key}"}}
    bodies = {"bare": call("echo", {"text": "hi"}), "frozen": call("echo", {"text": "hi"}),
              "kubegate": call("api_keys_list", {})}
    rates: dict[str, list[float]] = {name: [] for name in procs}
    cpu: dict[str, list[float]] = {name: [] for name in procs}
    try:
        if mode == "session":
            headers = {name: open_session(urls[name], h) for name, h in headers.items()}
        for _ in range(opts.rounds):
            for name, proc in procs.items():
                rate, micros = wrk_cpu(urls[name], bodies[name], headers[name], seconds=opts.seconds,
                                       connections=opts.connections, pid=proc.pid)
                rates[name].append(rate)
                cpu[name].append(micros)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait()
    report(mode, rates, cpu)


def report(mode: str, rates: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    def line(label: str, name: str) -> str:
        each = ", ".join(f"{r:.0f}" for r in rates[name])
        return f"{label:32}: {median(rates[name]):8.0f} calls/s  (rounds: {each})"

    goal = "goal >= 0.85x" if mode == "session" else "no goal; kept for comparison"
    print(f"--- mode: {mode} ---")
    print(line("bare MCP SDK echo tool", "bare"))
    print(line("bare MCP SDK echo tool, frozen", "frozen"))
    print(line("kubegate api_keys_list", "kubegate"))
    kg, bare, frozen = (median(rates[n]) for n in ("kubegate", "bare", "frozen"))
    print(f"{'ratio kubegate / bare':32}: {kg / bare:.2f}x  ({goal})")
    print(f"{'ratio kubegate / bare, frozen':32}: {kg / frozen:.2f}x  (same GC tuning on both sides)")
    # Each round runs the servers back to back, so a round's ratio is less exposed to a neighbour's
    # load drifting over the run than the ratio of the medians is.
    paired = median([k / b for k, b in zip(rates["kubegate"], rates["bare"], strict=True)])
    paired_frozen = median([k / t for k, t in zip(rates["kubegate"], rates["frozen"], strict=True)])
    print(f"{'median of per-round ratios':32}: {paired:.2f}x, frozen {paired_frozen:.2f}x")
    report_ratio(f"MCP calls/s, kubegate api_keys_list ({mode})", paired, "bare MCP SDK echo tool, same wrk load")
    report_ratio(f"MCP calls/s, kubegate vs GC-tuned bare ({mode})", paired_frozen,
                 "bare MCP SDK echo tool with gc.freeze()")
    bare_cpu, frozen_cpu, kg_cpu = (median(cpu[n]) for n in ("bare", "frozen", "kubegate"))
    print(f"{'server CPU per call':32}: bare {bare_cpu:.0f} us, bare frozen {frozen_cpu:.0f} us, "
          f"kubegate {kg_cpu:.0f} us")
    print(f"{'CPU ratio bare / kubegate':32}: {bare_cpu / kg_cpu:.2f}x, frozen {frozen_cpu / kg_cpu:.2f}x "
          f"(the same comparison by work per call)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("session", "stateless", "both"), default="session")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one short round: a fast look, noisier")
    opts = parser.parse_args()
    if opts.quick:
        opts.seconds, opts.rounds = 2, 1
    for mode in (("session", "stateless") if opts.mode == "both" else (opts.mode,)):
        measure(mode, opts)


if __name__ == "__main__":
    main()
