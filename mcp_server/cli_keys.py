"""``kubegate keys list`` and ``kubegate keys revoke KEY_ID``: the local operator's view of keys.

Like ``keys create`` they work on the data dir directly (no gateway needed), as the local
operator or as ``--user``, through the same capabilities every door calls.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from mcp_server.config import Settings


def add_key_parsers(keys: Any, data_dir_option: Callable[[argparse.ArgumentParser], None]) -> None:
    listing = keys.add_parser("list", help="list API keys (never their secrets)")
    revoke = keys.add_parser("revoke", help="revoke an API key: it is refused on its very next request")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id (key_...), as keys list shows it")
    for parser in (listing, revoke):
        parser.add_argument("--user", help="email of the keys' owner (default: the local operator)")
        data_dir_option(parser)


async def _call(settings: Settings, user: str | None, tool: str, arguments: dict[str, Any]) -> tuple[str, Any]:
    import mcp_server.capabilities  # noqa: F401  (fills the registry)
    from mcp_server.app import open_services
    from mcp_server.context import Context
    from mcp_server.registry import registry

    if user:
        settings.operator_email = user
    services = await open_services(settings, engine=False)
    try:
        principal = await services.operator()
        return principal.email, await registry.call(tool, Context.for_principal(principal, services.parts), arguments)
    finally:
        await services.close()


async def keys_list(settings: Settings, user: str | None) -> None:
    email, body = await _call(settings, user, "api_keys_list", {})
    keys = body["apiKeys"]
    print(f"{len(keys)} API key(s) of {email} (data dir {settings.data_dir})")
    if keys:
        print(f"{'ID':<28} {'NAME':<24} {'PREFIX':<14} {'LAST USED':<22} EXPIRES")
    for key in keys:
        print(f"{key['id']:<28} {key['name'][:24]:<24} {key['prefix']:<14} {key.get('lastUsedAt') or 'never':<22} "
              f"{key.get('expiresAt') or 'never'}")


async def keys_revoke(settings: Settings, user: str | None, key_id: str) -> None:
    email, body = await _call(settings, user, "api_keys_revoke", {"keyId": key_id})
    key = body["apiKey"]
    print(f"Revoked API key {key['id']} '{key['name']}' of {email} (data dir {settings.data_dir}).")
