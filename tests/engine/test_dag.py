"""The step graph checks, order and output substitution, without a gateway."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_server.engine import dag
from mcp_server.errors import ValidationFailed
from mcp_server.models.workflows import StepCreate


def steps(*specs: tuple[str, list[str]], **commands: str) -> list[StepCreate]:
    return [StepCreate(name=n, image="alpine", command=["sh", "-c", commands.get(n, "true")], depends_on=d)
            for n, d in specs]


def refused(items: list[StepCreate], max_steps: int = 100) -> str:
    with pytest.raises(ValidationFailed) as caught:
        dag.validate(items, max_steps)
    return caught.value.message


def test_order_puts_dependencies_first_and_keeps_the_given_order_otherwise() -> None:
    order = dag.validate(steps(("d", ["b", "c"]), ("b", ["a"]), ("c", ["a"]), ("a", [])), 100)
    assert order == ["a", "b", "c", "d"]


def test_cycle_is_named_along_its_edges() -> None:
    assert "dependency cycle: a -> b -> c -> a" in refused(steps(("a", ["b"]), ("b", ["c"]), ("c", ["a"]), ("x", [])))
    assert "x -> x" in refused(steps(("x", ["x"])))


@pytest.mark.parametrize(("items", "words"), [
    ([], ["at least one step"]),
    ([("a", []), ("b", []), ("a", []), ("b", [])], ["duplicate step name(s): a, b"]),
    ([("a", ["nope"])], ["steps.a.dependsOn", "nope"]),
])
def test_malformed_graphs_are_refused_naming_the_steps(items: list[Any], words: list[str]) -> None:
    message = refused(steps(*items))
    assert all(word in message for word in words), message


def test_too_many_steps_are_refused() -> None:
    assert "at most 3 steps, this one has 4" in refused(steps(*((f"s{i}", []) for i in range(4))), max_steps=3)


def test_outputs_may_come_only_from_ancestors() -> None:
    chain = steps(("a", []), ("b", ["a"]), ("c", ["b"]), ("d", []), c="echo {{steps.a.output}}")
    dag.validate(chain, 100)  # a is c's ancestor through b
    message = refused(steps(("a", []), ("b", []), b="echo {{ steps.a.output }}"))
    assert "steps.b" in message and "output of a" in message


def test_render_replaces_every_reference_and_blanks_missing_outputs() -> None:
    outputs = {"a": "1", "b": None}
    text = "{{steps.a.output}}-{{ steps.b.output }}-{{steps.a.output}}-{{other}}"
    assert dag.render(text, outputs) == "1--1-{{other}}"


def test_the_rendered_size_is_counted_without_rendering_and_matches_the_render() -> None:
    from mcp_server.engine.dag import output_variable, render, rendered_size

    outputs = {"build": "é" * 100, "empty": None}
    texts = ["x{{steps.build.output}}y" * 3, "{{ steps.empty.output }}", "plain"]
    assert rendered_size(texts, outputs) == sum(len(render(t, outputs).encode()) for t in texts)
    assert output_variable("build-app") == "KUBEGATE_OUTPUT_BUILD_APP"
