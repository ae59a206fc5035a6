"""Run every benchmark in bench/ and write bench/RESULTS.md: each ratio, its baseline, how it was made.

    python -m bench.run_all            # the full runs (tens of minutes on 2 cores)
    python -m bench.run_all --quick    # a fast look: every benchmark in its --quick mode

A benchmark is any ``bench/NAME.py`` (not starting with ``_``) run as ``python -m bench.NAME
[--quick]``; it may declare ``NEEDS = ("wrk", "fake-cluster", ...)`` at module level, and it
reports each ratio as a line ``RATIO {"name", "value", "baseline", "better"}`` (see
``_harness.report_ratio``). A benchmark whose needs are missing is skipped with the reason said,
and one that fails is reported with its exit status; the others still run.
"""

from __future__ import annotations

import argparse
import ast
import glob
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CHECKS: dict[str, tuple[Callable[[], bool], str]] = {
    "wrk": (lambda: shutil.which("wrk") is not None, "wrk is not installed (apt-get install -y wrk)"),
    "fake-cluster": (lambda: all(importlib.util.find_spec(m) for m in ("kubernetes", "kubernetes_validate")),
                     "the fake cluster needs pip install -e '.[kubernetes]'"),
    "bwrap": (lambda: shutil.which("bwrap") is not None, "bubblewrap is not installed (apt-get install -y bubblewrap)"),
    "postgresql": (lambda: bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or shutil.which("initdb") is not None,
                   "PostgreSQL is not installed (apt-get install -y postgresql)"),
}


@dataclass
class Outcome:
    name: str
    summary: str
    command: str
    ratios: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    failed: str | None = None
    seconds: float = 0.0


def discover() -> list[tuple[str, str, tuple[str, ...]]]:
    """``(name, first docstring line, needs)`` of every benchmark module, read without importing it."""
    found = []
    for path in sorted(BENCH.glob("*.py")):
        if path.name.startswith("_") or path.name == "run_all.py":
            continue
        tree = ast.parse(path.read_text())
        doc = (ast.get_docstring(tree) or path.stem).strip().splitlines()[0]
        needs: tuple[str, ...] = ()
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "NEEDS" for t in node.targets):
                needs = tuple(ast.literal_eval(node.value))
        found.append((path.stem, doc, needs))
    return found


def missing(needs: tuple[str, ...]) -> str | None:
    for need in needs:
        check, why = CHECKS.get(need, (lambda: False, f"it needs {need!r}, which run_all does not know"))
        if not check():
            return why
    return None


def run_one(name: str, doc: str, needs: tuple[str, ...], quick: bool, timeout: float) -> Outcome:
    argv = [sys.executable, "-m", f"bench.{name}", *(["--quick"] if quick else [])]
    outcome = Outcome(name, doc, f"python -m bench.{name}{' --quick' if quick else ''}")
    outcome.skipped = missing(needs)
    if outcome.skipped:
        print(f"== {name}: SKIPPED, {outcome.skipped}", flush=True)
        return outcome
    print(f"== {name}: {outcome.command}", flush=True)
    began = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEGATE_")}
    try:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            print(f"   {line}", end="", flush=True)
            if line.startswith("RATIO "):
                outcome.ratios.append(json.loads(line[6:]))
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = -1
    outcome.seconds = time.monotonic() - began
    if code != 0:
        outcome.failed = f"exit status {code}" if code != -1 else f"timed out after {timeout:g}s"
        print(f"== {name}: FAILED ({outcome.failed})", flush=True)
    return outcome


def report(outcomes: list[Outcome], quick: bool, command: str) -> str:
    lines = [
        "# Benchmark results", "",
        "Written by `bench/run_all.py`; every ratio is against a baseline started in the same run, on the",
        "same machine, so compare ratios, never absolute numbers across runs or machines.", "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{command}`{' (quick mode: fewer samples, noisier)' if quick else ''}",
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}, "
        f"Python {platform.python_version()}", "",
        "| benchmark | ratio | value | baseline | better |", "|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        for ratio in outcome.ratios:
            lines.append(f"| `{outcome.name}` | {ratio['name']} | **{ratio['value']:g}x** | {ratio['baseline']} | "
                         f"{ratio['better']} |")
    lines += ["", "| benchmark | what it measures | command | result |", "|---|---|---|---|"]
    for outcome in outcomes:
        result = (f"skipped: {outcome.skipped}" if outcome.skipped else f"FAILED: {outcome.failed}" if outcome.failed
                  else f"ran in {outcome.seconds:.0f} s")
        lines.append(f"| `{outcome.name}` | {outcome.summary} | `{outcome.command}` | {result} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="run each benchmark in its --quick mode")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks (module names)")
    parser.add_argument("--output", type=Path, default=BENCH / "RESULTS.md", help="default bench/RESULTS.md")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark (default 3600)")
    args = parser.parse_args()
    benches = [b for b in discover() if not args.only or b[0] in args.only]
    unknown = sorted(set(args.only or ()) - {b[0] for b in benches})
    if unknown:
        raise SystemExit(f"no benchmark named {', '.join(unknown)} in bench/ (there are: "
                         f"{', '.join(b[0] for b in discover())})")
    outcomes = [run_one(name, doc, needs, args.quick, args.timeout) for name, doc, needs in benches]
    command = "python -m bench.run_all" + "".join(f" {a}" for a in sys.argv[1:])
    args.output.write_text(report(outcomes, args.quick, command))
    print(f"wrote {args.output}")
    return 1 if any(o.failed for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
