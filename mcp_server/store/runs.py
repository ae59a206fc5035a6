"""What tasks and workflow steps share: the run fields, the status words, and the RunSpec builder.

A task and a workflow step are each one run. Their records carry the same run fields, and
``run_spec`` is the one place a ``RunSpec`` is made from a record (a step passes the image,
command and env it rendered from upstream outputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from mcp_server.models.sizes import SizeName
from mcp_server.runtime.base import RunSpec

RunStatus = Literal["pending", "running", "completed", "failed", "skipped"]
ACTIVE: tuple[RunStatus, ...] = ("pending", "running")
"""Not yet ended: a task, a workflow or a step in one of these is still going (or waiting)."""
TERMINAL: tuple[RunStatus, ...] = ("completed", "failed", "skipped")
BLOCKING: tuple[RunStatus, ...] = ("failed", "skipped")
"""A step in one of these keeps its dependants from ever running."""


def outcome(reason: str | None, exit_code: int | None) -> Literal["completed", "failed"]:
    """The status a run's exit gives: completed only when it ran to the end and exited 0."""
    return "completed" if reason == "completed" and exit_code == 0 else "failed"


@dataclass(frozen=True, slots=True)
class RunFields:
    image: str
    command: tuple[str, ...]
    timeout_seconds: float
    size: SizeName
    network: bool


def run_spec(run: RunFields, *, run_id: str, owner: str, labels: Mapping[str, str],
             env: Mapping[str, str] | None = None, image: str | None = None,
             command: Sequence[str] | None = None) -> RunSpec:
    return RunSpec(
        run_id=run_id, owner=owner, image=run.image if image is None else image,
        command=list(run.command if command is None else command), env=dict(env or {}),
        timeout_seconds=run.timeout_seconds, size=run.size, network=run.network, labels=dict(labels),
    )
