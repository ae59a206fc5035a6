"""Deployments: long-running apps from a template or an image, with a URL, scaling, logs and metrics.

Every answer shows a deployment as the core API does (``name``, ``status``, ``template``,
``visibility``, ``ingresses``, ``url``, ``lastError``, ``canDelete``); secret env values never
appear. The status filter also takes ``running`` for ``Ready`` (the spec's MCP example).
"""

from __future__ import annotations

from typing import cast

from mcp_server.context import Context
from mcp_server.engine.deployments import DeploymentService
from mcp_server.ids import iso
from mcp_server.models.deployments import (
    Deployment,
    DeploymentCreate,
    DeploymentList,
    DeploymentListQuery,
    DeploymentLogs,
    DeploymentLogsQuery,
    DeploymentMetrics,
    DeploymentRef,
    DeploymentScale,
    DeploymentStatus,
    DeploymentUpdate,
    Ingress,
    LogLineOut,
    ReplicaState,
    ReplicaUsage,
    Visibility,
)
from mcp_server.models.templates import EnvVarOut
from mcp_server.registry import registry
from mcp_server.resources import resource
from mcp_server.store.deployments import DeploymentRecord


def deployment_model(service: DeploymentService, r: DeploymentRecord, *, brief: bool = False) -> Deployment:
    url = service.url(r.name)
    item = Deployment(
        name=r.name, status=cast(DeploymentStatus, r.status), template=r.template, image=r.image,
        visibility=cast(Visibility, r.visibility), replicas=r.replicas, ready_replicas=r.ready_replicas,
        ingresses=[Ingress(id=r.name, name=r.name, host=service.host(r.name), url=url)], url=url,
        last_error=r.last_error, can_delete=r.status != "Deleting", created_at=iso(r.created_at) or "",
    )
    if not brief:
        item.template_version = r.template_version
        item.updated_at = iso(r.updated_at)
        item.port = r.port
        item.health_check_path = r.health_path
        item.network = r.network
        item.env_vars = [EnvVarOut(name=e.name, value=None if e.secret else e.value, secret=e.secret) for e in r.env]
        item.replica_status = [ReplicaState(replica=s.replica, revision=s.revision, ready=s.ready, restarts=s.restarts,
                                            started_at=iso(s.started), last_error=s.last_error)
                               for s in r.replica_status]
    return item


@registry.capability(scope="deployments:read", title="List deployments", read_only=True, idempotent=True)
async def deployments_list(ctx: Context, args: DeploymentListQuery) -> DeploymentList:
    """Your deployments, newest first (status running = Ready)."""
    records = await ctx.deployments.list(ctx.principal.user_id, args.status)
    return DeploymentList(deployments=[deployment_model(ctx.deployments, r, brief=True) for r in records])


@registry.capability(scope="deployments:write", title="Create a deployment")
async def deployments_create(ctx: Context, args: DeploymentCreate) -> Deployment:
    """Deploy a template (templates_list) or an image+port."""
    record = await ctx.deployments.create(ctx.principal.user_id, args)
    return deployment_model(ctx.deployments, record)


@registry.capability(scope="deployments:read", title="Deployment status", read_only=True, idempotent=True)
async def deployments_status(ctx: Context, args: DeploymentRef) -> Deployment:
    """A deployment's status, URL and lastError."""
    record = await ctx.deployments.get(ctx.principal.user_id, args.name)
    return deployment_model(ctx.deployments, record, brief=True)


@registry.capability(scope="deployments:read", title="Get a deployment", read_only=True, idempotent=True)
async def deployments_get(ctx: Context, args: DeploymentRef) -> Deployment:
    """A deployment in full."""
    record = await ctx.deployments.get(ctx.principal.user_id, args.name)
    return deployment_model(ctx.deployments, record)


@registry.capability(scope="deployments:write", title="Scale a deployment", idempotent=True)
async def deployments_scale(ctx: Context, args: DeploymentScale) -> Deployment:
    """Set the number of replicas."""
    record = await ctx.deployments.scale(ctx.principal.user_id, args.name, args.replicas)
    return deployment_model(ctx.deployments, record)


@registry.capability(scope="deployments:write", title="Update a deployment")
async def deployments_update(ctx: Context, args: DeploymentUpdate) -> Deployment:
    """Change image, env or template version."""
    record = await ctx.deployments.update(ctx.principal.user_id, args.name, args)
    return deployment_model(ctx.deployments, record)


@registry.capability(scope="deployments:write", title="Delete a deployment", destructive=True, idempotent=True)
async def deployments_delete(ctx: Context, args: DeploymentRef) -> Deployment:
    """Stop and remove a deployment."""
    record = await ctx.deployments.delete(ctx.principal.user_id, args.name)
    return deployment_model(ctx.deployments, record, brief=True)


@registry.capability(scope="deployments:read", title="Deployment logs", read_only=True, idempotent=True)
async def deployments_logs(ctx: Context, args: DeploymentLogsQuery) -> DeploymentLogs:
    """Log lines; since e.g. 5m."""
    lines = await ctx.deployments.logs(ctx.principal.user_id, args.name, tail=args.tail, since=args.since,
                                       replica=args.replica)
    return DeploymentLogs(name=args.name, lines=[
        LogLineOut(at=line.at.isoformat().replace("+00:00", "Z"), replica=line.replica, text=line.text)
        for line in lines])


@registry.capability(scope="deployments:read", title="Deployment metrics", read_only=True, idempotent=True)
async def deployments_metrics(ctx: Context, args: DeploymentRef) -> DeploymentMetrics:
    """CPU, memory and restarts per replica."""
    found = await ctx.deployments.metrics(ctx.principal.user_id, args.name)
    replicas = [ReplicaUsage(replica=r.replica, restarts=r.restarts, cpu_seconds=r.cpu_seconds,
                             cpu_cores=r.cpu_cores, memory_bytes=r.memory_bytes) for r in found.replicas]
    return DeploymentMetrics(name=args.name, available=found.available, reason=found.reason,
                             restarts=sum(r.restarts for r in found.replicas), replicas=replicas)


@resource("deployment-logs", "kubegate://deployments/{name}/logs", scope="deployments:read",
          description="The last 1000 log lines of one of your deployments")
async def deployment_logs(ctx: Context, variables: dict[str, str]) -> str:
    lines = await ctx.deployments.logs(ctx.principal.user_id, variables["name"], tail=1000, since=None, replica=None)
    return "".join(f"{line.at.isoformat()} [{line.replica}] {line.text}\n" for line in lines)
