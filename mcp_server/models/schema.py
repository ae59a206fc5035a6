"""Input schemas as agents read them: every tool's schema is in the model's context on every turn.

Pydantic's schemas repeat each field's name as a ``title`` and spell an optional field as
``anyOf: [X, {"type": "null"}]`` with ``default: null``. Neither tells an agent anything it
could act on (leaving a field out already means "not given"), yet together they cost about a
tenth of the tool surface (``bench/tool_tokens.py``). Validation is unchanged: ``null`` is still
accepted where the model accepts it; only the advertised schema is shorter.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

_NULL = {"type": "null"}


class LeanJsonSchema(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if "default" in json_schema and json_schema["default"] is None:
            del json_schema["default"]
            options = json_schema.get("anyOf")
            if isinstance(options, list) and len(options) == 2 and _NULL in options:
                del json_schema["anyOf"]
                json_schema.update(next(o for o in options if o != _NULL))
        return json_schema

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        json_schema = super().generate(schema, mode)
        json_schema.pop("title", None)
        for definition in json_schema.get("$defs", {}).values():
            definition.pop("title", None)
        return json_schema


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema (camelCase) without titles or null branches of optional fields."""
    return model.model_json_schema(by_alias=True, schema_generator=LeanJsonSchema)
