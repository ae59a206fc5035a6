"""Sandbox wire models, as the spec shows them, plus exec, files and extend."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from mcp_server.models.base import Wire
from mcp_server.models.sizes import SizeName
from mcp_server.models.validation import Command, DnsLabel, Duration, Env, Image, PageQuery

SandboxStatus = Literal["provisioning", "running", "terminated", "failed"]
Encoding = Literal["utf-8", "base64"]
SandboxId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
FilePath = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class SandboxCreate(Wire):
    name: DnsLabel = Field(max_length=54, description="DNS label, max 54 chars")
    image: Image = Field(description="Pulled on Kubernetes; recorded locally")
    size: SizeName = "small"
    timeout: Duration | None = Field(default=None, description="Lifetime, e.g. 2h (default 1h)")
    network: bool = False
    env: Env = Field(default_factory=dict, description="Values are secret")


class Usage(Wire):
    processes: int
    memory_bytes: int


class Credentials(Wire):
    password: str = Field(description="For the URL; shown only once")


class Sandbox(Wire):
    id: str
    name: str
    status: SandboxStatus
    image: str
    url: str
    size: str
    network: bool | None = None
    env_keys: list[str] | None = None
    reason: str | None = Field(default=None, description="timeout, deleted, error, lost or unready")
    message: str | None = None
    created_at: str
    started_at: str | None = None
    expires_at: str
    ended_at: str | None = None
    usage: Usage | None = Field(default=None, description="Now, while it runs")
    credentials: Credentials | None = None


class SandboxRef(Wire):
    sandbox_id: SandboxId


class SandboxListQuery(PageQuery):
    status: SandboxStatus | None = None


class SandboxEnvelope(Wire):
    sandbox: Sandbox


class SandboxList(Wire):
    sandboxes: list[Sandbox]
    next_cursor: str | None = Field(default=None, description="Pass as cursor to get the next page")


class SandboxExec(Wire):
    sandbox_id: SandboxId
    command: Command
    stdin: str | None = Field(default=None, max_length=1 << 20)
    cwd: FilePath | None = Field(default=None, description="Under the sandbox's home")
    env: Env = Field(default_factory=dict)
    timeout: Duration | None = Field(default=None, description="Default 60s, max 10m")


class ExecOutput(Wire):
    exit_code: int = Field(description="128+N if killed by signal N")
    stdout: str
    stderr: str
    truncated: bool = Field(description="A stream passed 1 MiB and was cut")
    timed_out: bool


class FileRead(Wire):
    sandbox_id: SandboxId
    path: FilePath = Field(description="Under the sandbox's home")
    encoding: Encoding = Field(default="utf-8", description="base64 for binary files")


class FileWrite(Wire):
    sandbox_id: SandboxId
    path: FilePath = Field(description="Under the sandbox's home")
    content: str = Field(max_length=2 << 20)
    encoding: Encoding = "utf-8"


class FileContent(Wire):
    path: str
    size: int
    encoding: Encoding
    content: str | None = None


class SandboxExtend(Wire):
    sandbox_id: SandboxId
    timeout: Duration = Field(description="New lifetime from now, e.g. 2h")
