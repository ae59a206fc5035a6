"""Input schemas as agents read them: every tool's schema is in the model's context on every turn.

Left out of what tools/list advertises, because none of it helps an agent write a call, yet
together it was a quarter of the tool surface (``bench/tool_tokens.py``):

- the ``title`` pydantic repeats for each field (its name, capitalised);
- the ``{"type": "null"}`` branch and ``default: null`` of optional fields (leaving a field out
  already means "not given");
- size caps (``maxLength``, ``maxItems``, ``maxProperties``), which sane input never meets;
- patterns longer than 64 characters (the image-reference grammar), which no agent reads.

Validation is unchanged: the models still enforce every rule and a 400 names the field that
broke one; the OpenAPI document (``/openapi.json``) keeps the full schemas.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

_NULL = {"type": "null"}
_CAPS = frozenset({"maxLength", "maxItems", "maxProperties"})
_LONG_PATTERN = 64


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
        pruned: JsonSchemaValue = _prune(json_schema)
        return pruned


def _prune(node: Any) -> Any:
    # Keywords have scalar values; a property that happens to be called "maxLength" has a schema (a dict).
    if isinstance(node, list):
        return [_prune(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: _prune(value) for key, value in node.items()
        if not (key in _CAPS and not isinstance(value, dict))
        and not (key == "pattern" and isinstance(value, str) and len(value) > _LONG_PATTERN)
    }


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema (camelCase) without titles or null branches of optional fields."""
    return model.model_json_schema(by_alias=True, schema_generator=LeanJsonSchema)
