"""Workflow topology: the checks a step graph must pass, its order, and output substitution.

Pure functions over names, so the scheduler and the tests share them. Every refusal is a
``ValidationFailed`` whose message names the steps involved; a cycle is spelled out with
``->`` read as "depends on" (``a -> b -> a``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from mcp_server.errors import ValidationFailed
from mcp_server.models.workflows import OUTPUT_REF, StepCreate

Graph = Mapping[str, Sequence[str]]
"""Each step's name -> the names it depends on."""


def validate(steps: Sequence[StepCreate], max_steps: int) -> list[str]:
    """Refuse a malformed workflow; otherwise the step names in an order where dependencies come first."""
    if not steps:
        raise ValidationFailed("a workflow needs at least one step", field="steps")
    if len(steps) > max_steps:
        raise ValidationFailed(f"a workflow has at most {max_steps} steps, this one has {len(steps)}", field="steps")
    duplicates = sorted(name for name, n in Counter(s.name for s in steps).items() if n > 1)
    if duplicates:
        raise ValidationFailed(f"duplicate step name(s): {', '.join(duplicates)}", field="steps")
    graph = {s.name: list(dict.fromkeys(s.depends_on)) for s in steps}
    for name, deps in graph.items():
        unknown = [d for d in deps if d not in graph]
        if unknown:
            raise ValidationFailed(f"unknown step(s) {', '.join(unknown)}", field=f"steps.{name}.dependsOn")
    order = topological_order(graph)
    lineage = ancestors(graph, order)
    for step in steps:
        strangers = sorted(references(step) - lineage[step.name])
        if strangers:
            raise ValidationFailed(
                f"refers to the output of {', '.join(strangers)}, which is not among the steps it depends on"
                " (directly or through others)", field=f"steps.{step.name}",
            )
    return order


def topological_order(graph: Graph) -> list[str]:
    """Kahn's order, stable in the given order of steps; a cycle is refused and named."""
    waiting = {name: set(deps) for name, deps in graph.items()}
    order: list[str] = []
    while True:
        ready = [name for name, deps in waiting.items() if not deps]
        if not ready:
            break
        for name in ready:
            del waiting[name]
            order.append(name)
        for deps in waiting.values():
            deps.difference_update(ready)
    if waiting:
        raise ValidationFailed(f"dependency cycle: {' -> '.join(_cycle(waiting))}", field="steps")
    return order


def _cycle(blocked: Mapping[str, set[str]]) -> list[str]:
    # Every blocked step waits on another blocked one, so following any such edge must loop.
    path = [next(iter(blocked))]
    seen = {path[0]: 0}
    while True:
        nxt = min(blocked[path[-1]])
        if nxt in seen:
            return [*path[seen[nxt]:], nxt]
        seen[nxt] = len(path)
        path.append(nxt)


def ancestors(graph: Graph, order: Sequence[str]) -> dict[str, set[str]]:
    """Each step's transitive dependencies; ``order`` must put dependencies first."""
    found: dict[str, set[str]] = {}
    for name in order:
        found[name] = set(graph[name]).union(*(found[d] for d in graph[name]))
    return found


def references(step: StepCreate) -> set[str]:
    """Names of the steps whose output ``step`` uses in its image, command or env."""
    texts: Iterable[str] = (step.image, *step.command, *step.env.values())
    return {match for text in texts for match in OUTPUT_REF.findall(text)}


def output_variable(step: str) -> str:
    """The env variable holding ``step``'s output in the steps after it: ``build-app`` -> ``KUBEGATE_OUTPUT_BUILD_APP``.

    Step names are DNS labels (lowercase, digits, ``-``), so the mapping is one to one.
    """
    return "KUBEGATE_OUTPUT_" + step.upper().replace("-", "_")


def rendered_size(texts: Iterable[str], outputs: Mapping[str, str | None]) -> int:
    """Bytes of ``texts`` once rendered, counted without rendering them (a template may repeat an output
    thousands of times; its expansion must be refused before it is built)."""
    total = 0
    sizes = {name: len((value or "").encode()) for name, value in outputs.items()}
    for text in texts:
        total += len(text.encode())
        for match in OUTPUT_REF.finditer(text):
            total += sizes.get(match[1], 0) - len(match[0].encode())
    return total


def render(text: str, outputs: Mapping[str, str | None]) -> str:
    """``text`` with each ``{{steps.NAME.output}}`` replaced by that step's output ("" when it gave none)."""
    return OUTPUT_REF.sub(lambda m: outputs.get(m[1]) or "", text)
