"""How the client commands draw things for a person: a progress line, a task, a step table."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class ProgressLine:
    """A one-line progress display; redrawn in place on a terminal, one line per change elsewhere."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.label = label
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.last = ""

    async def update(self, progress: float, total: float | None, message: str | None) -> None:
        if total:
            filled = int(self.width * min(progress / total, 1.0))
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}]"
            # The gateway's message already counts ("2/3 steps completed"); count only when it does not.
            text = message or f"{progress:g}/{total:g}"
        else:
            bar, text = f"{progress:5.1f}s", message or ""
        line = f"{self.label} {bar} {text}".rstrip()
        if line == self.last:
            return
        self.last = line
        self.stream.write(f"\r{line}\033[K" if self.tty else f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def exit_status(task: dict[str, Any]) -> int:
    """The task's own exit code; 128+N when a signal N ended it; 1 when it failed without one."""
    code = task.get("exitCode")
    if isinstance(code, int):
        return 128 - code if code < 0 else min(code, 255)
    return 0 if task.get("status") == "completed" else 1


def show_task(task: dict[str, Any]) -> str:
    fields = ("id", "name", "status", "exitCode", "reason", "output", "image", "createdAt", "startedAt", "completedAt")
    lines = [f"{name + ':':<13} {task[name]}" for name in fields if task.get(name) is not None]
    logs = task.get("logs")
    if logs:
        lines += ["logs (tail):", *("  " + line for line in logs.rstrip("\n").splitlines()[-20:])]
    return "\n".join(lines)


def show_workflow(workflow: dict[str, Any]) -> str:
    steps = workflow.get("steps") or []
    done = sum(s["status"] == "completed" for s in steps)
    rows = [(s["name"], s["status"], "" if s.get("exitCode") is None else str(s["exitCode"]),
             s.get("reason") or "", (s.get("output") or "").replace("\n", " ")[:60]) for s in steps]
    header = ("STEP", "STATUS", "EXIT", "REASON", "OUTPUT")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    table = [" ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + " " + row[4]
             for row in [header, *rows]]
    title = f"workflow {workflow['id']} ({workflow['name']}): {workflow['status']}, {done}/{len(steps)} steps completed"
    return "\n".join([title, *(line.rstrip() for line in table)])


def step_failure(workflow: dict[str, Any]) -> str | None:
    """Which step failed and why, for a failed workflow."""
    if workflow.get("status") != "failed":
        return None
    for step in workflow.get("steps") or []:
        if step["status"] == "failed":
            why = step.get("reason") or "error"
            code = f", exit code {step['exitCode']}" if step.get("exitCode") is not None else ""
            message = f": {step['message']}" if step.get("message") else ""
            return f"step {step['name']} failed ({why}{code}){message}"
    return "no step failed (the workflow was cancelled)"
