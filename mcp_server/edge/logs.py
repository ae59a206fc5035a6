"""Log records that say which request they belong to, as text or JSON lines, never with secrets.

The edge binds each request's id, door, tool, user id and status to a context variable;
``RequestFields`` copies them onto every record logged while the request is served, and
``JsonFormatter`` writes one JSON object per line (``KUBEGATE_LOG_FORMAT=json``). ``Redact``
masks API keys and session tokens wherever they would appear in a message, and the query
string of ``/auth`` paths (where the OAuth code and state travel).
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

REQUEST_FIELDS = ("request_id", "door", "tool", "user_id", "status")
CURRENT: ContextVar[dict[str, Any] | None] = ContextVar("kubegate_request_log", default=None)
_SECRET = re.compile(r"(sk_live_)[A-Za-z0-9]+|(session=)[^;\s\"']+|(/auth/[^\s?\"']*\?)[^\s\"']+")


def _mask(match: re.Match[str]) -> str:
    return (match.group(1) or match.group(2) or match.group(3)) + "[redacted]"


def redact(text: str) -> str:
    return _SECRET.sub(_mask, text)


class Redact(logging.Filter):
    """Render the message once, mask secrets in it, and keep the masked text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = redact(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True


class RequestFields(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        fields = CURRENT.get()
        for name in REQUEST_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, fields.get(name) if fields else None)
        return True


class JsonFormatter(logging.Formatter):
    RESERVED: ClassVar[frozenset[str]] = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in self.RESERVED and not name.startswith("_") and value is not None:
                body[name] = value
        if record.exc_info:
            body["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(body, default=str, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request {rid}]" if rid else line


def configure(fmt: Literal["json", "text"], level: int = logging.INFO) -> None:
    """Send every logger (uvicorn's included) through one handler with redaction and request fields."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestFields())
    handler.addFilter(Redact())
    handler.setFormatter(JsonFormatter() if fmt == "json" else _TextFormatter("%(levelname)s:     %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")  # the edge writes the access log (kubegate.access)
    access.handlers[:] = []
    access.propagate = False
