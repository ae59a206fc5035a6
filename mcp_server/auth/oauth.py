"""The login provider, through authlib: generic OIDC, or the Google and GitHub presets.

OIDC (and Google) run the authorization-code flow with PKCE, a state and a nonce; authlib
checks the state, exchanges the code and verifies the ID token (signature against the
provider's JWKS, issuer, audience, expiry, nonce). The gateway then trusts only a verified
email: ``email_verified`` must be true in the ID token (or the userinfo of the same subject).
GitHub is OAuth 2 without ID tokens, so the email is the account's primary verified address
from its API. Users are keyed by that email (created on first login).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request

from mcp_server.config import Settings
from mcp_server.errors import Forbidden, Unauthorized, Unavailable

log = logging.getLogger(__name__)

CLIENT_NAME = "kubegate"
GOOGLE_ISSUER = "https://accounts.google.com"


@dataclass(frozen=True, slots=True)
class Identity:
    email: str
    subject: str


def login_configured(settings: Settings) -> bool:
    if not (settings.oidc_client_id and settings.oidc_client_secret):
        return False
    return settings.oidc_provider != "oidc" or bool(settings.oidc_issuer)


def provider_options(settings: Settings) -> dict[str, Any]:
    """authlib ``register`` options for the configured provider (no network needed here)."""
    common: dict[str, Any] = {"client_id": settings.oidc_client_id, "client_secret": settings.oidc_client_secret}
    if settings.oidc_provider == "github":
        return {
            **common,
            "authorize_url": "https://github.com/login/oauth/authorize",
            "access_token_url": "https://github.com/login/oauth/access_token",
            "api_base_url": "https://api.github.com/",
            "client_kwargs": {"scope": "read:user user:email"},
        }
    issuer = GOOGLE_ISSUER if settings.oidc_provider == "google" else (settings.oidc_issuer or "").rstrip("/")
    return {
        **common,
        "server_metadata_url": f"{issuer}/.well-known/openid-configuration",
        "client_kwargs": {"scope": "openid email profile", "code_challenge_method": "S256"},
    }


def expected_issuer(settings: Settings) -> str:
    return GOOGLE_ISSUER if settings.oidc_provider == "google" else (settings.oidc_issuer or "").rstrip("/")


class LoginProvider:
    """Built only where login is configured: authlib (and the cryptography under it) would add ~130 ms
    to every gateway's start, so it is imported here, not at the top."""

    def __init__(self, settings: Settings) -> None:
        from authlib.integrations.starlette_client import OAuth  # type: ignore[import-untyped]

        self.settings = settings
        self.name = settings.oidc_provider
        oauth = OAuth()
        oauth.register(CLIENT_NAME, **provider_options(settings))
        self.client: Any = oauth.create_client(CLIENT_NAME)

    async def redirect(self, request: Request, callback_url: str) -> Any:
        """The redirect to the provider; 503 when it cannot be reached (its metadata is fetched first)."""
        from authlib.common.errors import AuthlibBaseError  # type: ignore[import-untyped]

        try:
            return await self.client.authorize_redirect(request, callback_url)
        except (AuthlibBaseError, *_transport_errors()) as exc:
            log.warning("login provider unreachable: %s", type(exc).__name__)
            raise Unavailable("The login provider cannot be reached") from None

    async def identity(self, request: Request) -> Identity:
        """Finish the flow started by ``redirect``: the caller's verified email; 401 for a refused answer, 503
        when the provider cannot be reached."""
        from authlib.common.errors import AuthlibBaseError

        try:
            return await self._identity(request)
        except AuthlibBaseError as exc:
            raise Unauthorized(f"Login failed: {exc.error or 'invalid response'}") from None
        except _transport_errors():
            raise Unavailable("The login provider cannot be reached") from None

    async def _identity(self, request: Request) -> Identity:
        if self.name == "github":
            token = await self.client.authorize_access_token(request)
            return await self._github_identity(token)
        issuer = expected_issuer(self.settings)
        token = await self.client.authorize_access_token(
            request, claims_options={"iss": {"essential": True, "values": [issuer, issuer + "/"]}}
        )
        claims = dict(token.get("userinfo") or {})
        if not claims.get("sub"):
            raise Forbidden("The provider returned no verified ID token")
        if "email" not in claims:
            extra = dict(await self.client.userinfo(token=token))
            if extra.get("sub") == claims["sub"]:
                claims.update({k: extra[k] for k in ("email", "email_verified") if k in extra})
        return _verified(claims)

    async def _github_identity(self, token: dict[str, Any]) -> Identity:
        user = (await self.client.get("user", token=token)).json()
        emails = (await self.client.get("user/emails", token=token)).json()
        primary = next((e for e in emails if isinstance(e, dict) and e.get("primary") and e.get("verified")), None)
        if primary is None:
            raise Forbidden("The GitHub account has no verified primary email")
        return Identity(email=str(primary["email"]).lower(), subject=str(user.get("id", "")))


def _transport_errors() -> tuple[type[Exception], ...]:
    """What authlib's HTTP client raises when the provider cannot be reached: ``httpx2``'s errors, which
    authlib prefers, or ``httpx``'s, which it falls back to (catching only one gave a 500)."""
    found: list[type[Exception]] = []
    for module in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            found.append(importlib.import_module(module).HTTPError)
    return tuple(found)


def _verified(claims: dict[str, Any]) -> Identity:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise Forbidden("The provider did not share an email address")
    if claims.get("email_verified") not in (True, "true"):
        raise Forbidden("The provider has not verified this email address")
    return Identity(email=email.strip().lower(), subject=str(claims["sub"]))


def login_state_secret(settings: Settings) -> str:
    """The key signing the short-lived login-state cookie: configured, or kept in the data dir.

    Replicas that share the data dir share it, so a callback may land on any of them.
    """
    if settings.session_secret:
        return settings.session_secret
    path: Path = settings.data_dir / "login_state.key"
    if not path.exists():
        draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)  # atomic: exactly one process's secret wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()
