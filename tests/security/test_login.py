"""OAuth/OIDC login against a real local OIDC provider, then the session cookie on every HTTP door."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.gateway import Gateway, free_port, kubegate_env, mint_key
from tests.security.conftest import StartGateway

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # the provider imports authlib.jose, now deprecated
    import oidc_provider_mock

# The provider runs in this process; its own authlib calls warn about authlib APIs it still uses.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*",
                                        "ignore::DeprecationWarning:oidc_provider_mock.*")

CLIENT_SECRET = "oidc-client-secret-never-logged-7f3a"
ALICE = oidc_provider_mock.User(sub="alice", claims={"email": "Alice@Example.test", "email_verified": True})
BOB = oidc_provider_mock.User(sub="bob", claims={"email": "bob@example.test", "email_verified": False})


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with oidc_provider_mock.run_server_in_thread(user_claims=[ALICE, BOB]) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def gateway(start_gateway: StartGateway, provider: str) -> Gateway:
    return start_gateway(oidc_issuer=provider, oidc_client_id="kubegate-test", oidc_client_secret=CLIENT_SECRET,
                         access_log="1")


def login(gw: Gateway, sub: str, redirect: str = "/healthz") -> tuple[httpx.Client, httpx.Response]:
    """Drive the browser side of the flow: gateway -> provider form -> provider -> callback -> redirect."""
    http = httpx.Client(base_url=gw.url, follow_redirects=True, timeout=30)
    form = http.get("/auth/login", params={"redirect": redirect})
    assert form.status_code == 200 and form.url.path == "/oauth2/authorize", form.text
    return http, http.post(str(form.url), data={"sub": sub})


def cookie_headers(http: httpx.Client) -> dict[str, str]:
    return {"Cookie": f"session={http.cookies['session']}", "X-CSRF-Token": http.cookies["csrf_token"]}


def test_login_creates_the_user_and_a_session_that_works_on_rest(gateway: Gateway) -> None:
    http, landed = login(gateway, "alice")
    assert landed.status_code == 200 and landed.url.path == "/healthz"
    set_cookie = [value for hop in landed.history for name, value in hop.headers.multi_items()
                  if name == "set-cookie" and value.startswith("session=")]
    assert set_cookie and "httponly" in set_cookie[0].lower() and "samesite=lax" in set_cookie[0].lower()
    assert "secure" not in set_cookie[0].lower()  # the public URL is http here
    me = http.get("/auth/me").json()
    assert me["user"]["email"] == "alice@example.test" and me["authMethod"] == "session"
    keys = http.get("/api/api-keys")
    assert keys.status_code == 200 and keys.headers["x-ratelimit-limit"] == "1000"
    same_site = http.post("/api/api-keys", json={"name": "from-page"}, headers={"Origin": gateway.url})
    assert same_site.status_code == 201


async def test_the_session_cookie_works_on_mcp_over_http(gateway: Gateway) -> None:
    http, _ = login(gateway, "alice")
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx2.AsyncClient(headers=cookie_headers(http), timeout=30))
        mcp = await stack.enter_async_context(
            Client(streamable_http_client(f"{gateway.url}/api/mcp", http_client=client), mode="legacy")
        )
        tools = {tool.name for tool in (await mcp.list_tools()).tools}
        result = await mcp.call_tool("api_keys_list", {})
    assert "api_keys_create" in tools and not result.is_error


def test_logout_ends_the_session_at_once(gateway: Gateway) -> None:
    http, _ = login(gateway, "alice")
    stolen = http.cookies["session"]
    assert http.post("/auth/logout", headers={"Origin": gateway.url}).status_code == 204
    again = httpx.get(f"{gateway.url}/api/api-keys", cookies={"session": stolen})
    assert again.status_code == 401 and again.json()["error"] == "unauthorized"


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Referer": "https://evil.example/page"},
    {},  # neither header: the double-submit token is required
    {"X-CSRF-Token": "forged"},
])
def test_a_cross_site_post_with_a_valid_cookie_is_refused(gateway: Gateway, headers: dict[str, str]) -> None:
    http, _ = login(gateway, "alice")
    refused = http.post("/api/api-keys", json={"name": "csrf"}, headers=headers)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert http.post("/auth/logout", headers=headers).status_code == 403
    token_ok = http.post("/api/api-keys", json={"name": "script"}, headers={"X-CSRF-Token": http.cookies["csrf_token"]})
    assert token_ok.status_code == 201


def test_an_unverified_email_cannot_log_in(gateway: Gateway) -> None:
    _, landed = login(gateway, "bob")
    assert landed.status_code == 403 and landed.json()["error"] == "forbidden"


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example", "https://evil.example", "/\t/evil.example",
                                    "evil"])
def test_login_refuses_redirects_off_the_gateway(gateway: Gateway, target: str) -> None:
    response = httpx.get(f"{gateway.url}/auth/login", params={"redirect": target})
    assert response.status_code == 400 and response.json()["error"] == "bad_request"


def test_a_callback_without_the_login_state_is_refused(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/auth/callback", params={"code": "stolen", "state": "forged"})
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"


def test_sessions_are_stored_hashed_and_expire(gateway: Gateway) -> None:
    http, _ = login(gateway, "alice")
    token = http.cookies["session"]
    with sqlite3.connect(gateway.data_dir / "kubegate.db") as conn:
        stored = [row[0] for row in conn.execute("SELECT token_hash FROM sessions")]
        assert token not in stored and all(len(h) == 64 for h in stored)
        conn.execute("UPDATE sessions SET expires_at = '2000-01-01T00:00:00.000000Z'")
    assert http.get("/api/api-keys").status_code == 401


def test_no_secret_reaches_the_gateway_log(gateway: Gateway) -> None:
    http, _ = login(gateway, "alice")
    secrets: list[Any] = [http.cookies["session"], http.cookies["csrf_token"], CLIENT_SECRET]
    key = mint_key(gateway.data_dir, user="logs@example.test")
    secrets.append(key)
    created = httpx.post(f"{gateway.url}/api/api-keys", json={"name": "shown-once"},
                         headers={"Authorization": f"Bearer {key}"}).json()
    secrets.append(created["apiKey"]["key"])
    httpx.get(f"{gateway.url}/api/api-keys", headers={"Authorization": "Bearer sk_live_wrongwrongwrong"})
    http.post("/auth/logout", headers={"Origin": gateway.url})
    logs = gateway.logs()
    assert "GET /auth/callback?[redacted]" in logs
    for secret in [*secrets, "sk_live_wrongwrongwrong"]:
        assert secret not in logs


def test_secure_cookies_when_the_public_url_is_https(start_gateway: StartGateway) -> None:
    port = free_port()
    start_gateway(port=port, public_url=f"https://127.0.0.1:{port}", dev_login="1")
    response = httpx.post(f"http://127.0.0.1:{port}/auth/dev-login", json={"email": "tls@example.test"})
    cookies = [v.lower() for k, v in response.headers.multi_items() if k == "set-cookie"]
    assert response.status_code == 200 and len(cookies) == 2
    assert all("secure" in c and "samesite=lax" in c for c in cookies)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10"])
def test_dev_login_refuses_to_start_off_loopback(tmp_path: Any, host: str) -> None:
    env = kubegate_env(tmp_path, {"KUBEGATE_DEV_LOGIN": "1", "KUBEGATE_HOST": host, "KUBEGATE_PORT": str(free_port())})
    done = subprocess.run([sys.executable, "-m", "mcp_server.cli", "serve"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "KUBEGATE_DEV_LOGIN" in done.stderr


def test_google_and_github_presets_need_no_issuer() -> None:
    from mcp_server.auth.oauth import login_configured, provider_options
    from mcp_server.config import Settings

    google = Settings(oidc_provider="google", oidc_client_id="id", oidc_client_secret="secret")
    github = Settings(oidc_provider="github", oidc_client_id="id", oidc_client_secret="secret")
    assert login_configured(google) and login_configured(github)
    assert not login_configured(Settings(oidc_client_id="id", oidc_client_secret="secret"))  # oidc needs an issuer
    assert provider_options(google)["server_metadata_url"].startswith("https://accounts.google.com/")
    assert "openid" in provider_options(google)["client_kwargs"]["scope"]
    assert provider_options(github)["client_kwargs"]["scope"] == "read:user user:email"


def test_an_unreachable_provider_is_503_in_the_error_shape(start_gateway: StartGateway) -> None:
    gw = start_gateway(oidc_issuer=f"http://127.0.0.1:{free_port()}", oidc_client_id="kubegate-test",
                       oidc_client_secret=CLIENT_SECRET)
    response = httpx.get(f"{gw.url}/auth/login", timeout=30)
    assert response.status_code == 503, response.text
    assert response.json() == {"error": "service_unavailable", "message": "The login provider cannot be reached",
                               "status": 503}
