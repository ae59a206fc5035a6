"""Tokens an agent reads for kubegate's tools on every turn, against the 6,000-token budget.

Agents put every tool definition (name, description, input schema) in the model's context on
every turn, so the tool surface is a cost paid per turn, per agent. This lists the tools over a
real MCP stdio connection to ``kubegate stdio``, as the local operator (an administrator, who is
offered every tool: others see fewer), and counts each definition serialised as JSON. Beside it,
as the baseline, the same tools with pydantic's full schemas (what tools/list sent before
``mcp_server/models/schema.py``).

Counting uses the o200k_base BPE through ``bpe-openai``, which ships its vocabularies inside
the wheel and so works offline (``tiktoken`` downloads its vocabulary on first use, which this
machine cannot). Claude's own tokenizer is not public: o200k is a stand-in, and chars/4 (the
usual rule of thumb) is printed beside it. Without ``bpe-openai`` the count falls back to
chars/4 and says so.

    python bench/tool_tokens.py                       # every toolset
    python bench/tool_tokens.py --toolsets tasks,workflows
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 6000
"""Tokens the whole tool surface may cost (the project brief)."""


def _tokenizer() -> tuple[str, Callable[[str], int]]:
    try:
        import bpe_openai
    except ImportError:
        return "chars/4 (approximation: bpe-openai is not installed)", lambda text: math.ceil(len(text) / 4)
    encoding = bpe_openai.get_encoding("o200k_base")
    return "o200k_base (bpe-openai)", lambda text: len(encoding.encode(text))


TOKENIZER, count_tokens = _tokenizer()


def definition_text(tool: dict[str, Any]) -> str:
    """What an agent reads of one tool: its name, description and input schema, as JSON."""
    return json.dumps({"name": tool["name"], "description": tool.get("description") or "",
                       "input_schema": tool["inputSchema"]})


async def list_tools(env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """tools/list from a fresh ``kubegate stdio`` (its own empty data dir), as the local operator."""
    import os

    with tempfile.TemporaryDirectory() as data_dir:
        server_env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEGATE_")}
        server_env.update({"KUBEGATE_DATA_DIR": data_dir, **(env or {})})
        params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server.cli", "stdio"],
                                       env=server_env, cwd=str(ROOT))
        async with Client(params, mode="legacy") as client:
            tools = (await client.list_tools()).tools
    return [tool.model_dump(by_alias=True, exclude_none=True) for tool in tools]


def surface(tools: list[dict[str, Any]]) -> dict[str, int]:
    """Tokens per tool, by name."""
    return {tool["name"]: count_tokens(definition_text(tool)) for tool in tools}


def full_surface(names: list[str]) -> dict[str, int]:
    """The baseline: the same definitions with pydantic's own input schemas (titles, null branches, caps)."""
    sys.path.insert(0, str(ROOT))
    import mcp_server.capabilities  # noqa: F401  (fills the registry)
    from mcp_server.registry import registry

    out = {}
    for name in names:
        capability = registry.get(name)
        schema = capability.input_model.model_json_schema(by_alias=True)
        out[name] = count_tokens(definition_text({"name": name, "description": capability.description,
                                                  "inputSchema": schema}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toolsets", default="", help="KUBEGATE_TOOLSETS for the listed server (default: all)")
    args = parser.parse_args()
    tools = asyncio.run(list_tools({"KUBEGATE_TOOLSETS": args.toolsets} if args.toolsets else None))
    tokens = surface(tools)
    full = full_surface(list(tokens))
    chars = {tool["name"]: len(definition_text(tool)) for tool in tools}
    print(f"tokenizer: {TOKENIZER}")
    print(f"{'tool':<22}{'tokens':>8}{'chars/4':>9}{'full schema':>13}")
    for name, n in tokens.items():
        print(f"{name:<22}{n:>8}{math.ceil(chars[name] / 4):>9}{full[name]:>13}")
    total, baseline = sum(tokens.values()), sum(full.values())
    label = f"total ({len(tools)} tools)"
    print(f"{label:<22}{total:>8}{math.ceil(sum(chars.values()) / 4):>9}{baseline:>13}")
    print(f"lean / full schemas: {total / baseline:.2f}x")
    print(f"budget {BUDGET}: {total / BUDGET:.2f}x used, {BUDGET - total} tokens left")


if __name__ == "__main__":
    main()
