"""The kinds of object the dashboard lists, found in the REST route table rather than written down.

A kind is a collection with a list route (``GET /api/things``) and an item route
(``GET /api/things/{thingId}``); whatever else the table offers on them (create, delete, a
``POST /api/things/{thingId}/verb`` action) becomes a button. A capability added with its routes
(sandboxes, deployments) therefore shows up on the page without touching it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_server.registry import Registry
from rest_bridge import routes as route_table
from rest_bridge.routes import RestRoute


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    """The collection, as in the URL and the list envelope: ``tasks``."""
    singular: str
    """The item envelope's key and the id prefix: ``task`` (ids are ``task_...``)."""
    id_field: str
    get_tool: str
    list_path: str
    item_path: str
    creatable: bool
    deletable: bool
    actions: tuple[str, ...]
    create_fields: frozenset[str]

    def owns(self, object_id: str) -> bool:
        return object_id.startswith(f"{self.singular}_")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "singular": self.singular, "idField": self.id_field,
                "listPath": self.list_path, "itemPath": self.item_path, "creatable": self.creatable,
                "deletable": self.deletable, "actions": list(self.actions)}


def _envelope_key(registry: Registry, tool: str) -> str | None:
    fields = registry.get(tool).output_model.model_fields
    if len(fields) != 1:
        return None
    name, info = next(iter(fields.items()))
    return info.alias or name


def discover(registry: Registry, routes: tuple[RestRoute, ...] | None = None) -> list[Kind]:
    routes = route_table.ROUTES if routes is None else routes
    known = {c.name for c in registry.list()}
    routes = tuple(r for r in routes if r.tool in known)
    by_key = {(r.method, r.path): r for r in routes}
    kinds: list[Kind] = []
    for route in routes:
        if route.method != "GET" or not route.tool.endswith("_list"):
            continue
        item = next((r for r in routes if r.method == "GET" and len(r.path_params) == 1
                     and r.path == f"{route.path}/{{{r.path_params[0]}}}"), None)
        singular = _envelope_key(registry, item.tool) if item else None
        if item is None or singular is None:
            continue
        create = by_key.get(("POST", route.path))
        actions = tuple(r.path.rsplit("/", 1)[1] for r in routes
                        if r.method == "POST" and r.path.startswith(f"{item.path}/") and r.path.count("/") ==
                        item.path.count("/") + 1)
        fields = registry.get(create.tool).input_model.model_fields if create else {}
        kinds.append(Kind(
            name=route.path.rsplit("/", 1)[1], singular=singular, id_field=item.path_params[0],
            get_tool=item.tool, list_path=route.path, item_path=item.path, creatable=create is not None,
            deletable=("DELETE", item.path) in by_key, actions=actions,
            create_fields=frozenset(f.alias or n for n, f in fields.items()),
        ))
    return kinds


def examples(directory: Path, kinds: list[Kind]) -> dict[str, tuple[str, bytes]]:
    """``examples/*.json`` bodies by file name, each with the kind whose create input fits it."""
    found: dict[str, tuple[str, bytes]] = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        raw = path.read_bytes()
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(body, dict):
            continue
        kind = next((k for k in kinds if k.creatable and set(body) <= k.create_fields), None)
        if kind is not None:
            found[path.name] = (kind.name, raw)
    return found
