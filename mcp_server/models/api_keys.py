"""API key wire models, as the spec shows them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from mcp_server.models.base import Wire
from mcp_server.models.scopes import ALL_SCOPES, DEFAULT_SCOPES, valid_scope

KeyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ApiKey(Wire):
    id: str = Field(examples=["key_123"])
    name: str = Field(examples=["CI/CD Pipeline"])
    prefix: str = Field(description="The first characters of the key, to recognise it", examples=["sk_live_Ab12"])
    scopes: list[str]
    created_at: str
    expires_at: str | None = None
    last_used_at: str | None = None
    revoked_at: str | None = None
    parent_id: str | None = Field(default=None, description="The key that minted this one; revoking it revokes this")


class NewApiKey(Wire):
    id: str
    name: str
    key: str = Field(description="The full key. It is shown only this once: store it securely.")
    prefix: str
    scopes: list[str]
    created_at: str
    expires_at: str | None = None
    parent_id: str | None = None


class ApiKeyCreate(Wire):
    name: KeyName = Field(description="What the key is for")
    expires_in_days: int | None = Field(
        default=90, ge=1, le=3650,
        description="null: never",
    )
    scopes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SCOPES), min_length=1, max_length=32,
        description="Default: all you hold",
        json_schema_extra={"items": {"type": "string", "enum": ["*", *ALL_SCOPES, *DEFAULT_SCOPES]}},
    )

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: list[str]) -> list[str]:
        unknown = [s for s in scopes if not valid_scope(s)]
        if unknown:
            raise ValueError(f"unknown scope(s): {', '.join(unknown)}")
        return sorted(set(scopes))


class ApiKeyRef(Wire):
    key_id: str = Field(min_length=1, max_length=64)


class ApiKeyList(Wire):
    api_keys: list[ApiKey]


class ApiKeyEnvelope(Wire):
    api_key: ApiKey


class NewApiKeyEnvelope(Wire):
    api_key: NewApiKey
