"""The one door to the Kubernetes API: the official async client (``kubernetes.aio``), thinly wrapped.

Objects go in and come out as plain JSON dicts (the shape the API server speaks and the
shape ``manifests`` builds), so nothing above this module knows the client's model classes.
Calls use the generated ``*_without_preload_content`` methods and read the raw response:
watch and log streams need that anyway, and one path for all calls keeps error handling in
one place. ``ApiException`` and transport failures become ``mcp_server.errors`` here.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
from kubernetes.aio import client, config
from kubernetes.aio.client.exceptions import ApiException
from kubernetes.aio.stream import WsApiClient

from mcp_server import errors

Obj = dict[str, Any]
Kind = Literal["jobs", "pods", "services", "namespaces", "networkpolicies", "resourcequotas", "limitranges",
               "rolebindings", "deployments"]

_TYPES: dict[str, tuple[str, str, type[Any]]] = {
    "Secret": ("core", "secret", client.V1Secret),
    "Service": ("core", "service", client.V1Service),
    "Job": ("batch", "job", client.V1Job),
    "NetworkPolicy": ("net", "network_policy", client.V1NetworkPolicy),
    "ResourceQuota": ("core", "resource_quota", client.V1ResourceQuota),
    "LimitRange": ("core", "limit_range", client.V1LimitRange),
    "RoleBinding": ("rbac", "role_binding", client.V1RoleBinding),
    "Deployment": ("apps", "deployment", client.V1Deployment),
    "Ingress": ("net", "ingress", client.V1Ingress),
}
"""Namespaced kinds the runtime writes: which API group object serves them, their method stem, their model."""
_LISTS: dict[Kind, tuple[str, str]] = {
    "jobs": ("batch", "list_job_for_all_namespaces"),
    "pods": ("core", "list_pod_for_all_namespaces"),
    "services": ("core", "list_service_for_all_namespaces"),
    "namespaces": ("core", "list_namespace"),
    "networkpolicies": ("net", "list_network_policy_for_all_namespaces"),
    "resourcequotas": ("core", "list_resource_quota_for_all_namespaces"),
    "limitranges": ("core", "list_limit_range_for_all_namespaces"),
    "rolebindings": ("rbac", "list_role_binding_for_all_namespaces"),
    "deployments": ("apps", "list_deployment_for_all_namespaces"),
}

WATCH_SECONDS = 240
"""Server-side watch timeout; the watch is then resumed from its last resourceVersion."""
STREAM_TIMEOUT = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str
    object: Obj


class Gone(errors.KubegateError):
    """HTTP 410: the resourceVersion a watch asked for is no longer kept; list again."""

    status = 410
    code = "gone"


def _translate(exc: ApiException) -> errors.KubegateError:
    status = int(exc.status or 500)
    message = str(exc.reason or "Kubernetes API error")
    try:
        message = json.loads(exc.body or "{}").get("message") or message
    except (ValueError, AttributeError):
        pass
    if status == 410:
        return Gone(message)
    return errors.for_status(status, f"Kubernetes API: {message}")


@asynccontextmanager
async def _response(request: Awaitable[aiohttp.ClientResponse]) -> AsyncIterator[aiohttp.ClientResponse]:
    """Send ``request`` and yield its response; API and transport failures become our errors."""
    try:
        resp = await request
    except aiohttp.ClientError as exc:
        raise errors.Unavailable(f"Kubernetes API unreachable: {exc}") from exc
    try:
        if resp.status >= 400:
            body = await resp.text()
            try:
                raise ApiException(status=resp.status, reason=resp.reason, body=body)
            except ApiException as exc:
                raise _translate(exc) from exc
        yield resp
    except aiohttp.ClientError as exc:
        raise errors.Unavailable(f"Kubernetes API stream broke: {exc}") from exc
    finally:
        resp.release()


async def _json(request: Awaitable[aiohttp.ClientResponse]) -> Obj:
    async with _response(request) as resp:
        data: Obj = json.loads(await resp.read())
        return data


@dataclass(frozen=True, slots=True)
class ExecOutcome:
    stdout: bytes
    stderr: bytes
    exit_code: int
    truncated: bool = False
    """Some of stdout or stderr went beyond ``exec``'s ``limit`` and was dropped."""


ExecSink = Callable[[int, bytes], None]
"""Called with (1 stdout | 2 stderr, bytes) as a command's output arrives."""
EXEC_PROTOCOL = "v5.channel.k8s.io"
"""v5 (Kubernetes 1.30+) can close stdin, which a command reading a file's bytes needs to see its end."""
_STDIN, _STATUS, _CLOSE = 0, 3, 255


