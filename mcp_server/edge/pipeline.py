"""One pass over every HTTP request, in front of every door.

In order, for a request under ``/api``: a request id (``X-Request-Id``, echoed on every
answer, 408/413/500 included), the Host/Origin check (``hosts``), authentication (401 with a
``WWW-Authenticate`` challenge), the rate limit (``X-RateLimit-*`` on whatever answers, 429
over it), CSRF for cookie sessions, then the body bound (413/408, after the caller is known so
a 413 carries the rate-limit headers too). Elsewhere (``/auth``, docs, probes) only the request
id and the body bound apply. A POST to the MCP endpoint is read and parsed here once; the
parsed message travels in the scope (``MCP_MESSAGE_KEY``) to the endpoint, which then neither
reads nor parses it again. When the answer is sent, the request is counted and timed
(``/metrics``), logged when the access log is on, and audited if it changed state.

One middleware instead of a stack of five: each layer used to wrap ``send`` and re-read the
scope, which cost more than the checks themselves on a fast request (``bench/rest_overhead.py``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server.auth.audit import ACTION_KEY, AuditLog, audited
from mcp_server.auth.csrf import csrf_refusal, session_cookie
from mcp_server.auth.middleware import Authenticator
from mcp_server.auth.principal import PRINCIPAL_KEY, Principal
from mcp_server.auth.ratelimit import RateLimiter
from mcp_server.config import Settings
from mcp_server.edge import logs
from mcp_server.edge.hosts import HostGuard
from mcp_server.edge.scope import (
    REQUEST_ID_KEY,
    client_ip,
    header,
    incoming_request_id,
    parse_networks,
    principal_in,
)
from mcp_server.errors import BadRequest, KubegateError, RateLimited, Unauthorized
from mcp_server.http import (
    MCP_MESSAGE_KEY,
    MCP_PATH,
    BodyLimit,
    BodyTooLarge,
    SlowBody,
    dumps,
    is_shorthand,
    json_or_none,
    mcp_tool,
    read_body,
    replay,
)
from mcp_server.observability import METRICS

log = logging.getLogger("kubegate.access")
PROTECTED_PREFIX = "/api"
_SESSION_USERS = 4096
"""How many principals' SDK users the edge keeps built (then it starts afresh)."""


@dataclass(slots=True)
class Exchange:
    """One request in flight: what the edge learnt about it and what it adds to the answer."""

    scope: Scope
    raw_send: Send
    request_id: str
    headers: list[tuple[bytes, bytes]]
    door: str = "other"
    status: int = 500
    started: bool = False
    principal: Principal | None = None
    audit: bool = False
    tool: str | None = None

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = int(message["status"])
            message = {**message, "headers": [*message.get("headers", ()), *self.headers]}
        await self.raw_send(message)

    async def error(self, error: KubegateError, headers: dict[str, str] | None = None) -> None:
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in {**error.headers,
                                                                                   **(headers or {})}.items()]
        body = dumps(error.to_dict())
        await self.send({"type": "http.response.start", "status": error.status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]})
        await self.send({"type": "http.response.body", "body": body})


def _door(path: str) -> str:
    if path == MCP_PATH:
        return "mcp"
    if path.startswith("/api/") or path == PROTECTED_PREFIX:
        return "rest"
    return "auth" if path.startswith("/auth/") else "other"


