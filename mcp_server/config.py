"""Settings: every knob has a working default and comes from a CLI flag, ``KUBEGATE_*`` or the config file.

Precedence, highest first: flags, the environment, ``~/.config/kubegate/config.toml`` (keys are
the setting names without the prefix, e.g. ``data_dir = "/srv/kubegate"``), the defaults.
"""

from __future__ import annotations

import os
import tomllib
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mcp_server.models import durations
from mcp_server.runtime.sandbox import DEFAULT_MASKED, DEFAULT_READONLY


def config_file() -> Path:
    """``$XDG_CONFIG_HOME/kubegate/config.toml``, by default ``~/.config/kubegate/config.toml``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kubegate" / "config.toml"


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
    max_mcp_sessions: int = Field(default=10_000, ge=1)
    """Open MCP sessions over HTTP, all users together."""
    max_mcp_sessions_per_user: int = Field(default=32, ge=1)
    """Open MCP sessions one user may hold; at the cap their oldest idle one is closed."""
    trusted_proxies: str = ""
    """Comma-separated proxy addresses/CIDRs whose ``X-Forwarded-For`` is believed; default none."""
    metrics_token: str | None = None
    """When set, ``/metrics`` needs ``Authorization: Bearer <token>``."""
    log_format: Literal["text", "json"] = "text"

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
    revocation_recheck_seconds: float = Field(default=60.0, gt=0)
    """How often a wait rechecks its credential when the store delivers change events (else every 5 s)."""

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

    # Run isolation and fair shares (local runtime; the caps on runs and objects hold on every runtime).
    max_active_runs_per_user: int = Field(default=8, ge=1)
    """Runs of one user executing at once; more wait as ``pending`` and start in order."""
    max_active_runs: int = Field(default=32, ge=1)
    """Runs executing at once on this gateway, all users together."""
    max_objects_per_user: int = Field(default=10_000, ge=1)
    """Tasks (and, separately, workflows) one user may keep stored; creating more answers 403."""
    run_readonly_paths: str = ",".join(DEFAULT_READONLY)
    """Comma-separated host paths a sandboxed run sees read-only (everything else is hidden)."""
    run_masked_paths: str = ",".join(DEFAULT_MASKED)
    """Comma-separated paths (globs allowed) hidden inside those, e.g. /etc/shadow."""
    run_tmp_bytes: int = Field(default=256 << 20, ge=1 << 20)
    """Size of a run's private /tmp (and /dev/shm)."""
    run_max_file_bytes: int = Field(default=1 << 30, ge=4096)
    """Disk allowance: the largest file a run may write; past it the run fails with disk_limit."""
    run_disk_bytes: int = Field(default=4 << 30, ge=1 << 20)
    """Disk allowance in all: what a run's work dir may hold; past it the run fails with disk_limit."""
    run_disk_files: int = Field(default=100_000, ge=100)
    """Files and directories a run's work dir may hold; past it the run fails with disk_limit."""
    run_log_bytes: int = Field(default=8 << 20, ge=4096)
    """A run's log keeps at most this much: past it the head is dropped and a line says so."""
    run_retention: str = "168h"
    """How long a finished run's files (log, work dir) are kept; the task row stays. 0 keeps them."""
    run_uid_range: str = "200000-265535"
    """Host uids a root gateway gives its runs, one each (``FIRST-LAST``; ``off``: runs stay root outside)."""
    run_cgroups: Literal["auto", "off"] = "auto"
    """``off``: never use cgroups for runs (rlimits alone), even where the gateway could create them."""

    database_url: str | None = None
    """``postgresql://user:pass@host/db``: the store for several replicas; unset, SQLite in the data dir."""

    kubeconfig: Path | None = None
    namespace_prefix: str = "kg-"
    job_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    """Backstop only: the gateway deletes each Job itself once its result is recorded."""
    # Kubernetes runtime on a shared cluster (k8s/policy.py, k8s/manifests.py; README "shared cluster").
    service_account: str = "kubegate/kubegate"
    """``namespace/name`` of the gateway's ServiceAccount, bound to ``kubegate-runner`` in each user namespace."""
    start_timeout: float = Field(default=300.0, gt=0)
    """Seconds a run may wait for its Pod to start (scheduling, quota, admission) before it is ended."""
    pod_security_version: str = "v1.33"
    egress_except: str = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,169.254.0.0/16,fc00::/7,fe80::/10"
    """Ranges ``network: true`` runs may not reach: the cluster's pod, service and node ranges and link-local."""
    dns_namespace: str = "kube-system"
    dns_selector: str = "k8s-app=kube-dns"
    quota: str = ("requests.cpu=8,limits.cpu=8,requests.memory=16Gi,limits.memory=16Gi,"
                  "requests.ephemeral-storage=40Gi,limits.ephemeral-storage=40Gi,pods=8")
    """The ResourceQuota of every user namespace, ``resource=quantity`` comma-separated."""
    runtime_class: str | None = None
    """``runtimeClassName`` of every run Pod (e.g. ``gvisor``, ``kata``); unset uses the cluster's default."""
    node_selector: str = ""
    """``key=value`` comma-separated: the nodes run Pods may be scheduled on."""
    tolerations: str = ""
    """``key=value:Effect`` or ``key:Effect`` comma-separated: taints run Pods tolerate (dedicated nodes)."""
    user_namespaces: bool = False
    """``hostUsers: false``: run Pods in a user namespace (needs Kubernetes 1.33+ and a supporting runtime)."""
    ingress_namespace: str = "ingress-nginx"
    """Namespace of the ingress controller: public deployments' Pods accept traffic from it (NetworkPolicy)."""
    ingress_class: str | None = None
    """``ingressClassName`` of deployments' Ingresses; unset uses the cluster's default class."""
    progress_deadline_seconds: int = Field(default=600, ge=1)
    """A deployment's rollout without progress for this long is an ``Error`` (``ProgressDeadlineExceeded``)."""
    sandbox_domain: str | None = None
    """Sandbox URLs are ``{name}-{user hash}.{sandbox_domain}``; default ``sandboxes.localhost``."""
    apps_domain: str | None = None

    templates_file: Path | None = None
    """A YAML file of deployment templates, applied at start (see ``engine/templates.py``)."""
    toolsets: str = ""
    """Comma-separated toolsets to serve (``tasks,workflows``); empty or ``all``: every one."""

    # Sandboxes (long-lived workloads).
    sandbox_port: int = Field(default=8080, ge=1, le=65535)
    """The port inside a sandbox that its URL reaches."""
    max_sandboxes_per_user: int = Field(default=5, ge=0)
    default_sandbox_timeout_seconds: int = Field(default=3600, ge=1)
    max_sandbox_timeout_seconds: int = Field(default=24 * 3600, ge=1)
    sandbox_max_file_bytes: int = Field(default=1024 * 1024, ge=1)
    """Largest file ``sandboxes_read_file`` returns (writes are bounded by ``max_body_bytes`` too)."""

    # Deployments (long-running apps; their URLs are ``{name}.{apps_domain}``, default ``apps.localhost``).
    max_deployments_per_user: int = Field(default=10, ge=0, le=500)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_file())

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or CIDR range") from None
        return value

    @field_validator("run_uid_range")
    @classmethod
    def _uid_range(cls, value: str) -> str:
        if value.strip().lower() not in ("", "off"):
            first, sep, last = value.partition("-")
            numbers = sep and first.strip().isdigit() and last.strip().isdigit()
            if not (numbers and 0 < int(first) <= int(last) < 2**32 - 1):
                raise ValueError("give the run uid range as FIRST-LAST (e.g. 200000-265535), or off")
        return value

    @field_validator("run_retention")
    @classmethod
    def _retention_is_a_duration(cls, value: str) -> str:
        if value.strip() not in ("", "0"):
            durations.parse(value.strip())
        return value

    @model_validator(mode="after")
    def _default_public_url(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().absolute()
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
    def run_retention_seconds(self) -> float:
        """``run_retention`` in seconds; 0 keeps finished runs' files for ever."""
        return 0.0 if self.run_retention.strip() in ("", "0") else float(durations.parse(self.run_retention.strip()))

    @property
    def run_uids(self) -> tuple[int, int] | None:
        """``(first, count)`` of ``run_uid_range``, or None when it is off."""
        if self.run_uid_range.strip().lower() in ("", "off"):
            return None
        first, _, last = self.run_uid_range.partition("-")
        return int(first), int(last) - int(first) + 1

    @property
    def readonly_paths(self) -> list[str]:
        return [p.strip() for p in self.run_readonly_paths.split(",") if p.strip()]

    @property
    def masked_paths(self) -> list[str]:
        return [p.strip() for p in self.run_masked_paths.split(",") if p.strip()]

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


def inconsistencies(settings: Settings) -> list[str]:
    """Settings that are each in range but contradict one another; checked when a server starts."""
    found: list[str] = []
    if settings.default_timeout_seconds > settings.max_timeout_seconds:
        found.append(f"KUBEGATE_DEFAULT_TIMEOUT_SECONDS ({settings.default_timeout_seconds}) is above "
                     f"KUBEGATE_MAX_TIMEOUT_SECONDS ({settings.max_timeout_seconds})")
    if bool(settings.oidc_client_id) != bool(settings.oidc_client_secret):
        found.append("login is half-configured: set both KUBEGATE_OIDC_CLIENT_ID and KUBEGATE_OIDC_CLIENT_SECRET")
    elif settings.oidc_client_id and settings.oidc_provider == "oidc" and not settings.oidc_issuer:
        found.append("login is half-configured: a client id and secret need KUBEGATE_OIDC_ISSUER "
                     "(or KUBEGATE_OIDC_PROVIDER=google|github)")
    return found


class SettingsError(ValueError):
    """A setting that cannot be used, said in one line that names it."""


_SECRETS = frozenset({"api_key", "oidc_client_secret", "session_secret", "metrics_token", "database_url"})


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """``Settings`` from flags (``overrides``), the environment and the config file, or a ``SettingsError``."""
    try:
        return Settings(**(overrides or {}))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        if not field:
            raise SettingsError(first["msg"]) from None
        shown = "" if field in _SECRETS or "input" not in first else f"={first['input']}"
        raise SettingsError(f"KUBEGATE_{field.upper()}{shown}: {first['msg']}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{config_file()} is not valid TOML: {exc}") from None
