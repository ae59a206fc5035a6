"""An OpenAPI description of the doors that are not REST (the MCP endpoint, ``/auth``), for fuzzing.

The public ``/openapi.json`` documents the REST bridge; schemathesis reads this one to fuzz the
shorthand and JSON-RPC requests on ``/api/mcp`` and the ``/auth`` routes, and checks that no
answer is a 5xx and every error has the documented shape (ours or JSON-RPC's).
"""

from __future__ import annotations

from typing import Any

import mcp_server.capabilities  # noqa: F401  (fills the registry)
from mcp_server.registry import registry
from rest_bridge.openapi import ERROR_SCHEMA

JSON_RPC_ERROR = {"type": "object", "required": ["jsonrpc", "error"],
                  "properties": {"jsonrpc": {"const": "2.0"},
                                 "error": {"type": "object", "required": ["code", "message"]}}}
SSE = {"schema": {"type": "object", "required": ["data"]}}  # each event
ERRORS = {"anyOf": [{"$ref": "#/components/schemas/Error"}, JSON_RPC_ERROR]}


def _answers(*codes: str, ok: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {code: {"description": code, "content": {"application/json": {"schema": ERRORS}}}
                           for code in codes}
    return {**(ok or {}), **out}


def _shorthand_methods() -> list[str]:
    names = []
    for capability in registry.list():
        resource, _, action = capability.name.rpartition("_")
        names.append(f"{resource.replace('_', '-')}/{action}")
    return names


def schema() -> dict[str, Any]:
    refusals = ("400", "401", "403", "404", "405", "406", "409", "413", "415", "421", "429")
    shorthand = {"type": "object", "required": ["method"], "additionalProperties": False, "properties": {
        "method": {"enum": _shorthand_methods()}, "params": {"type": "object"}}}
    json_rpc = {"type": "object", "required": ["jsonrpc", "method"], "properties": {
        "jsonrpc": {"const": "2.0"}, "id": {"type": "integer"},
        "method": {"enum": ["initialize", "ping", "tools/list", "tools/call", "resources/list"]},
        "params": {"type": "object"}}}
    mcp_ok = {"200": {"description": "answer", "content": {"application/json": {"schema": {"type": "object"}},
                                                            "text/event-stream": SSE}},
              "202": {"description": "accepted"}}
    open_route: dict[str, Any] = {"security": []}
    return {
        "openapi": "3.1.0",
        "info": {"title": "kubegate MCP endpoint and login routes", "version": "1"},
        "paths": {
            "/api/mcp": {"post": {
                "operationId": "mcp", "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"oneOf": [shorthand, json_rpc]}}}},
                "responses": _answers(*refusals, ok=mcp_ok)},
                # Without an MCP session these answer with the SDK's JSON-RPC errors.
                "get": {"operationId": "mcp_stream", "responses": _answers(*refusals, ok={"200": {
                    "description": "event stream", "content": {"text/event-stream": SSE}}})},
                "delete": {"operationId": "mcp_end", "responses": _answers(*refusals, ok={
                    "200": {"description": "ended"}, "204": {"description": "ended"}})}},
            "/auth/me": {"get": {**open_route, "operationId": "me", "responses": _answers(
                "401", ok={"200": {"description": "who", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["user", "authMethod", "scopes"]}}}}})}},
            "/auth/logout": {"post": {**open_route, "operationId": "logout",
                                      "responses": _answers("403", "413", ok={"204": {"description": "ended"}})}},
            "/auth/login": {"get": {**open_route, "operationId": "login", "parameters": [
                {"name": "redirect", "in": "query", "required": False, "schema": {"type": "string"}}],
                "responses": _answers("400", "404", "503", ok={"303": {"description": "to the provider"}})}},
            "/auth/dev-login": {"post": {**open_route, "operationId": "dev_login", "requestBody": {
                "required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["email"], "properties": {"email": {"type": "string",
                                                                                       "format": "email"}}}}}},
                "responses": _answers("400", "403", "413", ok={"200": {"description": "logged in", "content": {
                    "application/json": {"schema": {"type": "object", "required": ["user", "csrfToken"]}}}}})}},
        },
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
    }