class Edge:
    def __init__(self, app: ASGIApp, *, settings: Settings, authenticate: Authenticator, limiter: RateLimiter,
                 audit: AuditLog, read_only: Any) -> None:
        self.app = app
        self.authenticate = authenticate
        self.limiter = limiter
        self.audit = audit
        self.read_only = read_only
        self.hosts = HostGuard(settings)
        self.body = BodyLimit(settings.max_body_bytes, settings.body_timeout_seconds)
        self.own_origin = settings.public_origin
        self.trusted = parse_networks(settings.trusted_proxies)
        self.bind_sessions = not settings.mcp_stateless  # stateless MCP has no sessions to bind
        self.session_users: dict[Principal, AuthenticatedUser] = {}
        self.access_log = settings.access_log
        metadata = f"{settings.public_url}/.well-known/oauth-protected-resource{MCP_PATH}"
        self.challenge = f'Bearer realm="kubegate", resource_metadata="{metadata}"'

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = incoming_request_id(scope)
        scope[REQUEST_ID_KEY] = rid
        ex = Exchange(scope, send, rid, [(b"x-request-id", rid.encode())], door=_door(scope["path"]))
        fields: dict[str, Any] = {"request_id": rid, "door": ex.door}
        token = logs.CURRENT.set(fields)
        started = time.perf_counter()
        try:
            await self._serve(ex, receive)
        except Exception:
            log.exception("unhandled error answering %s %s", scope["method"], scope["path"])
            if not ex.started:
                await ex.error(KubegateError())
        finally:
            elapsed = time.perf_counter() - started
            METRICS.requests.inc(ex.door, str(ex.status) if ex.started else "aborted")
            METRICS.request_seconds.observe(elapsed, ex.door)
            await self._after(ex, fields, elapsed)
            logs.CURRENT.reset(token)

    async def _serve(self, ex: Exchange, receive: Receive) -> None:
        scope = ex.scope
        path: str = scope["path"]
        if path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/"):
            if not await self._admit(ex, receive):
                return
        elif self.body.declared_too_large(scope):
            await ex.error(*await self.body.refusal(BodyTooLarge(), receive))
            return
        ex.audit = audited(scope["method"], path)
        guarded = self.body.wrap(receive) if _may_have_body(scope) else receive
        try:
            if path == MCP_PATH and scope["method"] == "POST":
                guarded = await self._read_mcp(ex, guarded)
            await self.app(scope, guarded, ex.send)
        except (BodyTooLarge, SlowBody) as refusal:
            if not ex.started:
                await ex.error(*await self.body.refusal(refusal, receive))
        except KubegateError as exc:  # a body the edge could not parse
            await ex.error(exc)

    async def _admit(self, ex: Exchange, receive: Receive) -> bool:
        """Host check, authentication, rate limit and CSRF; False when the request was answered."""
        scope = ex.scope
        refusal = self.hosts.refusal(scope)
        if refusal is not None:
            await ex.error(refusal)
            return False
        principal = await self.authenticate(scope)
        if principal is None:
            await self._unauthenticated(ex)
            return False
        ex.principal = scope[PRINCIPAL_KEY] = principal
        if self.bind_sessions and scope["path"] == MCP_PATH:
            # The MCP SDK binds each Streamable HTTP session to the user that opened it.
            scope["user"] = self._session_user(principal)
        verdict = await self.limiter.hit(principal)
        ex.headers += verdict.raw_headers()
        if not verdict.allowed:
            METRICS.rate_limited.inc(principal.method)
            error = RateLimited(f"Rate limit of {verdict.limit} requests per hour exceeded; retry later")
            await ex.error(error, {"Retry-After": str(verdict.retry_after())})
            return False
        if principal.method == "session":
            refusal = csrf_refusal(scope["method"], Headers(scope=scope), session_cookie(scope) or "",
                                   self.own_origin)
            if refusal is not None:
                ex.audit = audited(scope["method"], scope["path"])
                await ex.error(refusal)
                return False
        if self.body.declared_too_large(scope):
            ex.audit = audited(scope["method"], scope["path"])
            await ex.error(*await self.body.refusal(BodyTooLarge(), receive))
            return False
        return True

    def _session_user(self, principal: Principal) -> AuthenticatedUser:
        """The SDK's view of the caller, built once per principal (two pydantic models a request otherwise)."""
        user = self.session_users.get(principal)
        if user is None:
            if len(self.session_users) >= _SESSION_USERS:
                self.session_users.clear()
            user = self.session_users[principal] = AuthenticatedUser(AccessToken(
                token="", client_id=principal.user_id, scopes=list(principal.scopes), subject=principal.user_id))
        return user

    async def _unauthenticated(self, ex: Exchange) -> None:
        scope = ex.scope
        sent = "api_key" if header(scope, b"authorization") is not None else (
            "session" if session_cookie(scope) else "none")
        METRICS.auth_failures.inc(sent)
        error = Unauthorized("Missing or invalid credentials: send Authorization: Bearer sk_live_... "
                             "or log in at /auth/login")
        await ex.error(error, {"WWW-Authenticate": self.challenge})
        await self.audit.failed_authentication(method=scope["method"], path=scope["path"],
                                               client_ip=client_ip(scope, self.trusted),
                                               auth_method=None if sent == "none" else sent)

    async def _read_mcp(self, ex: Exchange, receive: Receive) -> Receive:
        """Read and parse a POST to the MCP endpoint once; name its tool; decide whether to audit it."""
        body, messages = await read_body(receive)
        message = ex.scope[MCP_MESSAGE_KEY] = json_or_none(body)
        if is_shorthand(message):
            ex.door = "shorthand"  # the spec's curl examples send it with any Content-Type
        elif (header(ex.scope, b"content-type") or b"").split(b";", 1)[0].strip().lower() != b"application/json":
            # JSON-RPC must say it is JSON; refused here in the documented shape, not the SDK's plain text.
            raise BadRequest("JSON-RPC to /api/mcp needs Content-Type: application/json")
        ex.tool = mcp_tool(message)
        ex.audit = ex.audit and ex.tool is not None and not self.read_only(ex.tool)
        return replay(messages, receive)

    async def _after(self, ex: Exchange, fields: dict[str, Any], elapsed: float) -> None:
        scope = ex.scope
        action = ex.tool or scope.get(ACTION_KEY)
        principal = ex.principal or principal_in(scope)  # /auth routes name who logged in or out
        if self.access_log or ex.status >= 500:
            fields.update(door=ex.door, tool=action, status=ex.status,
                          user_id=principal.user_id if principal else None)
            log.info("%s %s %d %.1fms", scope["method"], _logged_path(scope), ex.status, elapsed * 1000)
        if not ex.audit or principal is None or ex.status == 429:
            return  # 429s are counted by the limiter; logging each would let a flood fill the disk
        endpoint = scope.get("endpoint")
        await self.audit.record(principal=principal, method=scope["method"], path=scope["path"],
                                action=action or getattr(endpoint, "__name__", None), status=ex.status,
                                client_ip=client_ip(scope, self.trusted))


def _may_have_body(scope: Scope) -> bool:
    """Whether a request can carry a body to bound: a GET without framing headers has none."""
    if scope["method"] not in ("GET", "HEAD"):
        return True
    return any(name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"])


def _logged_path(scope: Scope) -> str:
    """The path and query for the access log; ``/auth`` queries (the OAuth code and state) masked."""
    path: str = scope["path"]
    query: bytes = scope.get("query_string", b"")
    if not query:
        return path
    return f"{path}?[redacted]" if path.startswith("/auth/") else f"{path}?{query.decode('latin-1')}"
