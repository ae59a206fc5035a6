"""The client commands' connection to a gateway: where it is, which key, and plain-line failures.

The URL is ``--url``, else ``KUBEGATE_URL``, else ``url`` in the config file, else the gateway's
own public URL (``KUBEGATE_PUBLIC_URL``, or ``http://127.0.0.1:KUBEGATE_PORT``), so a shell set up
for ``kubegate serve`` reaches it without more. The key is ``--api-key``, ``KUBEGATE_API_KEY``,
or ``api_key`` in the config file. Before opening an MCP session the client asks ``/auth/me``,
which tells "nobody listens there" and "this key is refused" apart in one plain line each.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp_server.config import config_file

WAIT_SECONDS = 600.0


class ClientError(Exception):
    """A failure to say to the person in one line (the CLI prefixes ``kubegate:``)."""


def add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the gateway (KUBEGATE_URL; default: KUBEGATE_PUBLIC_URL or "
                                      "http://127.0.0.1:KUBEGATE_PORT)")
    parser.add_argument("--api-key", help="an API key, sk_live_... (KUBEGATE_API_KEY)")


def _config() -> dict[str, Any]:
    path = config_file()
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ClientError(f"cannot read {path}: {exc}") from None


def resolve(args: argparse.Namespace) -> tuple[str, str]:
    """The gateway URL and API key for this command, by the precedence in the module docstring."""
    config = _config()
    port = os.environ.get("KUBEGATE_PORT") or str(config.get("port", 8080))
    url = (args.url or os.environ.get("KUBEGATE_URL") or config.get("url") or os.environ.get("KUBEGATE_PUBLIC_URL")
           or config.get("public_url") or f"http://127.0.0.1:{port}")
    key = args.api_key or os.environ.get("KUBEGATE_API_KEY") or config.get("api_key")
    if not key:
        raise ClientError("pass --api-key or set KUBEGATE_API_KEY (mint one with: kubegate keys create --name me)")
    return str(url).rstrip("/"), str(key)


async def _preflight(http: Any, url: str) -> None:
    import httpx2

    try:
        answer = await http.get(f"{url}/auth/me")
    except httpx2.HTTPError:
        raise ClientError(f"no gateway at {url}: is `kubegate serve` running? set KUBEGATE_URL or pass --url") from None
    if answer.status_code == 401:
        raise ClientError(f"the gateway at {url} refused the API key (invalid, expired or revoked); "
                          "mint one with: kubegate keys create --name me") from None
    if answer.status_code != 200:
        raise ClientError(f"{url} does not answer like a kubegate gateway (GET /auth/me: {answer.status_code})")


@asynccontextmanager
async def connect(url: str, key: str, **client_options: Any) -> AsyncIterator[Any]:
    """An MCP client session with the gateway (Streamable HTTP), after a pre-flight check."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=WAIT_SECONDS + 30) as http:
        await _preflight(http, url)
        transport = streamable_http_client(f"{url}/api/mcp", http_client=http)
        async with Client(transport, mode="legacy", **client_options) as client:
            yield client


def plain(exc: BaseException, url: str) -> str:
    """One line for a failure met while talking to the gateway (an exception group is looked into)."""
    import httpx2

    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if isinstance(inner, Exception):
                return plain(inner, url)
    if isinstance(exc, ClientError):
        return str(exc)
    if isinstance(exc, httpx2.HTTPError):
        return f"lost the connection to the gateway at {url} ({type(exc).__name__}): is `kubegate serve` running?"
    return f"the gateway at {url} failed the request: {exc}"
