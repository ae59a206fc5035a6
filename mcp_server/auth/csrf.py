"""CSRF defence for cookie-authenticated requests (API keys are not sent by browsers on their own).

A state-changing request (POST, PUT, PATCH, DELETE) that a session cookie authenticates must
come from the gateway's own origin: its ``Origin`` header (or, failing that, its ``Referer``)
must be ``Settings.public_origin``. A request with neither header (a script, not a browser
page) must instead echo the CSRF token in ``X-CSRF-Token``: the double-submit token that
login put in the readable ``csrf_token`` cookie, an HMAC of the session token.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import Scope

from mcp_server.auth.sessions import CSRF_HEADER, SESSION_COOKIE, csrf_token_for
from mcp_server.errors import Forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def source_origin(headers: Headers) -> str | None:
    origin = headers.get("origin")
    if origin:
        return origin  # "null" (an opaque origin) never matches
    referer = headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}"
    return None


def csrf_refusal(method: str, headers: Headers, session_token: str, own_origin: str) -> Forbidden | None:
    """Why a cookie-authenticated request must be refused, or ``None`` when it may proceed."""
    if method in SAFE_METHODS:
        return None
    origin = source_origin(headers)
    if origin is not None:
        if origin == own_origin:
            return None
        return Forbidden("Cross-site request refused: the Origin is not this gateway's")
    sent = headers.get(CSRF_HEADER, "")
    if sent and hmac.compare_digest(sent, csrf_token_for(session_token)):
        return None
    return Forbidden("Missing or wrong X-CSRF-Token: echo the csrf_token cookie in the X-CSRF-Token header")


def session_cookie(scope: Scope) -> str | None:
    cookie = Headers(scope=scope).get("cookie")
    return cookie_parser(cookie).get(SESSION_COOKIE) if cookie else None
