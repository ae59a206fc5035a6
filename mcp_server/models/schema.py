"""Input schemas as agents read them: every tool's schema is in the model's context on every turn.

Left out of what tools/list advertises, because none of it helps an agent write a call, yet
together it was a quarter of the tool surface (``bench/tool_tokens.py``):

- the ``title`` pydantic repeats for each field (its name, capitalised);
- the ``{"type": "null"}`` branch and ``default: null`` of optional fields (leaving a field out
  already means "not given");
- size caps (``maxLength``, ``maxItems``, ``maxProperties``), which sane input never meets, and
  the ``minLength``/``minItems`` of 1 that only refuse an empty value;
- patterns longer than a few characters (image references, DNS labels, cursors, durations,
  env names): the field's description says the rule in words, and a 400 names the field and
  the rule it broke;
- ``examples`` (descriptions carry a short ``e.g.`` where one helps), ``additionalProperties:
  false`` (an unknown field is refused with a 400 that names it) and the model's own docstring.

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
_MINIMA = frozenset({"minLength", "minItems"})
_LONG_PATTERN = 8


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
        json_schema.pop("description", None)
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
    pruned = {key: _prune(value) for key, value in node.items() if not _dropped(key, value)}
    if node.get("type") == "object" and pruned.get("propertyNames") == {}:  # it held only a pattern
        del pruned["propertyNames"]
    return pruned


def _dropped(key: str, value: Any) -> bool:
    if isinstance(value, dict):
        return False  # a property that happens to be named like a keyword
    return ((key in _CAPS) or (key in _MINIMA and value == 1) or key == "examples"
            or (key == "additionalProperties" and value is False)
            or (key == "pattern" and isinstance(value, str) and len(value) > _LONG_PATTERN))


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema (camelCase) without titles or null branches of optional fields."""
    return model.model_json_schema(by_alias=True, schema_generator=LeanJsonSchema)
