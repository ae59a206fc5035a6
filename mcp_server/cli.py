"""``kubegate``: serve | stdio | keys create|list|revoke | migrate | version, and the client commands.

Every failure a person can cause (a setting out of range, settings that contradict each other,
a refused key, no gateway at the URL) ends the command with one plain line on stderr, never a
traceback; every command that opens a data dir names it, absolute.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mcp_server import __version__
from mcp_server.cli_keys import add_key_parsers, keys_list, keys_revoke
from mcp_server.cli_run import add_parsers as add_run_parsers
from mcp_server.cli_run import run as run_client
from mcp_server.config import Settings, SettingsError, inconsistencies, load_settings
from mcp_server.errors import KubegateError


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir", "public_url"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    try:
        settings = load_settings(overrides)
    except SettingsError as exc:
        raise SystemExit(f"kubegate: {exc}") from None
    if args.command in ("serve", "stdio"):
        problems = inconsistencies(settings)
        if problems:
            raise SystemExit(f"kubegate: {'; '.join(problems)}")
    return settings


async def _serve(settings: Settings) -> None:
    # Writes hop to aiosqlite's thread and back (reads run on the loop thread, see store/db.py);
    # under load the loop thread holds the GIL and a hop waits out the switch interval (5 ms by
    # default). 0.5 ms measured +20% calls/s in bench/mcp_overhead.py back when reads hopped too.
    sys.setswitchinterval(0.0005)
    if settings.runtime == "local":
        from mcp_server.runtime.containment import confine_soon

        confine_soon(settings)  # its subprocesses run while the imports below do
    import uvicorn

    from mcp_server.app import build_app, open_services
    from mcp_server.auth.guards import guarded_http_protocol, install_log_redaction
    from mcp_server.auth.routes import dev_login_refusal
    from mcp_server.cli_serve import Banner, BannerServer
    from mcp_server.edge.logs import configure as configure_logs

    refusal = dev_login_refusal(settings)
    if refusal is not None:
        raise SystemExit(f"kubegate: {refusal}")
    services = await open_services(settings)
    try:
        config = uvicorn.Config(
            build_app(services), host=settings.host, port=settings.port, log_level="info",
            timeout_keep_alive=15, timeout_graceful_shutdown=5, server_header=False,
            # The edge writes the access log (with request ids) and decides whom to believe
            # about the client's address (KUBEGATE_TRUSTED_PROXIES), so uvicorn does neither.
            access_log=False, proxy_headers=False, log_config=None,
            http=guarded_http_protocol(settings.header_timeout_seconds, settings.max_header_bytes),
        )
        configure_logs(settings.log_format)
        install_log_redaction()
        _freeze_startup_heap()
        await BannerServer(config, Banner(services, _describe(services.containment()))).serve()
    finally:
        await services.close()


def _describe(runs: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in runs.items())


def _freeze_startup_heap() -> None:
    """Take what start-up built (modules, schemas, the app) out of the garbage collector's sight.

    Those objects live as long as the process, yet every full collection walks all of them, and
    each MCP request over Streamable HTTP leaves enough cyclic garbage (task groups, cancel
    scopes, streams) to trigger full collections often. Frozen, they are no longer scanned;
    measured with ``bench/mcp_overhead.py``. No collection first: it took ~70 ms of the start and found
    a few dozen unreachable objects, which may as well stay.
    """
    gc.freeze()


async def _stdio(settings: Settings) -> None:
    from mcp.server.stdio import stdio_server

    import mcp_server.capabilities  # noqa: F401  (fills the registry)
    from mcp_server.app import open_services
    from mcp_server.registry import registry
    from mcp_server.server import build_server
    from mcp_server.stdio_errors import answer_unreadable

    services = await open_services(settings)
    try:
        principal = await services.stdio_principal()  # refuse a bad KUBEGATE_API_KEY at start, plainly
        print(f"kubegate {__version__}: MCP over stdio as {principal.email}; data dir {settings.data_dir}",
              file=sys.stderr, flush=True)

        async def current(ctx: Any) -> Any:
            return await services.stdio_principal()  # and again on every request, as HTTP does

        async def still_valid(ctx: Any) -> bool:
            try:
                await services.stdio_principal()
            except KubegateError:
                return False
            return True

        server = build_server(services, registry.select(settings.toolsets), current, still_valid=still_valid,
                              door="stdio")
        async with stdio_server() as (raw, write), answer_unreadable(raw, write) as read:
            await server.run(read, write, server.create_initialization_options())
    finally:
        await services.close()


async def _keys_create(settings: Settings, name: str, scopes: list[str] | None, user: str | None,
                       days: int | None) -> None:
    import mcp_server.capabilities  # noqa: F401  (fills the registry)
    from mcp_server.app import open_services
    from mcp_server.context import Context
    from mcp_server.registry import registry

    if user:
        settings.operator_email = user
    services = await open_services(settings, engine=False)
    try:
        principal = await services.operator()  # no key: the operator's keys are roots of their lineage
        fields: dict[str, Any] = {"name": name, "expiresInDays": days}
        if scopes:
            fields["scopes"] = scopes
        created = await registry.call("api_keys_create", Context.for_principal(principal, services.parts), fields)
        key = created["apiKey"]
        print(f"Created API key {key['id']} '{key['name']}' for {principal.email}"
              f" (scopes: {' '.join(key['scopes'])}; expires: {key.get('expiresAt') or 'never'}).")
        print(f"Data dir: {settings.data_dir} (a gateway must use this same data dir to accept the key).")
        print("Store it now: it is not shown again.")
        print(key["key"])
    finally:
        await services.close()


async def _migrate(settings: Settings) -> None:
    from mcp_server.cli_serve import store_line
    from mcp_server.store.stores import open_stores

    stores = await open_stores(settings.db_path, settings.database_url)
    print(f"schema version {await stores.schema_version()} at {store_line(settings)} (data dir {settings.data_dir})")
    await stores.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubegate", description="MCP-first gateway to run work on Kubernetes.",
        epilog="Settings come from flags, KUBEGATE_* variables, then ~/.config/kubegate/config.toml.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve MCP over HTTP, the REST API, the dashboard and login")
    serve.add_argument("--host", help="address to listen on (KUBEGATE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (KUBEGATE_PORT, default 8080)")
    serve.add_argument("--public-url", help="URL people and clients reach the gateway at (KUBEGATE_PUBLIC_URL)")
    for p in (serve, sub.add_parser("stdio", help="serve MCP over stdio (agent harnesses launch this)"),
              sub.add_parser("migrate", help="apply database migrations and exit")):
        _data_dir_option(p)
    keys = sub.add_parser("keys", help="manage API keys on this machine's data dir").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION")
    create = keys.add_parser("create", help="mint an API key; it is printed alone on the last line")
    create.add_argument("--name", required=True, help="a label for the key, e.g. the machine that uses it")
    create.add_argument("--scopes", nargs="+", metavar="SCOPE",
                        help="e.g. tasks:read tasks:write (default: every scope)")
    create.add_argument("--user", help="email of the key's owner (default: the local operator)")
    create.add_argument("--expires-in-days", type=int, default=90, metavar="N", help="1-3650 (default 90)")
    _data_dir_option(create)
    add_key_parsers(keys, _data_dir_option)
    sub.add_parser("version", help="print the version")
    add_run_parsers(sub)
    return parser


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="where the database, logs and runs live (KUBEGATE_DATA_DIR, "
                                           "default ./.kubegate); use the gateway's own, absolute path")


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"kubegate {__version__}")
        return
    if args.command in ("tasks", "workflows"):
        # The SDK's client logs a notification that lands after its session closed as a traceback;
        # these commands report every failure that matters themselves, in one line.
        logging.getLogger("mcp").setLevel(logging.CRITICAL)
        sys.exit(_run_status(run_client(args)))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The SDK logs every stateless request's transport teardown at INFO: noise that costs throughput.
    logging.getLogger("mcp").setLevel(logging.WARNING)
    settings = _settings(args)
    keys: dict[str, Callable[[], Awaitable[None]]] = {
        "create": lambda: _keys_create(settings, args.name, args.scopes, args.user, args.expires_in_days),
        "list": lambda: keys_list(settings, args.user),
        "revoke": lambda: keys_revoke(settings, args.user, args.key_id),
    }
    runners: dict[str, Callable[[], Awaitable[None]]] = {
        "serve": lambda: _serve(settings),
        "stdio": lambda: _stdio(settings),
        "migrate": lambda: _migrate(settings),
        "keys": lambda: keys[args.keys_command](),
    }
    _run(runners[args.command]())


def _run_status(coro: Awaitable[int]) -> int:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        return 130


def _run(coro: Awaitable[None]) -> None:
    try:
        import uvloop
    except ImportError:
        uvloop = None  # type: ignore[assignment]
    try:
        if uvloop is not None:
            uvloop.run(coro)  # type: ignore[arg-type]
        else:
            asyncio.run(coro)  # type: ignore[arg-type,unused-ignore]
    except KeyboardInterrupt:
        pass
    except KubegateError as exc:  # a misconfiguration found at start: say it plainly, no traceback
        raise SystemExit(f"kubegate: {exc.message}") from None


if __name__ == "__main__":
    main()
