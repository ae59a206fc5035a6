"""The templates repository on a real SQLite file and on PostgreSQL: versions, no-op writes, deletion keeps versions."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_server.errors import Conflict
from mcp_server.store.stores import open_database
from mcp_server.store.templates import EnvVar, TemplateSpec, TemplateStore

SPEC = TemplateSpec(
    name="web", display_name="Web", description="", category="general", image="nginx:1.27", port=80,
    cpu_request="100m", cpu_limit="500m", memory_request="128Mi", memory_limit="512Mi", health_check_path="/",
    enabled=True, command=("nginx", "-g", "daemon off;"), env=(EnvVar("MODE", "prod"), EnvVar("PW", "x", True)),
)


@pytest.fixture
async def store(tmp_path: Path, database_url: str | None) -> AsyncIterator[TemplateStore]:
    db = await open_database(tmp_path / "kubegate.db", database_url)
    yield TemplateStore(db)
    await db.close()


async def test_every_change_is_a_new_version_and_old_ones_stay_readable(store: TemplateStore) -> None:
    first = await store.create(SPEC, "api")
    assert (first.version, first.spec) == (1, SPEC)
    second = await store.update(dataclasses.replace(SPEC, port=81))
    assert second is not None and second.version == 2 and second.spec.port == 81
    unchanged = await store.update(dataclasses.replace(SPEC, port=81))
    assert unchanged is not None and unchanged.version == 2
    pinned = await store.get("web", 1)
    assert pinned is not None and pinned.spec == SPEC and pinned.spec.env[1].secret
    assert await store.get("web", 3) is None and await store.get("web", 0) is None
    with pytest.raises(Conflict):
        await store.create(SPEC, "api")


async def test_deleted_templates_keep_their_versions_and_numbering_goes_on(store: TemplateStore) -> None:
    await store.create(SPEC, "api")
    await store.update(dataclasses.replace(SPEC, enabled=False))
    deleted = await store.delete("web")
    assert deleted is not None and deleted.version == 2
    assert await store.get("web") is None and await store.list() == []
    assert await store.delete("web") is None and await store.update(SPEC) is None
    old = await store.get("web", 2)
    assert old is not None and old.spec.enabled is False, "a deployment pinned to it can still read it"
    again = await store.create(SPEC, "file")
    assert (again.version, again.source) == (3, "file"), "a new template never reuses a pinned version number"


async def test_upsert_writes_only_what_differs(store: TemplateStore) -> None:
    created = await store.upsert(SPEC, "file")
    same = await store.upsert(SPEC, "file")
    assert (created.version, same.version, same.updated_at) == (1, 1, created.updated_at)
    changed = await store.upsert(dataclasses.replace(SPEC, command=None, env=()), "file")
    assert changed.version == 2 and changed.spec.command is None and changed.spec.env == ()
    assert [t.spec.name for t in await store.list()] == ["web"]
