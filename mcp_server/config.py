"""Settings: every knob has a working default and comes from ``KUBEGATE_*`` or a CLI flag."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBEGATE_", extra="ignore")

    data_dir: Path = Path("./.kubegate")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str = ""
    runtime: Literal["local", "kubernetes"] = "local"
    isolation: Literal["auto", "bwrap", "none"] = "auto"
    access_log: bool = False
    """Log every HTTP request (state-changing requests are always in the audit log)."""
    mcp_stateless: bool = False
    """Serve MCP over HTTP without sessions (each POST stands alone); default keeps sessions."""

    rate_limit_session: int = Field(default=1000, ge=1)
    rate_limit_api_key: int = Field(default=5000, ge=1)
    api_key: str | None = None
    operator_email: str = "operator@localhost"

    max_body_bytes: int = 1024 * 1024
    max_timeout_seconds: int = Field(default=24 * 3600, ge=1)
    default_timeout_seconds: int = Field(default=600, ge=1)
    max_workflow_steps: int = Field(default=100, ge=1)
    workflow_concurrency: int = Field(default=8, ge=1)
    log_tail_bytes: int = Field(default=64 * 1024, ge=1024)
    max_step_bytes: int = Field(default=1024 * 1024, ge=1024)
    """A workflow step's image, command and env after substituting outputs; over it the step fails."""
    key_touch_interval_seconds: float = Field(default=60.0, ge=0)

    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_provider: Literal["oidc", "google", "github"] = "oidc"
    """Login preset: generic OIDC (needs ``oidc_issuer``), Google, or GitHub (OAuth 2, not OIDC)."""

    rate_limit_storage: str = "memory://"
    """Where rate-limit counters live (``limits`` URL); ``redis://...`` shares them between replicas."""
    session_max_age_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    session_secret: str | None = None
    """Signs the short-lived login-state cookie; default: a random secret kept in the data dir."""
    dev_login: bool = False
    """``POST /auth/dev-login {"email": ...}`` without a provider; refused unless bound to loopback."""
    admin_emails: str = ""
    """Comma-separated emails that may read the audit log (the local operator always may)."""
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)

    kubeconfig: Path | None = None
    namespace_prefix: str = "kg-"
    job_ttl_seconds: int = Field(default=3600, ge=0)
    sandbox_domain: str | None = None
    apps_domain: str | None = None

    templates_file: Path | None = None
    """A YAML file of deployment templates, applied at start (see ``engine/templates.py``)."""
    toolsets: str = ""
    """Comma-separated toolsets to serve (``tasks,workflows``); empty or ``all``: every one."""

    @model_validator(mode="after")
    def _default_public_url(self) -> Settings:
        if not self.public_url:
            self.public_url = f"http://{self.host}:{self.port}"
        self.public_url = self.public_url.rstrip("/")
        return self

    @property
    def db_path(self) -> Path:
        return self.data_dir / "kubegate.db"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def public_host(self) -> str:
        """``host[:port]`` of the public URL, as browsers and MCP clients send it in ``Host``."""
        return urlsplit(self.public_url).netloc

    @property
    def admins(self) -> frozenset[str]:
        return frozenset(e.strip().lower() for e in self.admin_emails.split(",") if e.strip())

    @property
    def public_origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"
