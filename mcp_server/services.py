"""The long-lived parts every handler may use, opened once per process."""

from __future__ import annotations

from dataclasses import dataclass

from mcp_server.auth.keys import KeyStore
from mcp_server.auth.principal import ALL_SCOPES, Principal
from mcp_server.config import Settings
from mcp_server.errors import Unauthorized
from mcp_server.store.db import Database
from mcp_server.store.users import ensure_user


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    keys: KeyStore

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = await Database.open(settings.db_path)
        return cls(settings=settings, db=db, keys=KeyStore(db, settings.key_touch_interval_seconds))

    async def close(self) -> None:
        await self.db.close()

    async def operator(self) -> Principal:
        """The local operator: who ``kubegate stdio`` and ``keys create`` act as by default."""
        user = await ensure_user(self.db, self.settings.operator_email)
        return Principal(user_id=user.id, email=user.email, method="local", scopes=ALL_SCOPES)

    async def stdio_principal(self) -> Principal:
        """``KUBEGATE_API_KEY``'s user when set (and valid), else the local operator."""
        if self.settings.api_key is None:
            return await self.operator()
        principal = await self.keys.authenticate(self.settings.api_key)
        if principal is None:
            raise Unauthorized("KUBEGATE_API_KEY is invalid, expired or revoked")
        return principal
