"""``/metrics`` (Prometheus text format) and ``/readyz`` (ready to take work).

``/readyz`` answers 200 only when the store answers a query and the runtime is ready (a runtime
may expose ``async ready() -> str | None``, the reason it is not; on Kubernetes the API server
must answer); otherwise 503 naming what is not ready, so a load balancer stops sending work.
``/healthz`` stays the cheap liveness probe. ``/metrics`` needs ``Authorization: Bearer
<KUBEGATE_METRICS_TOKEN>`` when that is set, and is open otherwise.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mcp_server.auth.middleware import bearer_token
from mcp_server.errors import Unauthorized
from mcp_server.http import error_response
from mcp_server.observability import render
from mcp_server.services import Services

log = logging.getLogger(__name__)
READY_TIMEOUT_SECONDS = 5.0


async def readiness(services: Services) -> dict[str, str]:
    """Each dependency's state: ``ok`` or why it is not ready."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await services.stores.ping()
        checks["store"] = "ok"
    except Exception as exc:
        checks["store"] = f"unavailable: {type(exc).__name__}"
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            # The engine wraps the runtime (fair-share queue); readiness is the runtime's own.
            # A follower among replicas watches nothing (the leader does): its runtime need only answer.
            following = getattr(services.runtime, "leading", True) is False
            reason = await _runtime_reason(getattr(services.runtime, "inner", services.runtime), following)
        checks["runtime"] = reason or "ok"
    except Exception as exc:
        checks["runtime"] = f"unavailable: {type(exc).__name__}"
    if not services.engine_running:
        checks["engine"] = "not started"
    else:
        checks["engine"] = "ok"
    return checks


async def _runtime_reason(runtime: object, following: bool = False) -> str | None:
    """Why the runtime is not ready, or ``None``. ``ready()`` may answer a reason or a bool, sync or
    async; a runtime that can be unreachable also has ``api_reachable()`` (Kubernetes)."""
    ready = getattr(runtime, "ready", None)
    answer = ready() if ready is not None else None
    if inspect.isawaitable(answer):
        answer = await answer
    if answer is False and not following:
        return "not ready: its watches have not synced"
    if isinstance(answer, str):
        return answer
    reachable = getattr(runtime, "api_reachable", None)
    return await reachable() if reachable is not None else None


def probe_routes(services: Services) -> list[BaseRoute]:
    token = services.settings.metrics_token

    async def readyz(request: Request) -> Response:
        checks = await readiness(services)
        ok = all(v == "ok" for v in checks.values())
        if not ok:
            log.warning("not ready: %s", checks)
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                            status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        if token is not None:
            sent = bearer_token(request.scope) or ""
            if not hmac.compare_digest(sent.encode(), token.encode()):
                return error_response(Unauthorized("/metrics needs Authorization: Bearer <KUBEGATE_METRICS_TOKEN>"))
        body, content_type = render()
        return Response(body, media_type=content_type)

    return [Route("/readyz", readyz, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])]
