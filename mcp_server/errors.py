"""The one error tree. Every failure a user can see is one of these, on every door.

::

    KubegateError (500 internal_error)
     ├── BadRequest (400 bad_request)
     │    └── ValidationFailed (400 validation_error)   names the field
     ├── Unauthorized (401 unauthorized)
     ├── Forbidden (403 forbidden)
     ├── NotFound (404 resource_not_found)
     ├── MethodNotAllowed (405 method_not_allowed)
     ├── Conflict (409 conflict)
     ├── MisdirectedRequest (421 misdirected_request)   a Host this gateway does not answer for
     ├── RequestTimeout (408 request_timeout)        a client too slow to send its request
     ├── PayloadTooLarge (413 payload_too_large)
     ├── HeadersTooLarge (431 request_headers_too_large)
     ├── RateLimited (429 rate_limit_exceeded)
     └── Unavailable (503 service_unavailable)   the runtime or cluster cannot be reached

REST answers ``{"error": code, "message": ..., "status": N}`` with status N; MCP answers a
tool result with ``isError: true`` whose text and structured content are that same JSON.
Foreign exceptions are translated where they enter (``raise NotFound(...) from exc``); an
exception outside the tree becomes a bare 500 whose message never includes a traceback.
"""

from __future__ import annotations

from typing import Any, ClassVar


class KubegateError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str = "Internal server error", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "status": self.status}


class BadRequest(KubegateError):
    status = 400
    code = "bad_request"


class ValidationFailed(BadRequest):
    code = "validation_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class Unauthorized(KubegateError):
    status = 401
    code = "unauthorized"


class Forbidden(KubegateError):
    status = 403
    code = "forbidden"


class NotFound(KubegateError):
    status = 404
    code = "resource_not_found"


class MethodNotAllowed(KubegateError):
    status = 405
    code = "method_not_allowed"


class Conflict(KubegateError):
    status = 409
    code = "conflict"


class MisdirectedRequest(KubegateError):
    status = 421
    code = "misdirected_request"


class RequestTimeout(KubegateError):
    status = 408
    code = "request_timeout"


class HeadersTooLarge(KubegateError):
    status = 431
    code = "request_headers_too_large"


class PayloadTooLarge(KubegateError):
    status = 413
    code = "payload_too_large"


class RateLimited(KubegateError):
    status = 429
    code = "rate_limit_exceeded"


class Unavailable(KubegateError):
    status = 503
    code = "service_unavailable"


_BY_STATUS: dict[int, type[KubegateError]] = {
    cls.status: cls
    for cls in (BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, RequestTimeout, Conflict,
                MisdirectedRequest,
                PayloadTooLarge, HeadersTooLarge, RateLimited, Unavailable)
}


def for_status(status: int, message: str) -> KubegateError:
    """The error of the tree that answers ``status`` (500 for anything unknown)."""
    return _BY_STATUS.get(status, KubegateError)(message)
