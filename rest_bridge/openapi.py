"""The OpenAPI 3.1 document, generated from the route table and the registry's models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from mcp_server import __version__
from mcp_server.registry import Registry
from rest_bridge.routes import ROUTES, RestRoute

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "Bad request or validation error (the message names the field)",
    "401": "Missing, invalid, expired or revoked credentials",
    "403": "The credential lacks the scope this endpoint needs",
    "404": "No such resource for this user",
    "409": "Conflicts with the resource's state (a name in use, a sandbox that is not running)",
    "413": "Request body larger than 1 MiB",
    "429": "Rate limit exceeded",
    "500": "Internal error",
    "503": "The runtime cannot do this now (cluster unreachable, or sandboxes not supported by it)",
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message", "status"],
    "properties": {
        "error": {"type": "string", "examples": ["resource_not_found"]},
        "message": {"type": "string", "examples": ["Task not found"]},
        "status": {"type": "integer", "examples": [404]},
    },
}


def _error_response(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}}}


def _parameters(route: RestRoute, schema: dict[str, Any]) -> list[dict[str, Any]]:
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    params = [
        {"name": name, "in": "path", "required": True, "schema": props.get(name, {"type": "string"})}
        for name in route.path_params
    ]
    if route.source == "query":
        params += [
            {"name": name, "in": "query", "required": name in required, "schema": prop}
            for name, prop in props.items() if name not in route.path_params
        ]
    return params


def _body_schema(route: RestRoute, ref: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The model's schema, less the fields the path carries (``/api/sandboxes/{sandboxId}/exec``)."""
    if not route.path_params:
        return ref
    props = {k: v for k, v in schema.get("properties", {}).items() if k not in route.path_params}
    required = [k for k in schema.get("required", []) if k not in route.path_params]
    return {**schema, "properties": props, "required": required}


def _operation(route: RestRoute, registry: Registry, defs: dict[str, Any], refs: dict[Any, Any]) -> dict[str, Any]:
    capability = registry.get(route.tool)
    input_ref = refs[(capability.input_model, "validation")]
    output_ref = refs[(capability.output_model, "serialization")]
    input_schema = defs[input_ref["$ref"].rsplit("/", 1)[-1]]
    operation: dict[str, Any] = {
        "operationId": capability.name,
        "summary": capability.title,
        "description": capability.description,
        "tags": [route.path.split("/")[2]],
        "parameters": _parameters(route, input_schema),
        "responses": {
            str(route.status): {
                "description": "Success",
                "content": {"application/json": {"schema": output_ref}},
            },
            **{code: _error_response(text) for code, text in _ERRORS.items()},
        },
        "x-mcp-tool": capability.name,
        "x-required-scope": capability.scope,
    }
    if route.source == "query" and "cursor" in input_schema.get("properties", {}):
        # A list answers nextCursor; following it is how a client (or a stateful fuzzer) pages.
        operation["responses"][str(route.status)]["links"] = {"nextPage": {
            "operationId": capability.name, "parameters": {"cursor": "$response.body#/nextCursor"}}}
    if route.source == "body":
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _body_schema(route, input_ref, input_schema)}},
        }
    return operation


def build_openapi(registry: Registry, public_url: str) -> dict[str, Any]:
    served = [r for r in ROUTES if r.tool in registry]  # KUBEGATE_TOOLSETS may leave some out
    used = [registry.get(r.tool) for r in served]
    models: list[tuple[type[BaseModel], Any]] = []
    for cap in used:
        for pair in ((cap.input_model, "validation"), (cap.output_model, "serialization")):
            if pair not in models:
                models.append(pair)
    refs, top = models_json_schema(models, by_alias=True, ref_template=_REF)
    defs: dict[str, Any] = top.get("$defs", {})
    defs["Error"] = ERROR_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for route in served:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, registry, defs, dict(refs))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kubegate API",
            "version": __version__,
            "description": "REST bridge to the kubegate capabilities; the same tools are served over MCP at /api/mcp.",
        },
        "servers": [{"url": public_url}],
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer sk_live_..."},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
        },
        "security": [{"apiKey": []}, {"session": []}],
    }