def exit_code(status: Obj) -> int:
    """The command's exit code from the status channel's ``Status``; other failures become our errors."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                return int(cause["message"])
    raise errors.for_status(int(status.get("code") or 500), f"Kubernetes exec: {status.get('message') or status}")


class KubeClient:
    """The calls the runtime makes, and nothing else (``deploy/`` RBAC grants exactly these)."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._groups: dict[str, Any] = {"core": client.CoreV1Api(api), "batch": client.BatchV1Api(api),
                                        "net": client.NetworkingV1Api(api), "rbac": client.RbacAuthorizationV1Api(api),
                                        "apps": client.AppsV1Api(api)}
        self._custom = client.CustomObjectsApi(api)
        self._core = self._groups["core"]
        self._batch = self._groups["batch"]
        self._ws = WsApiClient(api.configuration)  # type: ignore[no-untyped-call]
        self._ws_core = client.CoreV1Api(self._ws)

    @classmethod
    async def connect(cls, kubeconfig: Path | None) -> KubeClient:
        """From ``kubeconfig`` when given, else the in-cluster service account."""
        configuration = client.Configuration()
        if kubeconfig is not None:
            await config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return cls(client.ApiClient(configuration))

    async def close(self) -> None:
        await self._api.close()  # type: ignore[no-untyped-call]
        await self._ws.close()  # type: ignore[no-untyped-call]

    def _method(self, verb: str, kind: str) -> Callable[..., Awaitable[aiohttp.ClientResponse]]:
        group, stem, _ = _TYPES[kind]
        method: Callable[..., Awaitable[aiohttp.ClientResponse]] = getattr(
            self._groups[group], f"{verb}_namespaced_{stem}_without_preload_content")
        return method

    async def create_namespace(self, namespace: Obj) -> Obj:
        return await _json(self._core.create_namespace_without_preload_content(
            client.V1Namespace.model_validate(namespace)))

    async def read_namespace(self, name: str) -> Obj:
        return await _json(self._core.read_namespace_without_preload_content(name))

    async def label_namespace(self, name: str, labels: dict[str, str]) -> Obj:
        patch = {"metadata": {"labels": labels}}
        return await _json(self._core.patch_namespace_without_preload_content(
            name, patch, _content_type="application/merge-patch+json"))

    async def create(self, obj: Obj) -> Obj:
        """Create a namespaced object (a kind of ``_TYPES``) in its namespace; returns the stored object."""
        body = _TYPES[obj["kind"]][2].model_validate(obj)
        return await _json(self._method("create", obj["kind"])(obj["metadata"]["namespace"], body))

    async def read(self, kind: str, namespace: str, name: str) -> Obj:
        return await _json(self._method("read", kind)(name, namespace))

    async def replace(self, obj: Obj) -> Obj:
        """Overwrite an object; ``obj`` carries the resourceVersion it was read at (409 if it moved since)."""
        meta = obj["metadata"]
        body = _TYPES[obj["kind"]][2].model_validate(obj)
        return await _json(self._method("replace", obj["kind"])(meta["name"], meta["namespace"], body))

    async def patch(self, kind: str, namespace: str, name: str, patch: Obj) -> Obj:
        """A JSON merge patch to a namespaced object of a kind of ``_TYPES``."""
        return await _json(self._method("patch", kind)(name, namespace, patch,
                                                       _content_type="application/merge-patch+json"))

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete an object and what it owns (background cascade); ``False`` if it was gone."""
        try:
            await _json(self._method("delete", kind)(name, namespace, propagation_policy="Background"))
        except errors.NotFound:
            return False
        return True

    async def pod_metrics(self, namespace: str, selector: str) -> builtins.list[Obj]:
        """``metrics.k8s.io`` PodMetrics of the Pods matching ``selector``; ``NotFound`` when the API is not served."""
        body = await _json(self._custom.list_namespaced_custom_object_without_preload_content(
            "metrics.k8s.io", "v1beta1", namespace, "pods", label_selector=selector))
        return list(body.get("items") or [])

    async def resume_job(self, namespace: str, name: str) -> None:
        patch = {"spec": {"suspend": False}}
        await _json(self._batch.patch_namespaced_job_without_preload_content(
            name, namespace, patch, _content_type="application/merge-patch+json"))

    async def set_job_deadline(self, namespace: str, name: str, seconds: int) -> Obj:
        """Move a running Job's ``activeDeadlineSeconds`` (counted from its start): a sandbox's ``extend``."""
        patch = {"spec": {"activeDeadlineSeconds": seconds}}
        return await _json(self._batch.patch_namespaced_job_without_preload_content(
            name, namespace, patch, _content_type="application/merge-patch+json"))

    async def delete_job(self, namespace: str, name: str) -> bool:
        """Delete a Job with its Pods and owned Secret (background cascade); ``False`` if it was gone."""
        try:
            await _json(self._batch.delete_namespaced_job_without_preload_content(
                name, namespace, propagation_policy="Background"))
        except errors.NotFound:
            return False
        return True

    async def events(self, namespace: str, involved: str) -> list[Obj]:
        """The Events about object ``involved`` in ``namespace`` (why a Pod was not created or scheduled)."""
        body = await _json(self._core.list_namespaced_event_without_preload_content(
            namespace, field_selector=f"involvedObject.name={involved}"))
        return list(body.get("items") or [])

    # The engine leader's Lease (k8s/lease.py), in the gateway's own namespace.
    async def read_lease(self, namespace: str, name: str) -> Obj:
        return await _json(client.CoordinationV1Api(self._api).read_namespaced_lease_without_preload_content(
            name, namespace))

    async def create_lease(self, lease: Obj) -> Obj:
        return await _json(client.CoordinationV1Api(self._api).create_namespaced_lease_without_preload_content(
            lease["metadata"]["namespace"], client.V1Lease.model_validate(lease)))

    async def replace_lease(self, lease: Obj) -> Obj:
        """PUT at the resourceVersion ``lease`` was read at: 409 (``Conflict``) if it moved since."""
        meta = lease["metadata"]
        return await _json(client.CoordinationV1Api(self._api).replace_namespaced_lease_without_preload_content(
            meta["name"], meta["namespace"], client.V1Lease.model_validate(lease)))

    async def ping(self, selector: str) -> None:
        """One cheap authorised call (a list of at most one Job): raises unless the API server answers."""
        await _json(self._batch.list_job_for_all_namespaces_without_preload_content(label_selector=selector, limit=1))

    def _lister(self, kind: Kind) -> Callable[..., Awaitable[aiohttp.ClientResponse]]:
        group, name = _LISTS[kind]
        method: Callable[..., Awaitable[aiohttp.ClientResponse]] = getattr(
            self._groups[group], f"{name}_without_preload_content")
        return method

    async def list(self, kind: Kind, selector: str) -> tuple[list[Obj], str]:
        """Objects of ``kind`` in every namespace matching ``selector``, and the list's resourceVersion."""
        body = await _json(self._lister(kind)(label_selector=selector))
        return list(body.get("items") or []), str(body["metadata"]["resourceVersion"])

    async def watch(self, kind: Kind, selector: str, resource_version: str) -> AsyncIterator[WatchEvent]:
        """Changes after ``resource_version`` until the server ends the stream; raises ``Gone`` on 410."""
        request = self._lister(kind)(
            label_selector=selector, watch=True, resource_version=resource_version,
            allow_watch_bookmarks=True, timeout_seconds=WATCH_SECONDS, _request_timeout=WATCH_SECONDS + 30.0)
        async with _response(request) as resp:
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    status = event["object"]
                    raise _translate(ApiException(status=status.get("code"), reason=status.get("message")))
                yield WatchEvent(event["type"], event["object"])

    async def pod_log(self, namespace: str, name: str, container: str, *, follow: bool,
                      since_seconds: int | None = None) -> AsyncIterator[bytes]:
        """One container's log, each line prefixed with its timestamp; ``follow`` lasts until it terminates."""
        request = self._core.read_namespaced_pod_log_without_preload_content(
            name, namespace, container=container, follow=follow, timestamps=True, since_seconds=since_seconds,
            _request_timeout=STREAM_TIMEOUT)
        async with _response(request) as resp:
            async for chunk in resp.content.iter_any():
                yield chunk

    async def exec(self, namespace: str, pod: str, container: str, command: builtins.list[str], *,
                   stdin: bytes | None = None, sink: ExecSink | None = None, limit: int | None = None) -> ExecOutcome:
        """Run ``command`` in a container through ``pods/exec``: stdout and stderr apart, the exit code from
        the status channel. ``stdin`` is sent whole, then closed. Each stream keeps at most ``limit`` bytes
        (the sink sees only those too)."""
        try:
            # Through ``WsApiClient`` the call answers aiohttp's ``ws_connect``, not the typed response.
            connecting: Any = await self._ws_core.connect_get_namespaced_pod_exec_without_preload_content(
                pod, namespace, container=container, command=command, stdin=stdin is not None, stdout=True,
                stderr=True, tty=False, _headers={"sec-websocket-protocol": EXEC_PROTOCOL})
            async with connecting as ws:
                if stdin is not None:
                    for at in range(0, len(stdin), 65536):
                        await ws.send_bytes(bytes([_STDIN]) + stdin[at:at + 65536])
                    await ws.send_bytes(bytes([_CLOSE, _STDIN]))
                return await _exec_frames(ws, sink, limit)
        except aiohttp.WSServerHandshakeError as exc:
            raise errors.for_status(exc.status, f"Kubernetes exec: {exc.message}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.for_status(503, f"Kubernetes API unreachable: {exc}") from exc


async def _exec_frames(ws: aiohttp.ClientWebSocketResponse, sink: ExecSink | None,
                       limit: int | None) -> ExecOutcome:
    out: dict[int, list[bytes]] = {1: [], 2: []}
    kept = {1: 0, 2: 0}
    truncated = False
    status: Obj | None = None
    async for message in ws:
        if message.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            break
        data = message.data if isinstance(message.data, bytes) else str(message.data).encode()
        if not data:
            continue
        channel, payload = data[0], data[1:]
        if channel in out and payload:
            if limit is not None:
                room = max(0, limit - kept[channel])
                truncated = truncated or len(payload) > room
                payload = payload[:room]
                kept[channel] += len(payload)
            if not payload:
                continue
            out[channel].append(payload)
            if sink is not None:
                sink(channel, payload)
        elif channel == _STATUS:
            status = json.loads(payload)
    if status is None:
        raise errors.for_status(502, "Kubernetes exec: the stream ended without the command's status")
    return ExecOutcome(b"".join(out[1]), b"".join(out[2]), exit_code(status), truncated)
