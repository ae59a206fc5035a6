"""Deployment templates: versioned, admin-defined apps (see migration 0022).

Every change that alters a template writes a new version; a write that changes nothing writes
nothing, so applying the same templates file at every start is free. Deleting marks the
template deleted and keeps its versions for the deployments that pinned them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from mcp_server.errors import Conflict
from mcp_server.ids import stamp
from mcp_server.store.db import Database

Source = Literal["file", "api"]

_SPEC_COLUMNS = ("display_name", "description", "category", "image", "port", "cpu_request", "cpu_limit",
                 "memory_request", "memory_limit", "health_check_path", "enabled", "command", "network")


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    value: str
    secret: bool = False


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """Everything an admin says about a template (its name included); what a version holds."""

    name: str
    display_name: str
    description: str
    category: str
    image: str
    port: int
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    health_check_path: str
    enabled: bool
    command: tuple[str, ...] | None
    env: tuple[EnvVar, ...]
    network: bool = False


@dataclass(frozen=True, slots=True)
class Template:
    spec: TemplateSpec
    version: int
    source: Source
    created_at: str
    updated_at: str


class TemplateStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self) -> list[Template]:
        """Every live template, by name."""
        heads = await self._db.fetch_all("SELECT * FROM templates WHERE deleted_at IS NULL ORDER BY name")
        return [await self._load(head, head["version"]) for head in heads]

    async def get(self, name: str, version: int | None = None) -> Template | None:
        """The live template's current version, or a given version (kept after deletion too)."""
        head = await self._db.fetch_one("SELECT * FROM templates WHERE name = ?", (name,))
        if head is None or (version is None and head["deleted_at"] is not None):
            return None
        if version is not None and not 1 <= version <= head["version"]:
            return None
        return await self._load(head, version or head["version"])

    async def create(self, spec: TemplateSpec, source: Source) -> Template:
        """A new template; Conflict when a live one has that name."""
        async with self._db.transaction():
            head = await self._db.fetch_one("SELECT * FROM templates WHERE name = ?", (spec.name,))
            if head is not None and head["deleted_at"] is None:
                raise Conflict(f"Template '{spec.name}' already exists; change it with templates_update")
            return await self._write(spec, source, head)

    async def update(self, spec: TemplateSpec) -> Template | None:
        """The template with ``spec`` as its content (a new version if anything changed); None if absent."""
        async with self._db.transaction():
            head = await self._db.fetch_one(
                "SELECT * FROM templates WHERE name = ? AND deleted_at IS NULL", (spec.name,))
            if head is None:
                return None
            current = await self._load(head, head["version"])
            if current.spec == spec:
                return current
            return await self._write(spec, "api", head)

    async def upsert(self, spec: TemplateSpec, source: Source) -> Template:
        """Create the template or make ``spec`` its content; nothing is written when it already is."""
        async with self._db.transaction():
            head = await self._db.fetch_one("SELECT * FROM templates WHERE name = ?", (spec.name,))
            if head is not None and head["deleted_at"] is None:
                current = await self._load(head, head["version"])
                if current.spec == spec:
                    return current
            return await self._write(spec, source, head)

    async def delete(self, name: str) -> Template | None:
        async with self._db.transaction():
            head = await self._db.fetch_one("SELECT * FROM templates WHERE name = ? AND deleted_at IS NULL", (name,))
            if head is None:
                return None
            await self._db.execute("UPDATE templates SET deleted_at = ? WHERE name = ?", (stamp(), name))
            return await self._load(head, head["version"])

    async def _write(self, spec: TemplateSpec, source: Source, head: dict[str, Any] | None) -> Template:
        now = stamp()
        version = 1 if head is None else int(head["version"]) + 1
        if head is None:
            await self._db.execute(
                "INSERT INTO templates(name, version, source, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (spec.name, version, source, now, now))
        else:
            revived = head["deleted_at"] is not None
            await self._db.execute(
                "UPDATE templates SET version = ?, source = ?, updated_at = ?, deleted_at = NULL,"
                " created_at = CASE WHEN ? = 1 THEN ? ELSE created_at END WHERE name = ?",
                (version, source, now, revived, now, spec.name))
        values = _spec_values(spec)
        await self._db.execute(
            f"INSERT INTO template_versions(name, version, created_at, {', '.join(_SPEC_COLUMNS)})"
            f" VALUES (?, ?, ?, {', '.join('?' for _ in _SPEC_COLUMNS)})",
            (spec.name, version, now, *values))
        for position, var in enumerate(spec.env):
            await self._db.execute(
                "INSERT INTO template_env(name, version, position, env_name, value, secret) VALUES (?, ?, ?, ?, ?, ?)",
                (spec.name, version, position, var.name, var.value, var.secret))
        head_now = await self._db.fetch_one("SELECT * FROM templates WHERE name = ?", (spec.name,))
        assert head_now is not None
        return await self._load(head_now, version)

    async def _load(self, head: dict[str, Any], version: int) -> Template:
        row = await self._db.fetch_one(
            "SELECT * FROM template_versions WHERE name = ? AND version = ?", (head["name"], version))
        if row is None:
            raise LookupError(f"template {head['name']} has no version {version}")
        env = await self._db.fetch_all(
            "SELECT env_name, value, secret FROM template_env WHERE name = ? AND version = ? ORDER BY position",
            (head["name"], version))
        spec = TemplateSpec(
            name=row["name"], display_name=row["display_name"], description=row["description"],
            category=row["category"], image=row["image"], port=int(row["port"]), cpu_request=row["cpu_request"],
            cpu_limit=row["cpu_limit"], memory_request=row["memory_request"], memory_limit=row["memory_limit"],
            health_check_path=row["health_check_path"], enabled=bool(row["enabled"]),
            command=tuple(json.loads(row["command"])) if row["command"] is not None else None,
            env=tuple(EnvVar(e["env_name"], e["value"], bool(e["secret"])) for e in env),
            network=bool(row["network"]),
        )
        return Template(spec=spec, version=version, source=head["source"], created_at=head["created_at"],
                        updated_at=row["created_at"])


def _spec_values(spec: TemplateSpec) -> tuple[Any, ...]:
    command = json.dumps(list(spec.command)) if spec.command is not None else None
    return (spec.display_name, spec.description, spec.category, spec.image, spec.port, spec.cpu_request,
            spec.cpu_limit, spec.memory_request, spec.memory_limit, spec.health_check_path, spec.enabled, command,
            spec.network)
