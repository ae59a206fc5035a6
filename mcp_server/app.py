"""The composition root: stores + runtime + engine + auth -> ``Services``; + registry -> one Starlette app.

``open_services`` is the one place that builds the long-lived parts and hands each what it
needs (auth gets its ``KeyStore`` and ``SessionStore``, handlers a ``Parts``); ``build_app``
wires the HTTP doors around them. The app's lifespan runs the MCP session manager; the
caller owns the services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import mcp_server.capabilities  # noqa: F401  (fills the registry)
from mcp_server import __version__
from mcp_server.auth.audit import AuditLog
from mcp_server.auth.keys import KeyStore
from mcp_server.auth.middleware import Authenticator
from mcp_server.auth.policy import Policy
from mcp_server.auth.ratelimit import RateLimiter
from mcp_server.auth.revocation import REVOCATIONS
from mcp_server.auth.sessions import SessionStore
from mcp_server.auth.wiring import auth_routes, edge_middleware
from mcp_server.config import Settings
from mcp_server.context import Parts
from mcp_server.dashboard.routes import dashboard_routes
from mcp_server.edge.hosts import allowed as allowed_hosts
from mcp_server.edge.probes import probe_routes
from mcp_server.engine.deployments import DeploymentService
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.queue import FairShare
from mcp_server.engine.sandboxes import SandboxService
from mcp_server.engine.tasks import TaskService
from mcp_server.engine.templates import apply_templates, read_templates_file
from mcp_server.engine.workflows import WorkflowService
from mcp_server.errors import KubegateError, MethodNotAllowed, NotFound, Unavailable, for_status
from mcp_server.http import MCP_PATH, error_response
from mcp_server.mcp_http import McpEndpoint
from mcp_server.proxy.apps import AppSite
from mcp_server.proxy.hosts import HostDispatch
from mcp_server.proxy.sandboxes import SandboxSite
from mcp_server.registry import Registry, registry
from mcp_server.runtime.base import Runtime
from mcp_server.server import build_server, request_principal, request_scope
from mcp_server.services import Services
from mcp_server.store.stores import Stores, open_stores
from rest_bridge.app import rest_routes
from rest_bridge.docs import docs_routes

if TYPE_CHECKING:
    from mcp_server.engine.replicas import Elect


def make_runtime(settings: Settings) -> Runtime:
    if settings.runtime == "kubernetes":
        try:
            from k8s.runtime import KubernetesRuntime
        except ImportError as exc:
            raise Unavailable(f"KUBEGATE_RUNTIME=kubernetes needs pip install 'kubegate[kubernetes]' ({exc})") from exc
        return KubernetesRuntime(settings)
    from mcp_server.runtime.local import LocalRuntime

    return LocalRuntime(settings)


def fair_share(inner: Runtime, stores: Stores, settings: Settings) -> FairShare:
    """The engine's runtime; on a store shared by replicas, one that hands runs to the leader."""
    coordination = stores.coordination()
    if coordination is None:
        return FairShare(inner, stores.run_queue, settings)
    from mcp_server.engine.replicas import CHANGES, RUNS, HandOff  # psycopg only with PostgreSQL

    return HandOff(inner, stores.run_queue, settings, coordination.channel(RUNS, CHANGES))


def leadership(settings: Settings, stores: Stores) -> Elect | None:
    """How replicas on a shared store elect the engine's leader: a Lease on Kubernetes, else a PostgreSQL lock."""
    coordination = stores.coordination()
    if coordination is None:
        return None  # SQLite: one host, engine.lock
    if settings.runtime == "kubernetes":
        from k8s.lease import lease_election

        return lease_election(settings)
    return coordination.lead


