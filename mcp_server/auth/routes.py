"""The ``/auth`` routes: login through the provider, the callback, logout, who-am-I, dev login.

``GET /auth/login?redirect=/path`` sends the browser to the provider; the state, nonce and
PKCE verifier wait in a signed, short-lived ``kubegate_login`` cookie (Starlette's
``SessionMiddleware``, on these two routes only). ``GET /auth/callback`` finishes the flow,
creates the user on first login and a server-side session, and sets two cookies: ``session``
(HttpOnly) and ``csrf_token`` (readable by the page, to echo in ``X-CSRF-Token``). Both are
``SameSite=Lax`` and ``Secure`` whenever the public URL is https. ``redirect`` must be a path
on this gateway (``/...``, never ``//`` or ``/\\``), so login cannot be used as an open redirect.
"""

from __future__ import annotations

import logging
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mcp_server.auth.audit import ACTION_KEY
from mcp_server.auth.csrf import csrf_refusal, session_cookie, source_origin
from mcp_server.auth.middleware import Authenticator
from mcp_server.auth.oauth import LoginProvider, login_configured, login_state_secret
from mcp_server.auth.principal import ALL_SCOPES, PRINCIPAL_KEY, Principal
from mcp_server.auth.revocation import REVOCATIONS
from mcp_server.auth.sessions import CSRF_COOKIE, SESSION_COOKIE, NewSession, SessionStore
from mcp_server.config import Settings
from mcp_server.errors import BadRequest, Forbidden, KubegateError, NotFound, Unauthorized
from mcp_server.http import error_response, parse_json
from mcp_server.store.users import UserStore

log = logging.getLogger(__name__)
REDIRECT_KEY = "kubegate.redirect"


def safe_redirect(target: str | None) -> str:
    """``target`` if it is a path on this gateway, else a ``BadRequest``."""
    if not target:
        return "/"
    if (not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target
            or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target)):
        raise BadRequest("redirect must be a path on this gateway, such as /docs")
    return target


def dev_login_refusal(settings: Settings) -> str | None:
    """Why dev login may not be on for these settings (it must never face a network), else ``None``."""
    if not settings.dev_login:
        return None
    for host in (settings.host, urlsplit(settings.public_url).hostname or ""):
        if not _loopback(host):
            return f"KUBEGATE_DEV_LOGIN=1 is refused on the non-loopback host {host!r}"
    return None


def _loopback(host: str) -> bool:
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


class AuthRoutes:
    def __init__(self, settings: Settings, users: UserStore, sessions: SessionStore,
                 authenticate: Authenticator) -> None:
        self.settings = settings
        self.users = users
        self.sessions = sessions
        self.authenticate = authenticate
        self.provider = LoginProvider(self.settings) if login_configured(self.settings) else None
        self.secure = self.settings.public_url.startswith("https://")

    def routes(self) -> list[BaseRoute]:
        login_state = [Middleware(
            SessionMiddleware, secret_key=login_state_secret(self.settings), session_cookie="kubegate_login",
            max_age=600, path="/auth", same_site="lax", https_only=self.secure,
        )]
        routes: list[BaseRoute] = [
            Route("/auth/login", self.login, methods=["GET"], middleware=login_state),
            Route("/auth/callback", self.callback, methods=["GET"], middleware=login_state),
            Route("/auth/logout", self.logout, methods=["POST"]),
            Route("/auth/me", self.me, methods=["GET"]),
        ]
        if self.settings.dev_login:
            routes.append(Route("/auth/dev-login", self.dev_login, methods=["POST"]))
        return routes

    async def login(self, request: Request) -> Response:
        try:
            target = safe_redirect(request.query_params.get("redirect"))
            if self.provider is None:
                raise NotFound("Login is not configured: set KUBEGATE_OIDC_CLIENT_ID and _CLIENT_SECRET")
            request.session.clear()
            request.session[REDIRECT_KEY] = target
            response: Response = await self.provider.redirect(request, f"{self.settings.public_url}/auth/callback")
            return response
        except KubegateError as exc:
            return error_response(exc)

    async def callback(self, request: Request) -> Response:
        try:
            if self.provider is None:
                raise NotFound("Login is not configured")
            identity = await self.provider.identity(request)
            target = safe_redirect(request.session.get(REDIRECT_KEY))
        except KubegateError as exc:
            return error_response(exc)
        finally:
            request.session.clear()
        session, _ = await self._start_session(request, identity.email, self.provider_name)
        response = RedirectResponse(target, status_code=303)
        self._set_cookies(response, session)
        return response

    async def dev_login(self, request: Request) -> Response:
        origin = source_origin(Headers(scope=request.scope))
        try:
            if origin is not None and origin != self.settings.public_origin:
                raise Forbidden("Cross-site request refused: the Origin is not this gateway's")
            body = parse_json(await request.body())
            email = body.get("email") if isinstance(body, dict) else None
            if not isinstance(email, str) or "@" not in email or len(email) > 254:
                raise BadRequest("email: a valid email address is required")
        except ValueError:
            return error_response(BadRequest("The body must be JSON: {\"email\": ...}"))
        except KubegateError as exc:
            return error_response(exc)
        session, principal = await self._start_session(request, email, "dev")
        response = JSONResponse({"user": {"id": principal.user_id, "email": principal.email},
                                 "csrfToken": session.csrf_token})
        self._set_cookies(response, session)
        return response

    async def _start_session(self, request: Request, email: str, provider: str) -> tuple[NewSession, Principal]:
        old = session_cookie(request.scope)
        if old:
            await self.sessions.revoke(old)  # a new login never reuses a session (no fixation)
        user = await self.users.ensure(email)
        session = await self.sessions.create(user.id, provider)
        principal = Principal(user_id=user.id, email=user.email, method="session", scopes=ALL_SCOPES,
                              session_id=session.id)
        request.scope[PRINCIPAL_KEY] = principal
        request.scope[ACTION_KEY] = "login"
        return session, principal

    @property
    def provider_name(self) -> str:
        return self.provider.name if self.provider else "dev"

    def _set_cookies(self, response: Response, session: NewSession) -> None:
        age = self.sessions.max_age_seconds
        response.set_cookie(SESSION_COOKIE, session.token, max_age=age, path="/", secure=self.secure,
                            httponly=True, samesite="lax")
        response.set_cookie(CSRF_COOKIE, session.csrf_token, max_age=age, path="/", secure=self.secure,
                            httponly=False, samesite="lax")

    async def logout(self, request: Request) -> Response:
        token = session_cookie(request.scope)
        principal = await self.sessions.authenticate(token) if token else None
        if token and principal is not None:
            refusal = csrf_refusal("POST", Headers(scope=request.scope), token, self.settings.public_origin)
            if refusal is not None:
                return error_response(refusal)
            request.scope[PRINCIPAL_KEY] = principal
            request.scope[ACTION_KEY] = "logout"
            await self.sessions.revoke(token)
            REVOCATIONS.revoked()  # waits made with this session stop now
        response = Response(status_code=204)
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.delete_cookie(name, path="/", secure=self.secure, httponly=name == SESSION_COOKIE,
                                   samesite="lax")
        return response

    async def me(self, request: Request) -> Response:
        principal = await self.authenticate(request.scope)
        if not isinstance(principal, Principal):
            return error_response(Unauthorized("Not logged in"))
        body: dict[str, Any] = {
            "user": {"id": principal.user_id, "email": principal.email},
            "authMethod": principal.method, "scopes": list(principal.scopes),
        }
        return JSONResponse(body)
