"""``kubegate``: serve | stdio | keys create | migrate | version."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mcp_server import __version__
from mcp_server.cli_run import add_parsers as add_run_parsers
from mcp_server.cli_run import run as run_and_watch
from mcp_server.config import Settings
from mcp_server.errors import KubegateError


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir", "public_url"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


async def _serve(settings: Settings) -> None:
    # Writes hop to aiosqlite's thread and back (reads run on the loop thread, see store/db.py);
    # under load the loop thread holds the GIL and a hop waits out the switch interval (5 ms by
    # default). 0.5 ms measured +20% calls/s in bench/mcp_overhead.py back when reads hopped too.
    sys.setswitchinterval(0.0005)
    import uvicorn

    from mcp_server.app import build_app, open_services
    from mcp_server.auth.guards import guarded_http_protocol, install_log_redaction
    from mcp_server.auth.routes import dev_login_refusal
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
        print(f"kubegate {__version__} listening on {settings.public_url} (data in {settings.data_dir}); "
              f"runs: {_describe(services.containment())}", file=sys.stderr, flush=True)
        await uvicorn.Server(config).serve()
    finally:
        await services.close()


def _describe(runs: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in runs.items())


def _freeze_startup_heap() -> None:
    """Take what start-up built (modules, schemas, the app) out of the garbage collector's sight.

    Those objects live as long as the process, yet every full collection walks all of them, and
    each MCP request over Streamable HTTP leaves enough cyclic garbage (task groups, cancel
    scopes, streams) to trigger full collections often. Frozen, they are no longer scanned;
    measured with ``bench/mcp_overhead.py``.
    """
    gc.collect()
    gc.freeze()


async def _stdio(settings: Settings) -> None:
    from mcp.server.stdio import stdio_server

    import mcp_server.capabilities  # noqa: F401  (fills the registry)
    from mcp_server.app import open_services
    from mcp_server.registry import registry
    from mcp_server.server import build_server

    services = await open_services(settings)
    try:
        await services.stdio_principal()  # refuse a bad KUBEGATE_API_KEY at start, plainly

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
        async with stdio_server() as (read, write):
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
        print("Store it now: it is not shown again.")
        print(key["key"])
    finally:
        await services.close()


async def _migrate(settings: Settings) -> None:
    from mcp_server.store.stores import open_stores

    stores = await open_stores(settings.db_path)
    print(f"schema version {await stores.schema_version()} at {settings.db_path}")
    await stores.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubegate", description="MCP-first gateway to run work on Kubernetes")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve MCP over HTTP, the REST API and login")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--public-url")
    for p in (serve, sub.add_parser("stdio", help="serve MCP over stdio"),
              sub.add_parser("migrate", help="apply database migrations and exit")):
        p.add_argument("--data-dir")
    keys = sub.add_parser("keys", help="manage API keys locally").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="mint an API key; it is printed alone on the last line")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", nargs="+")
    create.add_argument("--user", help="email of the key's owner (default: the local operator)")
    create.add_argument("--expires-in-days", type=int, default=90)
    create.add_argument("--data-dir")
    sub.add_parser("version", help="print the version")
    add_run_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"kubegate {__version__}")
        return
    if args.command in ("tasks", "workflows"):
        sys.exit(_run_status(run_and_watch(args)))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The SDK logs every stateless request's transport teardown at INFO: noise that costs throughput.
    logging.getLogger("mcp").setLevel(logging.WARNING)
    settings = _settings(args)
    runners: dict[str, Callable[[], Awaitable[None]]] = {
        "serve": lambda: _serve(settings),
        "stdio": lambda: _stdio(settings),
        "migrate": lambda: _migrate(settings),
        "keys": lambda: _keys_create(settings, args.name, args.scopes, args.user, args.expires_in_days),
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
