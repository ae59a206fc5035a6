"""A Pod container's log read once, as timestamped lines (the kubelet prefixes each with RFC 3339 nanoseconds)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from k8s.client import KubeClient
from mcp_server import errors
from mcp_server.runtime.apps import LogLine


def parse_stamp(text: str) -> datetime | None:
    """``2026-11-29T18:44:12.123456789Z`` (nanoseconds are cut to microseconds), ``None`` if it is not one."""
    head, _, fraction = text.rstrip("Z").partition(".")
    try:
        at = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    digits = (fraction + "000000")[:6]
    return at.replace(microsecond=int(digits)) if digits.isdigit() else at


async def read_lines(kube: KubeClient, namespace: str, pod: str, container: str,
                     since: datetime | None) -> list[LogLine]:
    """Every line of the container's current log at or after ``since``; none while it has not started."""
    seconds = None if since is None else max(1, math.ceil((datetime.now(UTC) - since).total_seconds()))
    data = b""
    try:
        async for chunk in kube.pod_log(namespace, pod, container, follow=False, since_seconds=seconds):
            data += chunk
    except (errors.BadRequest, errors.NotFound):
        return []  # not started yet, or gone meanwhile
    lines = []
    for raw in data.decode(errors="replace").splitlines():
        stamp, _, text = raw.partition(" ")
        at = parse_stamp(stamp)
        if at is not None and (since is None or at >= since):
            lines.append(LogLine(at=at, replica=pod, text=text))
    return lines
