"""Audit log wire models."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mcp_server.models.base import Wire
from mcp_server.models.validation import Cursor


class AuditEvent(Wire):
    id: str
    timestamp: str = Field(description="When the request was answered (ISO-8601 UTC)")
    user_id: str | None = None
    email: str | None = None
    auth_method: str | None = Field(default=None, description="api_key, session or local")
    key_id: str | None = Field(default=None, description="The API key that acted (its id, never the secret)")
    method: str = Field(examples=["POST"])
    path: str = Field(examples=["/api/tasks"])
    action: str | None = Field(default=None, description="The tool called, or login/logout", examples=["tasks_create"])
    status: int = Field(description="The HTTP status of the answer", examples=[201])
    client_ip: str | None = None


class AuditQuery(Wire):
    user_id: str | None = Field(default=None, max_length=64, description="Only this user's requests")
    limit: Annotated[int, Field(ge=1, le=500)] = 100
    cursor: Cursor | None = Field(default=None, description="nextCursor of the previous page")


class AuditList(Wire):
    events: list[AuditEvent]
    next_cursor: str | None = Field(default=None, description="Pass as cursor to get the next page")
