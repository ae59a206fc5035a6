"""Wire conventions: camelCase JSON, unknown fields refused, ``None`` fields left out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    # defer_build: a model's validator is made on its first use, not at import (~0.1 s of every start).
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", defer_build=True)


class NoArgs(Wire):
    """A capability that takes no arguments."""
