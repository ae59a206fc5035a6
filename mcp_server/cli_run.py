"""``kubegate tasks run`` and ``kubegate workflows run``: start work on a gateway and watch it.

These are MCP clients of a running gateway (Streamable HTTP at ``--url``, authenticated with
``--api-key``): they create the task or workflow, then call ``*_wait``, drawing the progress
notifications it sends as a progress line on stderr. The final object is printed as JSON on
stdout; the exit status is 0 when it completed and 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

WAIT_SECONDS = 600.0


class ProgressLine:
    """A one-line progress display; redrawn in place on a terminal, one line per change elsewhere."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.label = label
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.last = ""

    async def update(self, progress: float, total: float | None, message: str | None) -> None:
        if total:
            filled = int(self.width * min(progress / total, 1.0))
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {progress:g}/{total:g}"
        else:
            bar = f"{progress:5.1f}s"
        line = f"{self.label} {bar} {message or ''}".rstrip()
        if line == self.last:
            return
        self.last = line
        self.stream.write(f"\r{line}\033[K" if self.tty else f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def add_parsers(sub: Any) -> None:
    tasks = sub.add_parser("tasks", help="run tasks on a gateway").add_subparsers(dest="tasks_command", required=True)
    task = tasks.add_parser("run", help="run a command as a task and wait for it, showing progress")
    task.add_argument("--name", required=True)
    task.add_argument("--image", default="alpine:3")
    task.add_argument("--timeout")
    task.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    task.add_argument("command_args", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                      help="the command and its arguments, after --")
    workflows = sub.add_parser("workflows", help="run workflows on a gateway").add_subparsers(
        dest="workflows_command", required=True)
    workflow = workflows.add_parser("run", help="run a workflow from a JSON file and wait, showing progress")
    workflow.add_argument("file", type=Path)
    for parser in (task, workflow):
        parser.add_argument("--url", default=os.environ.get("KUBEGATE_URL", "http://127.0.0.1:8080"))
        parser.add_argument("--api-key", default=os.environ.get("KUBEGATE_API_KEY"))


def _body(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if args.command == "workflows":
        try:
            return "workflows", json.loads(args.file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"kubegate: cannot read {args.file}: {exc}") from None
    command = args.command_args[1:] if args.command_args[:1] == ["--"] else args.command_args
    if not command:
        raise SystemExit("kubegate: give the command after --, e.g. kubegate tasks run --name x -- echo hi")
    env = dict(item.split("=", 1) for item in args.env if "=" in item)
    body: dict[str, Any] = {"name": args.name, "image": args.image, "command": command, "env": env}
    if args.timeout:
        body["timeout"] = args.timeout
    return "tasks", body


async def run(args: argparse.Namespace) -> int:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    if not args.api_key:
        raise SystemExit("kubegate: pass --api-key or set KUBEGATE_API_KEY")
    kind, body = _body(args)
    singular = kind[:-1]
    headers = {"Authorization": f"Bearer {args.api_key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=WAIT_SECONDS + 30) as http:
        transport = streamable_http_client(f"{args.url.rstrip('/')}/api/mcp", http_client=http)
        async with Client(transport, mode="legacy") as client:
            created = await client.call_tool(f"{kind}_create", body)
            if created.is_error or not created.structured_content:
                print(json.dumps(created.structured_content), file=sys.stderr)
                return 2
            object_id = created.structured_content[singular]["id"]
            progress = ProgressLine(f"{singular} {object_id}")
            try:
                wait = {f"{singular}Id": object_id, "timeoutSeconds": WAIT_SECONDS}
                done = await client.call_tool(f"{kind}_wait", wait, progress_callback=progress.update)
            finally:
                progress.close()
    result = (done.structured_content or {}).get(singular, {})
    print(json.dumps(result, indent=2))
    return 0 if result.get("status") == "completed" else 1
