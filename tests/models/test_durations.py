"""Durations: the schema's pattern and the parser accept exactly the same strings, and format round-trips."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mcp_server.models import durations
from mcp_server.models.tasks import TaskCreate

SCHEMA = re.compile(durations.PATTERN)
"""Compiled as a JSON Schema validator would; fullmatch keeps ``$`` from matching before a newline."""

near_misses = st.text(alphabet="0123456789hmsun.µ ٣\n-+", max_size=16)


@given(st.from_regex(durations.PATTERN, fullmatch=True))
def test_every_string_the_schema_accepts_parses(text: str) -> None:
    assert len(text) <= durations.MAX_LENGTH
    assert durations.parse(text) > 0


@given(st.one_of(near_misses, st.text(max_size=12)))
@example("1.5h")
@example("10m0s")
@example("500ms")
@example("1s\n")
@example("٣s")
@example("0h0m0s")
def test_every_string_the_parser_accepts_matches_the_schema(text: str) -> None:
    try:
        durations.parse(text)
    except ValueError:
        assert SCHEMA.fullmatch(text) is None or len(text) > durations.MAX_LENGTH
    else:
        assert SCHEMA.fullmatch(text) is not None


@given(st.from_regex(durations.PATTERN, fullmatch=True))
def test_format_parses_back_to_the_same_value(text: str) -> None:
    seconds = durations.parse(text)
    shown = durations.format(seconds)
    assert durations.parse(shown) == seconds
    assert SCHEMA.fullmatch(shown)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("10m", 600), ("1h30m", 5400), ("90m", 5400),
                                               ("10m0s", 600), ("1h0m5s", 3605)])
def test_go_style_whole_durations_parse(text: str, seconds: int) -> None:
    assert durations.parse(text) == seconds


@pytest.mark.parametrize("text", ["500ms", "1.5h", "0.5s", "1500us"])
def test_fractions_and_sub_second_units_are_refused_saying_so(text: str) -> None:
    with pytest.raises(ValueError, match="below a second"):
        durations.parse(text)


@pytest.mark.parametrize("text", ["", "0s", "٣s", "1s\n", " 1s", "1m1h", "1d", "s"])
def test_other_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        durations.parse(text)


def test_the_model_holds_seconds_and_shows_the_same_pattern() -> None:
    task = TaskCreate.model_validate({"name": "a", "image": "alpine", "command": ["true"], "timeout": "1h30m"})
    assert task.timeout == 5400
    schema = TaskCreate.model_json_schema(by_alias=True)["properties"]["timeout"]["anyOf"][0]
    assert schema["pattern"] == durations.PATTERN


def test_a_stored_fraction_is_shown_exactly_never_as_zero() -> None:
    assert durations.shown(0.5) == "500ms" and durations.shown(61.25) == "1m1s250ms" and durations.shown(90) == "1m30s"
