"""Run a workflow through kubegate with the MCP Python SDK's client, then print its steps.

    KUBEGATE_URL=http://127.0.0.1:8080 KUBEGATE_API_KEY=sk_live_... python examples/run_workflow.py [FILE]

FILE defaults to examples/build-test-deploy.json. The script connects over Streamable HTTP with
an API key, calls ``workflows_create``, then ``workflows_wait`` (which reports progress as steps
complete) until the workflow has finished, and exits 0 only when it completed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

DEFAULT = Path(__file__).with_name("build-test-deploy.json")


async def on_progress(progress: float, total: float | None, message: str | None) -> None:
    print(f"  progress: {message or progress}", file=sys.stderr)


async def run(url: str, key: str, workflow: dict[str, Any]) -> dict[str, Any]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=660) as http:
        async with Client(streamable_http_client(f"{url}/api/mcp", http_client=http)) as client:
            created = await client.call_tool("workflows_create", workflow)
            if created.is_error:
                raise SystemExit(f"refused: {created.structured_content}")
            current: dict[str, Any] = (created.structured_content or {})["workflow"]
            print(f"started {current['id']}", file=sys.stderr)
            while current["status"] in ("pending", "running"):
                waited = await client.call_tool("workflows_wait", {"workflowId": current["id"], "timeoutSeconds": 600},
                                                progress_callback=on_progress)
                current = (waited.structured_content or {})["workflow"]
            return current


def main() -> int:
    url = os.environ.get("KUBEGATE_URL", "http://127.0.0.1:8080").rstrip("/")
    key = os.environ.get("KUBEGATE_API_KEY") or sys.exit("set KUBEGATE_API_KEY (kubegate keys create --name me)")
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    workflow = asyncio.run(run(url, key, json.loads(path.read_text())))
    print(f"workflow {workflow['id']} ({workflow['name']}): {workflow['status']}")
    for step in workflow["steps"]:
        print(f"  {step['name']:<10} {step['status']:<10} exit={step.get('exitCode')} output={step.get('output')!r}")
    return 0 if workflow["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
