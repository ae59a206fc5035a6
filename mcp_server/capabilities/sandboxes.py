"""Sandboxes: isolated environments that stay up, with exec, files, a URL and a deadline."""

from __future__ import annotations

import base64
from typing import cast

from mcp_server.context import Context
from mcp_server.engine.sandboxes import SandboxService
from mcp_server.errors import BadRequest, ValidationFailed
from mcp_server.ids import iso
from mcp_server.models.sandboxes import (
    Credentials,
    ExecOutput,
    FileContent,
    FileRead,
    FileWrite,
    Sandbox,
    SandboxCreate,
    SandboxEnvelope,
    SandboxExec,
    SandboxExtend,
    SandboxList,
    SandboxListQuery,
    SandboxRef,
    SandboxStatus,
    Usage,
)
from mcp_server.registry import registry
from mcp_server.runtime.base import ExecRequest
from mcp_server.store.sandboxes import SandboxRecord


def sandbox_model(sandboxes: SandboxService, r: SandboxRecord, *, brief: bool = False) -> Sandbox:
    sandbox = Sandbox(
        id=r.id, name=r.name, status=cast(SandboxStatus, r.status), image=r.image, url=sandboxes.url(r),
        size=r.size,
        created_at=iso(r.created_at) or "", expires_at=iso(r.expires_at) or "", reason=r.reason,
    )
    if not brief:
        sandbox.network = r.network
        sandbox.env_keys = list(r.env_keys)
        sandbox.message = r.message
        sandbox.started_at = iso(r.started_at)
        sandbox.ended_at = iso(r.ended_at)
    return sandbox


@registry.capability(scope="sandboxes:read", title="List sandboxes", read_only=True, idempotent=True)
async def sandboxes_list(ctx: Context, args: SandboxListQuery) -> SandboxList:
    """List your sandboxes, newest first; page with limit and nextCursor."""
    records, cursor = await ctx.sandboxes.page(ctx.principal.user_id, args.status, args.limit, args.cursor)
    return SandboxList(sandboxes=[sandbox_model(ctx.sandboxes, r, brief=True) for r in records], next_cursor=cursor)


@registry.capability(scope="sandboxes:write", title="Create a sandbox")
async def sandboxes_create(ctx: Context, args: SandboxCreate) -> SandboxEnvelope:
    """Start an isolated environment that stays up until its timeout.

    Answers `provisioning` with its url and password (shown only now). The url reaches port 8080 inside, with the
    password (HTTP Basic) or your API key.
    """
    record, password = await ctx.sandboxes.create(ctx.principal.user_id, args)
    sandbox = sandbox_model(ctx.sandboxes, record)
    sandbox.credentials = Credentials(password=password)
    return SandboxEnvelope(sandbox=sandbox)


@registry.capability(scope="sandboxes:read", title="Get a sandbox", read_only=True, idempotent=True)
async def sandboxes_get(ctx: Context, args: SandboxRef) -> SandboxEnvelope:
    """A sandbox's status, URL, expiry and current usage (never its password)."""
    record = await ctx.sandboxes.get(ctx.principal.user_id, args.sandbox_id)
    sandbox = sandbox_model(ctx.sandboxes, record)
    stats = await ctx.sandboxes.stats(record)
    if stats is not None:
        sandbox.usage = Usage(processes=stats.processes, memory_bytes=stats.memory_bytes)
    return SandboxEnvelope(sandbox=sandbox)


@registry.capability(scope="sandboxes:write", title="Delete a sandbox", destructive=True, idempotent=True)
async def sandboxes_delete(ctx: Context, args: SandboxRef) -> SandboxEnvelope:
    """Stop the sandbox and delete it with all its files."""
    record = await ctx.sandboxes.delete(ctx.principal.user_id, args.sandbox_id)
    return SandboxEnvelope(sandbox=sandbox_model(ctx.sandboxes, record))


@registry.capability(scope="sandboxes:write", title="Run a command in a sandbox")
async def sandboxes_exec(ctx: Context, args: SandboxExec) -> ExecOutput:
    """Run a command in a sandbox and wait for it; output streams as log messages.

    Start servers in the background: nohup cmd >log 2>&1 &
    """

    async def sink(stream: str, chunk: bytes) -> None:
        await ctx.log("info" if stream == "stdout" else "notice", chunk.decode(errors="replace"))

    request = ExecRequest(
        command=args.command, stdin=(args.stdin or "").encode(), cwd=args.cwd, env=args.env,
        timeout_seconds=float(args.timeout) if args.timeout is not None else 60.0,
    )
    result = await ctx.sandboxes.exec(ctx.principal.user_id, args.sandbox_id, request, sink)
    return ExecOutput(exit_code=result.exit_code, stdout=result.stdout.decode(errors="replace"),
                      stderr=result.stderr.decode(errors="replace"), truncated=result.truncated,
                      timed_out=result.timed_out)


@registry.capability(scope="sandboxes:read", title="Read a file in a sandbox", read_only=True, idempotent=True)
async def sandboxes_read_file(ctx: Context, args: FileRead) -> FileContent:
    """Read a file under the sandbox's home; use encoding base64 for binary files."""
    data = await ctx.sandboxes.read_file(ctx.principal.user_id, args.sandbox_id, args.path)
    if args.encoding == "base64":
        return FileContent(path=args.path, size=len(data), encoding="base64", content=base64.b64encode(data).decode())
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise BadRequest(f"{args.path} is not UTF-8 text; read it with encoding base64") from None
    return FileContent(path=args.path, size=len(data), encoding="utf-8", content=text)


@registry.capability(scope="sandboxes:write", title="Write a file in a sandbox", idempotent=True)
async def sandboxes_write_file(ctx: Context, args: FileWrite) -> FileContent:
    """Create or replace a file under the sandbox's home (parent dirs are made)."""
    if args.encoding == "base64":
        try:
            data = base64.b64decode(args.content, validate=True)
        except ValueError:  # binascii.Error, or characters outside ASCII
            raise ValidationFailed("is not valid base64", field="content") from None
    else:
        data = args.content.encode()
    await ctx.sandboxes.write_file(ctx.principal.user_id, args.sandbox_id, args.path, data)
    return FileContent(path=args.path, size=len(data), encoding=args.encoding)


@registry.capability(scope="sandboxes:write", title="Extend a sandbox", idempotent=True)
async def sandboxes_extend(ctx: Context, args: SandboxExtend) -> SandboxEnvelope:
    """Give a running sandbox a new lifetime counted from now (capped by the server)."""
    record = await ctx.sandboxes.extend(ctx.principal.user_id, args.sandbox_id, args.timeout)
    return SandboxEnvelope(sandbox=sandbox_model(ctx.sandboxes, record))

