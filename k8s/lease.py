"""Engine leadership on the Kubernetes runtime: a ``coordination.k8s.io/v1`` Lease, as controllers hold one.

The holder writes ``renewTime`` every ``RENEW_SECONDS``; another replica may take the Lease once
``renewTime + leaseDurationSeconds`` has passed without a renewal (a leader that died, or lost the
API server). Every write is a PUT at the resourceVersion read, so two replicas racing for an
expired Lease cannot both win (409 for the second). The holder that cannot renew for
``RENEW_DEADLINE_SECONDS`` (shorter than the duration, so it gives up before anyone may take over)
or finds another holder sets ``lost`` and must stop acting at once. A replica shutting down
clears the holder so the next one takes over without waiting for the Lease to expire.

Settings (stated with the failover benchmark): duration 8 s, renew every 2 s, renew deadline 6 s,
followers retry every 1 s: a killed leader is replaced within about 9 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from k8s.client import KubeClient
from mcp_server import errors
from mcp_server.config import Settings

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DURATION_SECONDS, RENEW_SECONDS, RENEW_DEADLINE_SECONDS, RETRY_SECONDS = 8, 2.0, 6.0, 1.0
LEASE_NAME = "kubegate-leader"


def _micro(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(text: str | None) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else 0.0


class KubeLease:
    """Elects this replica (``identity``) through the Lease ``namespace/LEASE_NAME``."""

    def __init__(self, kube: KubeClient, namespace: str, identity: str, *, owns_client: bool = False) -> None:
        self._kube = kube
        self._owns_client = owns_client
        self.namespace, self.identity = namespace, identity
        self.lost = asyncio.Event()
        self._renewer: asyncio.Task[None] | None = None
        self._held: Obj | None = None

    async def lead(self) -> KubeLease:
        """Wait until this replica holds the Lease, then keep renewing it."""
        while True:
            try:
                if await self._try_acquire():
                    self._renewer = asyncio.create_task(self._renew(), name="kubegate-lease-renew")
                    return self
            except errors.KubegateError as exc:
                log.warning("could not take the leader Lease: %s", exc)
            await asyncio.sleep(RETRY_SECONDS)  # a Lease expires by the clock: waiting for it is inherent

    async def _read(self) -> Obj | None:
        try:
            return await self._kube.read_lease(self.namespace, LEASE_NAME)
        except errors.NotFound:
            return None

    def _spec(self, previous: Obj, now: float) -> Obj:
        ours = previous.get("holderIdentity") == self.identity
        return {"holderIdentity": self.identity, "leaseDurationSeconds": DURATION_SECONDS,
                "acquireTime": previous.get("acquireTime") if ours else _micro(now), "renewTime": _micro(now),
                "leaseTransitions": int(previous.get("leaseTransitions") or 0) + (0 if ours or not previous else 1)}

    async def _try_acquire(self) -> bool:
        now = time.time()
        current = await self._read()
        if current is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": LEASE_NAME, "namespace": self.namespace}, "spec": self._spec({}, now)}
            try:
                self._held = await self._kube.create_lease(body)
            except errors.Conflict:
                return False  # another replica created it first
            return True
        spec = current.get("spec") or {}
        holder = spec.get("holderIdentity")
        expires = _seconds(spec.get("renewTime")) + int(spec.get("leaseDurationSeconds") or DURATION_SECONDS)
        if holder and holder != self.identity and expires > now:
            return False
        return await self._write(current, self._spec(spec, now))

    async def _write(self, current: Obj, spec: Obj) -> bool:
        body = {**current, "spec": spec}
        try:
            self._held = await self._kube.replace_lease(body)
        except errors.Conflict:
            return False  # it moved since we read it: someone else renewed or took it
        return True

    async def _renew(self) -> None:
        renewed = time.monotonic()
        while not self.lost.is_set():
            await asyncio.sleep(RENEW_SECONDS)
            try:
                current = await self._read()
                spec = (current or {}).get("spec") or {}
                if current is None or spec.get("holderIdentity") != self.identity:
                    log.error("the leader Lease is held by %s now: leadership is lost", spec.get("holderIdentity"))
                    break
                if await self._write(current, self._spec(spec, time.time())):
                    renewed = time.monotonic()
            except errors.KubegateError as exc:
                log.warning("could not renew the leader Lease: %s", exc)
            if time.monotonic() - renewed > RENEW_DEADLINE_SECONDS:
                log.error("the leader Lease was not renewed for %.0f s: leadership is lost", RENEW_DEADLINE_SECONDS)
                break
        self.lost.set()

    async def release(self) -> None:
        """Stop renewing and clear the holder, so the next replica need not wait for the Lease to expire."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self._held is not None and not self.lost.is_set():
            with contextlib.suppress(errors.KubegateError):
                current = await self._read()
                if current is not None and (current.get("spec") or {}).get("holderIdentity") == self.identity:
                    spec = {**current["spec"], "holderIdentity": None, "leaseDurationSeconds": 1}
                    await self._write(current, spec)
        self.lost.set()
        if self._owns_client:
            await self._kube.close()


def lease_election(settings: Settings) -> Callable[[], Awaitable[KubeLease]]:
    """Leadership through the Lease in the gateway's own namespace (that of ``KUBEGATE_SERVICE_ACCOUNT``)."""

    async def elect() -> KubeLease:
        kube = await KubeClient.connect(settings.kubeconfig)
        namespace = settings.service_account.partition("/")[0]
        return await KubeLease(kube, namespace, f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
                               owns_client=True).lead()

    return elect
