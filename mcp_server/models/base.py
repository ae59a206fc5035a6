"""Wire conventions: camelCase JSON, unknown fields refused, ``None`` fields left out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class NoArgs(Wire):
    """A capability that takes no arguments."""
