"""What a handler receives: who is calling, the parts it may use, and a progress channel.

The composition root (``app.open_services``) builds one ``Parts``; every door turns a
principal into a ``Context`` with ``Context.for_principal(principal, parts, ...)`` and nothing
else, so what a handler can reach is decided here, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mcp_server.auth.keys import KeyStore
from mcp_server.auth.policy import Policy
from mcp_server.auth.principal import Principal
from mcp_server.engine.deployments import DeploymentService
from mcp_server.engine.sandboxes import SandboxService
from mcp_server.engine.tasks import TaskService
from mcp_server.engine.workflows import WorkflowService
from mcp_server.store.audit import AuditStore
from mcp_server.store.templates import TemplateStore

Progress = Callable[[float, float | None, str | None], Awaitable[None]]
Log = Callable[[str, str], Awaitable[None]]


async def _no_progress(progress: float, total: float | None, message: str | None) -> None:
    return None


async def _no_log(level: str, message: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Parts:
    """What handlers may reach, built once per process by the composition root."""

    keys: KeyStore
    audit: AuditStore
    tasks: TaskService
    workflows: WorkflowService
    policy: Policy
    templates: TemplateStore
    sandboxes: SandboxService
    deployments: DeploymentService


@dataclass(frozen=True, slots=True)
class Context:
    principal: Principal
    keys: KeyStore
    audit: AuditStore
    tasks: TaskService
    workflows: WorkflowService
    policy: Policy
    templates: TemplateStore
    sandboxes: SandboxService
    deployments: DeploymentService
    progress: Progress = _no_progress
    log: Log = _no_log

    @classmethod
    def for_principal(cls, principal: Principal, parts: Parts, *, progress: Progress | None = None,
                      log: Log | None = None) -> Context:
        """The one way a door builds a handler's context."""
        return cls(principal=principal, keys=parts.keys, audit=parts.audit, tasks=parts.tasks,
                   workflows=parts.workflows, policy=parts.policy, templates=parts.templates,
                   sandboxes=parts.sandboxes, deployments=parts.deployments,
                   progress=progress or _no_progress,
                   log=log or _no_log)
