"""The sandbox origins: ``{name}-{user hash}.{KUBEGATE_SANDBOX_DOMAIN}`` -> the sandbox's port.

Who may pass: whoever shows the sandbox's password (HTTP Basic, any user name; or the login form
at ``/.kubegate/login``, which sets an HttpOnly cookie scoped to that one host), or its owner's
API key (``Authorization: Bearer``, needs ``sandboxes:read``). Without credentials the answer is
401 whether or not the sandbox exists; a key of another user gets 404, as everywhere. The
credential that let a request in is taken off it before it reaches the sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

from mcp_server.auth.keys import KEY_PREFIX
from mcp_server.auth.oauth import login_state_secret
from mcp_server.proxy.forward import Forwarder, Headers
from mcp_server.proxy.hosts import host_of, label_under
from mcp_server.services import Services
from mcp_server.store.sandboxes import SandboxRecord

COOKIE = "kubegate_sandbox"
LOGIN_PATH = "/.kubegate/login"
_FORM_LIMIT = 4096


class SandboxSite:
    """ASGI app for every sandbox host."""

    def __init__(self, services: Services, forwarder: Forwarder | None = None) -> None:
        self.services = services
        self.sandboxes = services.parts.sandboxes
        self.forwarder = forwarder or Forwarder()
        self._secret = login_state_secret(services.settings).encode()
        self._secure = services.settings.public_url.startswith("https:")
        # Under https the __Host- prefix stops a sibling sandbox from planting this cookie via Domain=.
        self.cookie_name = f"__Host-{COOKIE}" if self._secure else COOKIE

    def cookie_value(self, record: SandboxRecord) -> str:
        return hmac.new(self._secret, f"{record.id}:{record.password_hash}".encode(), hashlib.sha256).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        label = label_under(host_of(scope), self.sandboxes.domain) or ""
        record = await self.sandboxes.by_host(label)
        if scope["type"] == "http" and scope["path"] == LOGIN_PATH:
            await self._login(record, scope, receive, send)
            return
        verdict, headers = await self._admit(record, scope)
        if verdict != 200 or record is None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            elif verdict == 404:
                await _page(send, 404, "No such sandbox", "<p>No such sandbox.</p>")
            else:
                await _unauthorized(scope, send)
            return
        workloads = self.sandboxes.workloads
        if workloads is None:
            await _page(send, 503, "Unavailable", "<p>This runtime cannot reach sandboxes.</p>")
            return
        endpoint = workloads.endpoint(record.id, owner=record.user_id)
        if scope["type"] == "websocket":
            await self.forwarder.websocket(endpoint, scope, receive, send, headers)
        else:
            await self.forwarder.http(endpoint, scope, receive, send, headers)

    async def _admit(self, record: SandboxRecord | None, scope: Scope) -> tuple[int, Headers]:
        """(200, headers to forward) when the request may pass, else (401 | 404, [])."""
        headers: Headers = list(scope["headers"])
        cookie = _cookie(headers, self.cookie_name)
        if record is not None and cookie and hmac.compare_digest(cookie, self.cookie_value(record)):
            return 200, _without_cookie(headers, self.cookie_name)
        authorization = next((v.decode("latin-1") for n, v in headers if n == b"authorization"), "")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        rest = _without_cookie([(n, v) for n, v in headers if n != b"authorization"], self.cookie_name)
        if scheme.lower() == "basic":
            password = _basic_password(credential)
            ok = record is not None and password is not None and self.sandboxes.password_matches(record, password)
            return (200, rest) if ok else (401, [])
        if scheme.lower() == "bearer" and credential.startswith(KEY_PREFIX):
            principal = await self.services.keys.authenticate(credential)
            if principal is None:
                return 401, []
            if record is None or principal.user_id != record.user_id or not principal.allows("sandboxes:read"):
                return 404, []
            return 200, rest
        return 401, []

    async def _login(self, record: SandboxRecord | None, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _page(send, 200, "Sandbox login", _FORM.format(next="/", error=""))
            return
        form = parse_qs((await _read_form(receive)).decode("utf-8", "replace"))
        target = form.get("next", ["/"])[0]
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        password = form.get("password", [""])[0]
        if record is None or not self.sandboxes.password_matches(record, password):
            await _page(send, 401, "Sandbox login", _FORM.format(next=html.escape(target),
                                                                 error="<p>Wrong password.</p>"))
            return
        flags = "; Secure" if self._secure else ""
        cookie = f"{self.cookie_name}={self.cookie_value(record)}; Path=/; HttpOnly; SameSite=Lax{flags}"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", target.encode()), (b"set-cookie", cookie.encode()),
                                (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def _basic_password(credential: str) -> str | None:
    try:
        decoded = base64.b64decode(credential, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2]


def _cookie(headers: Headers, cookie_name: str) -> str | None:
    for name, value in headers:
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed Cookie header is no credential
                continue
            if cookie_name in jar:
                return jar[cookie_name].value
    return None


def _without_cookie(headers: Headers, cookie: str) -> Headers:
    """``headers`` minus the sandbox cookie, so the app inside never sees it."""
    kept: Headers = []
    for name, value in headers:
        if name == b"cookie":
            parts = [p for p in value.decode("latin-1").split(";") if p.strip().split("=", 1)[0] != cookie]
            if parts:
                kept.append((name, ";".join(parts).strip().encode("latin-1")))
        else:
            kept.append((name, value))
    return kept


async def _read_form(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if len(body) > _FORM_LIMIT or not message.get("more_body"):
            return body[:_FORM_LIMIT]


async def _unauthorized(scope: Scope, send: Send) -> None:
    accept = next((v for n, v in scope["headers"] if n == b"accept"), b"")
    if b"text/html" in accept:
        path = scope.get("path", "/")
        await _page(send, 401, "Sandbox login", _FORM.format(next=html.escape(path), error=""))
        return
    body = b"This sandbox needs its password (HTTP Basic) or its owner's API key.\n"
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Basic realm="kubegate sandbox", charset="UTF-8"')]})
    await send({"type": "http.response.body", "body": body})


async def _page(send: Send, status: int, title: str, body: str) -> None:
    page = f"<!doctype html><meta charset=utf-8><title>{title}</title>{body}".encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(page)).encode()),
        (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": page})


_FORM = (
    "<h1>Sandbox login</h1>{error}"
    f'<form method=post action="{LOGIN_PATH}"><input type=hidden name=next value="{{next}}">'
    "<label>Password <input type=password name=password autofocus></label> <button>Open</button></form>"
)
