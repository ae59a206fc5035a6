"""What tasks and workflows share in the engine: the timeout a run gets, and why a start failed."""

from __future__ import annotations

import os

from mcp_server.config import Settings
from mcp_server.errors import KubegateError, ValidationFailed
from mcp_server.models import durations


def resolve_timeout(settings: Settings, seconds: int | None, field: str = "timeout") -> int:
    """The run's timeout: as given (already parsed), else the default; never over the maximum."""
    if seconds is None:
        return settings.default_timeout_seconds
    if seconds > settings.max_timeout_seconds:
        raise ValidationFailed(f"must be at most {durations.format(settings.max_timeout_seconds)}", field=field)
    return seconds


def start_failure(exc: BaseException) -> str:
    """Why a run could not start, in words a user can read and that never carry a host path.

    An ``OSError`` names its file (``/var/lib/kubegate/runs/...``); only its errno's text is kept.
    """
    if isinstance(exc, KubegateError):
        detail = exc.message
    elif isinstance(exc, OSError) and exc.errno:
        detail = os.strerror(exc.errno)
    else:
        detail = "the runtime refused the run"
    return f"could not start: {detail}"
