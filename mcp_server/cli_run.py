"""The client commands: ``kubegate tasks run|get|logs|delete`` and ``kubegate workflows run|get``.

These are MCP clients of a running gateway (see ``cli_client`` for where it is and which key).
``tasks run`` prints the task's log lines on stdout as they arrive and exits with the task's own
exit code; ``workflows run`` draws a progress line on stderr, names the step that failed and
prints the step table. ``--json`` prints the final object as JSON on stdout instead.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from mcp_server.cli_client import ClientError, add_client_options, connect, plain, resolve
from mcp_server.cli_show import ProgressLine, exit_status, show_task, show_workflow, step_failure

ACTIVE = ("pending", "running")
WAIT_SECONDS = 600.0


def add_parsers(sub: Any) -> None:
    tasks = sub.add_parser("tasks", help="run and inspect tasks on a gateway").add_subparsers(
        dest="tasks_command", required=True, metavar="ACTION")
    task = tasks.add_parser("run", help="run a command as a task, print its logs as they come, exit with its code")
    task.add_argument("--name", help="a DNS-1123 label (default: from the command)")
    task.add_argument("--image", default="alpine:3", help="container image (recorded locally; default alpine:3)")
    task.add_argument("--timeout", help="a Go duration such as 30s or 10m (default: the gateway's)")
    task.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="an env var (repeatable)")
    task.add_argument("--size", choices=("small", "medium", "large"), help="resources (default small)")
    task.add_argument("--network", action="store_true", help="allow network access")
    task.add_argument("command_args", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                      help="the command and its arguments, after --")
    parsers = [task]
    for action, text in (("get", "show a task"), ("logs", "print a task's logs"),
                         ("delete", "stop a task if running, then delete it")):
        parser = tasks.add_parser(action, help=text)
        parser.add_argument("object_id", metavar="TASK_ID", help="the task's id (task_...)")
        parsers.append(parser)
    workflows = sub.add_parser("workflows", help="run and inspect workflows on a gateway").add_subparsers(
        dest="workflows_command", required=True, metavar="ACTION")
    workflow = workflows.add_parser("run", help="run a workflow from a JSON or YAML file and follow it")
    workflow.add_argument("file", type=Path, metavar="FILE", help="the workflow, as JSON or YAML")
    get = workflows.add_parser("get", help="show a workflow and its step table")
    get.add_argument("object_id", metavar="WORKFLOW_ID", help="the workflow's id (workflow_...)")
    parsers += [workflow, get]
    for parser in parsers:
        add_client_options(parser)
        if parser.prog.split()[-1] not in ("logs", "delete"):
            parser.add_argument("--json", action="store_true", help="print the object as JSON on stdout")


def read_workflow(path: Path) -> dict[str, Any]:
    """A workflow body from JSON or YAML (JSON is YAML, but its errors read better from the JSON parser)."""
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror}") from None
    try:
        body = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ClientError(f"{path} is neither valid JSON nor YAML: {exc}".splitlines()[0]) from None
    if not isinstance(body, dict):
        raise ClientError(f"{path} must hold one object with name and steps")
    return body


def task_body(args: argparse.Namespace) -> dict[str, Any]:
    command = args.command_args[1:] if args.command_args[:1] == ["--"] else args.command_args
    if not command:
        raise ClientError("give the command after --, e.g. kubegate tasks run -- echo hi")
    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            raise ClientError(f"--env {item!r}: write KEY=VALUE")
        env[key] = value
    name = args.name or re.sub(r"[^a-z0-9-]+", "-", Path(command[0]).name.lower()).strip("-")[:63] or "task"
    body: dict[str, Any] = {"name": name, "image": args.image, "command": command, "env": env}
    for field in ("timeout", "size"):
        if getattr(args, field):
            body[field] = getattr(args, field)
    if args.network:
        body["network"] = True
    return body


async def run(args: argparse.Namespace) -> int:
    """Run the client command in ``args``; a failure is one line on stderr and exit status 2."""
    url = ""
    try:
        url, key = resolve(args)
        action = args.tasks_command if args.command == "tasks" else args.workflows_command
        handler = _HANDLERS[(args.command, action)]
        return await handler(args, url, key)
    except ClientError as exc:
        print(f"kubegate: {exc}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001  (a person gets one line, not a traceback)
        print(f"kubegate: {plain(exc, url)}", file=sys.stderr)
    return 2


async def _call(client: Any, tool: str, arguments: dict[str, Any], **options: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments, **options)
    body: dict[str, Any] = result.structured_content or {}
    if result.is_error:
        raise ClientError(body.get("message") or f"{tool} failed")
    return body


async def _task_run(args: argparse.Namespace, url: str, key: str) -> int:
    body = task_body(args)
    follower = LogFollower(sys.stderr if args.json else sys.stdout)
    async with connect(url, key, logging_callback=follower.on_log, log_level="info") as client:
        task = (await _call(client, "tasks_create", body))["task"]
        print(f"task {task['id']} ({task['name']}) started on {url}", file=sys.stderr, flush=True)
        while True:  # at least once, for the logs, even when the task ended as it was created
            follower.new_call()
            task = (await _call(client, "tasks_wait", {"taskId": task["id"], "timeoutSeconds": WAIT_SECONDS}))["task"]
            if task["status"] not in ACTIVE:
                break
    follower.finish(task.get("logs") or "")
    if args.json:
        print(json.dumps(task, indent=2))
    code = exit_status(task)
    detail = f"exit code {task.get('exitCode')}" if task.get("exitCode") is not None else task.get("reason", "")
    print(f"task {task['id']} {task['status']} ({detail})", file=sys.stderr)
    return code


class LogFollower:
    """Prints each new piece of a task's log once, across successive ``tasks_wait`` calls.

    Every call sends the log from the start of its tail window, so what was printed already is skipped.
    """

    def __init__(self, out: Any) -> None:
        self.out = out
        self.printed = 0
        self.seen_this_call = 0
        self.ended_with_newline = True

    def new_call(self) -> None:
        self.seen_this_call = 0

    async def on_log(self, params: Any) -> None:
        chunk = str(params.data)
        start, self.seen_this_call = self.seen_this_call, self.seen_this_call + len(chunk)
        fresh = chunk[max(0, self.printed - start):]
        if fresh:
            self.out.write(fresh)
            self.out.flush()
            self.printed += len(fresh)
            self.ended_with_newline = fresh.endswith("\n")

    def finish(self, logs: str) -> None:
        """Print what of the final log never came as a notification (one may land after the answer)."""
        if len(logs) > self.printed:
            rest = logs[self.printed:]
            self.out.write(rest)
            self.ended_with_newline = rest.endswith("\n")
        if not self.ended_with_newline:
            self.out.write("\n")
        self.out.flush()


async def _task_get(args: argparse.Namespace, url: str, key: str) -> int:
    async with connect(url, key) as client:
        task = (await _call(client, "tasks_get", {"taskId": args.object_id}))["task"]
    print(json.dumps(task, indent=2) if args.json else show_task(task))
    return 0


async def _task_logs(args: argparse.Namespace, url: str, key: str) -> int:
    async with connect(url, key) as client:
        task = (await _call(client, "tasks_get", {"taskId": args.object_id}))["task"]
    sys.stdout.write(task.get("logs") or "")
    return 0


async def _task_delete(args: argparse.Namespace, url: str, key: str) -> int:
    async with connect(url, key) as client:
        task = (await _call(client, "tasks_delete", {"taskId": args.object_id}))["task"]
    cancelled = " (it was running: cancelled)" if task.get("reason") == "cancelled" else ""
    print(f"deleted task {task['id']} ({task['name']}){cancelled}")
    return 0


async def _workflow_run(args: argparse.Namespace, url: str, key: str) -> int:
    body = read_workflow(args.file)
    async with connect(url, key) as client:
        workflow = (await _call(client, "workflows_create", body))["workflow"]
        progress = ProgressLine(f"workflow {workflow['id']}")
        try:
            while workflow["status"] in ACTIVE:
                workflow = (await _call(client, "workflows_wait", {"workflowId": workflow["id"],
                                                                   "timeoutSeconds": WAIT_SECONDS},
                                        progress_callback=progress.update))["workflow"]
        finally:
            progress.close()
    failure = step_failure(workflow)
    if failure:
        print(f"workflow {workflow['id']} failed: {failure}", file=sys.stderr)
    print(json.dumps(workflow, indent=2) if args.json else show_workflow(workflow))
    return 0 if workflow["status"] == "completed" else 1


async def _workflow_get(args: argparse.Namespace, url: str, key: str) -> int:
    async with connect(url, key) as client:
        workflow = (await _call(client, "workflows_get", {"workflowId": args.object_id}))["workflow"]
    print(json.dumps(workflow, indent=2) if args.json else show_workflow(workflow))
    return 0


_HANDLERS = {
    ("tasks", "run"): _task_run, ("tasks", "get"): _task_get, ("tasks", "logs"): _task_logs,
    ("tasks", "delete"): _task_delete, ("workflows", "run"): _workflow_run, ("workflows", "get"): _workflow_get,
}