async def open_services(settings: Settings, *, engine: bool = True) -> Services:
    """Open the stores, build the runtime, the engine and auth; start the engine unless ``engine=False``."""
    templates = read_templates_file(settings.templates_file) if settings.templates_file else []
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stores = await open_stores(settings.db_path, settings.database_url)
    REVOCATIONS.follow(stores.changes, backstop_seconds=settings.revocation_recheck_seconds)
    await apply_templates(stores.templates, templates)
    inner = make_runtime(settings)
    runtime = fair_share(inner, stores, settings)
    dispatcher = Dispatcher(runtime)
    parts = Parts(
        keys=KeyStore(stores.api_keys, settings.key_touch_interval_seconds), audit=stores.audit,
        tasks=TaskService(stores.tasks, runtime, dispatcher, settings),
        workflows=WorkflowService(stores.workflows, runtime, dispatcher, settings),
        policy=Policy(operator_email=settings.operator_email, admin_emails=settings.admins),
        templates=stores.templates,
        # Sandboxes have their own quota; they bypass the run queue (their events still pass it).
        sandboxes=SandboxService(stores.sandboxes, inner, dispatcher, settings),
        deployments=DeploymentService(stores.deployments, stores.templates, inner, dispatcher, settings),
    )
    services = Services(settings=settings, stores=stores, runtime=runtime, dispatcher=dispatcher,
                        sessions=SessionStore(stores.sessions, settings.session_max_age_seconds), parts=parts,
                        elect=leadership(settings, stores))
    if engine:
        await services.start_engine()
    return services


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """Host/Origin allow-lists from the public URL (plus loopback aliases when bound to loopback)."""
    hosts, origins = allowed_hosts(settings)
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def _exception_handlers() -> dict[Any, Any]:
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return error_response(NotFound(f"No route for {request.method} {request.url.path}"))
        if exc.status_code == 405:
            return error_response(MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}"),
                                  dict(exc.headers or {}))
        return error_response(for_status(exc.status_code, str(exc.detail)))

    async def internal_error(request: Request, exc: Exception) -> Response:
        return error_response(KubegateError())

    return {HTTPException: http_error, Exception: internal_error}


def _read_only(reg: Registry) -> Callable[[str], bool]:
    def read_only(tool: str) -> bool:
        try:
            return reg.get(tool).read_only
        except NotFound:
            return False

    return read_only


def build_app(services: Services, reg: Registry = registry) -> Starlette:
    settings = services.settings
    reg = reg.select(settings.toolsets)

    authenticate = Authenticator(services.keys, services.sessions)

    async def principal_of(ctx: Any) -> Any:
        return request_principal(ctx)

    async def still_valid(ctx: Any) -> bool:
        return await authenticate(request_scope(ctx)) is not None

    mcp = build_server(services, reg, principal_of, still_valid=still_valid, door="mcp")
    manager = StreamableHTTPSessionManager(
        app=mcp, json_response=False, stateless=settings.mcp_stateless,
        security_settings=transport_security(settings), max_request_body_size=settings.max_body_bytes,
        max_sessions=settings.max_mcp_sessions,
    )

    async def healthz(request: Request) -> Response:
        await services.stores.ping()
        return JSONResponse({"status": "ok", "version": __version__, "runs": services.containment(),
                             "leader": services.recovers})

    async def resource_metadata(request: Request) -> Response:
        return JSONResponse({
            "resource": f"{settings.public_url}{MCP_PATH}",
            "authorization_servers": [],
            "bearer_methods_supported": ["header"],
            "scopes_supported": sorted({c.scope for c in reg.list()}),
            "resource_name": "kubegate",
        })

    routes: list[BaseRoute] = [
        # The router tries routes in order, so the busiest come first: MCP, then REST.
        Route(MCP_PATH, McpEndpoint(manager, reg, services, authenticate), methods=["GET", "POST", "DELETE"]),
        *rest_routes(reg, services),
        Route("/healthz", healthz, methods=["GET"]),
        *probe_routes(services),
        Route("/.well-known/oauth-protected-resource", resource_metadata, methods=["GET"]),
        Route(f"/.well-known/oauth-protected-resource{MCP_PATH}", resource_metadata, methods=["GET"]),
        *docs_routes(reg, settings),
        *auth_routes(settings, services.stores.users, services.keys, services.sessions),
        *dashboard_routes(reg, services),
    ]

    sandbox_site = SandboxSite(services)
    app_site = AppSite(services, sandbox_site.forwarder)
    limiter = RateLimiter(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await limiter.warm_up()
        async with manager.run():
            yield
        await sandbox_site.forwarder.close()

    return Starlette(
        routes=routes,
        middleware=[
            # Sandbox origins first: none of the gateway's layers below apply to them.
            Middleware(HostDispatch, sites={services.parts.sandboxes.domain: sandbox_site,
                                            services.parts.deployments.domain: app_site}),
            edge_middleware(settings, authenticate, limiter, AuditLog(services.stores.audit), _read_only(reg)),
        ],
        exception_handlers=_exception_handlers(),
        lifespan=lifespan,
    )
