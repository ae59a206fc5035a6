"""The whole tool surface an agent reads each turn (name, description, input schema) fits the budget.

A size assertion, not a timing one: tools/list over a real ``kubegate stdio``, counted as
``bench/tool_tokens.py`` counts it, as the operator (an administrator, offered every tool).
"""

from __future__ import annotations

from bench.tool_tokens import BUDGET, TOKENIZER, list_tools, surface


async def test_every_tool_definition_together_stays_under_the_budget() -> None:
    tokens = surface(await list_tools())
    assert "templates_create" in tokens and "tasks_create" in tokens, "the listing is the whole surface"
    assert sum(tokens.values()) < BUDGET, f"{sum(tokens.values())} tokens ({TOKENIZER}): {tokens}"


async def test_toolsets_shrink_what_agents_read() -> None:
    everything = surface(await list_tools())
    tasks_only = surface(await list_tools({"KUBEGATE_TOOLSETS": "tasks"}))
    assert set(tasks_only) == {name for name in everything if name.startswith("tasks_")}
    assert sum(tasks_only.values()) < sum(everything.values()) / 2
