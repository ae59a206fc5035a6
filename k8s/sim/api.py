"""The HTTP face of the fake cluster: the Kubernetes REST paths the runtime uses, as a Starlette app.

``/api/v1/...`` and ``/apis/{group}/{version}/...`` are parsed into (namespace, resource, name,
subresource) and dispatched to the store; list, watch (``?watch=true``, newline-delimited
events, ``resourceVersion`` resume, ``timeoutSeconds``), create, merge/strategic patch,
replace (PUT, resourceVersion-checked), delete with ``propagationPolicy`` and
``gracePeriodSeconds``, ``fieldSelector`` on lists and ``pods/{name}/log`` (``container``,
``follow``, ``timestamps``, ``sinceSeconds``) are served. Every call is recorded as an RBAC-style
``(verb, group, resource, namespace)`` tuple in ``audit`` (namespace ``""``: cluster-wide).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from k8s.sim import metrics
from k8s.sim.execs import Exec
from k8s.sim.kubelet import Kubelet
from k8s.sim.policies import AdmissionPolicies, Write
from k8s.sim.store import RESOURCES, ApiError, Obj, Store, Watcher

Audit = set[tuple[str, str, str, str]]
_MERGE_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


@dataclass(frozen=True, slots=True)
class Target:
    group: str
    resource: str
    namespace: str | None
    name: str | None
    subresource: str | None


def parse(path: str) -> Target:
    parts = [part for part in path.split("/") if part]
    if parts[:2] == ["api", "v1"]:
        group, group_version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, group_version, rest = parts[1], f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource: {path}")
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or rest[0] not in RESOURCES or RESOURCES[rest[0]].group_version != group_version or len(rest) > 3:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource: {path}")
    return Target(group, rest[0], namespace, *(rest[1:] + [None, None])[:2])


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge patches are applied the same way here)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _verb(method: str, target: Target, query: Any) -> str:
    if method == "GET":
        if target.name is not None:
            return "get"
        return "watch" if query.get("watch") in ("true", "1") else "list"
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]


class Api:
    def __init__(self, store: Store, kubelet: Kubelet, audit: Audit) -> None:
        self.store, self.kubelet, self.audit = store, kubelet, audit
        self.watches_open = asyncio.Event()
        self.watches_open.set()
        self.metrics_served = True
        self.policies: AdmissionPolicies | None = None
        """ValidatingAdmissionPolicies applied to every write over HTTP (``FakeCluster.enforce``)."""

    def _admit(self, verb: str, target: Target, name: str, obj: Obj | None, old: Obj | None) -> None:
        if self.policies is None:
            return
        namespace_obj = None
        if target.namespace:
            try:
                namespace_obj = self.store.get("namespaces", None, target.namespace)
            except ApiError:
                pass
        version = RESOURCES[target.resource].group_version.rpartition("/")[2]
        self.policies.admit(Write(verb, target.group, version, target.resource, target.namespace, name, obj, old,
                                  namespace_obj))

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
        return Starlette(routes=[WebSocketRoute("/api/v1/namespaces/{namespace}/pods/{name}/exec", self.exec),
                                 Route("/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods", self.metrics),
                                 Route("/{path:path}", self.handle, methods=methods)])

    async def metrics(self, request: Request) -> Response:
        """PodMetrics (``k8s.sim.metrics``), or 404 when the cluster serves no metrics API."""
        namespace = request.path_params["namespace"]
        self.audit.add(("list", "metrics.k8s.io", "pods", namespace))
        if not self.metrics_served:
            error = ApiError(404, "NotFound", "the server could not find the requested resource")
            return JSONResponse(error.status(), status_code=404)
        return JSONResponse(metrics.pod_metrics(self.store, self.kubelet.containers_of, namespace,
                                                request.query_params.get("labelSelector")))

    async def exec(self, websocket: WebSocket) -> None:
        """``pods/exec``: RBAC asks ``create`` of it, whichever method opens the WebSocket."""
        namespace, name = websocket.path_params["namespace"], websocket.path_params["name"]
        self.audit.add(("create", "", "pods/exec", namespace))
        await Exec(self.kubelet).serve(websocket, namespace, name)

    async def handle(self, request: Request) -> Response:
        try:
            target = parse(request.url.path)
            verb = _verb(request.method, target, request.query_params)
            resource = f"{target.resource}/{target.subresource}" if target.subresource else target.resource
            self.audit.add((verb, target.group, resource, target.namespace or ""))
            return await self._dispatch(request, verb, target)
        except ApiError as exc:
            return JSONResponse(exc.status(), status_code=exc.code)

    async def _dispatch(self, request: Request, verb: str, target: Target) -> Response:
        query = request.query_params
        store, ns = self.store, target.namespace
        if target.subresource == "log" and target.resource == "pods" and verb == "get":
            since = query.get("sinceSeconds")
            chunks = await self.kubelet.log(ns or "", target.name or "", query.get("container"),
                                            follow=query.get("follow") == "true",
                                            timestamps=query.get("timestamps") == "true",
                                            since_seconds=int(since) if since else None)
            return StreamingResponse(chunks, media_type="text/plain")
        if target.subresource is not None:
            raise ApiError(404, "NotFound", f"subresource {target.subresource} is not served")
        if verb == "list":
            items = store.list(target.resource, ns, query.get("labelSelector"), query.get("fieldSelector"))
            info = RESOURCES[target.resource]
            body = {"apiVersion": info.group_version, "kind": f"{info.kind}List",
                    "metadata": {"resourceVersion": store.resource_version}, "items": items}
            return JSONResponse(body)
        if verb == "watch":
            await self.watches_open.wait()
            return self._watch(target, query.get("labelSelector"), query.get("resourceVersion"),
                               float(query.get("timeoutSeconds") or 1800))
        name = target.name or ""
        if verb == "get":
            return JSONResponse(store.get(target.resource, ns, name))
        if verb == "create":
            sent = await _body(request)
            if RESOURCES[target.resource].namespaced:
                sent.setdefault("metadata", {})["namespace"] = ns
            self._admit(verb, target, str(sent.get("metadata", {}).get("name") or ""), sent, None)
            return JSONResponse(store.create(target.resource, ns, sent), status_code=201)
        if verb == "patch":
            return JSONResponse(await self._patch(request, target, name))
        if verb == "update":
            sent = await _body(request)
            self._admit(verb, target, name, sent, store.get(target.resource, ns, name))
            return JSONResponse(store.replace(target.resource, ns, name, sent))
        if verb == "delete":
            self._admit(verb, target, name, None, store.get(target.resource, ns, name))
            options = await _body(request, required=False)
            policy = query.get("propagationPolicy") or options.get("propagationPolicy")
            grace = query.get("gracePeriodSeconds") or options.get("gracePeriodSeconds")
            seconds = None if grace is None else float(grace)
            return JSONResponse(store.delete(target.resource, ns, name, policy, seconds))
        raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported by the fake cluster")

    async def _patch(self, request: Request, target: Target, name: str) -> Obj:
        resource, namespace = target.resource, target.namespace
        content_type = request.headers.get("content-type", "").split(";")[0]
        if content_type not in _MERGE_TYPES:
            raise ApiError(415, "UnsupportedMediaType", f"patch type {content_type} is not supported")
        patch = await _body(request)

        def apply(obj: Obj) -> None:
            merged = merge_patch(obj, patch)
            for fixed in ("name", "namespace", "uid", "creationTimestamp"):
                if obj["metadata"].get(fixed) != merged["metadata"].get(fixed):
                    raise ApiError(422, "Invalid", f"metadata.{fixed}: field is immutable")
            self._admit("patch", target, name, merged, obj)
            obj.clear()
            obj.update(merged)
        return self.store.update(resource, namespace, name, apply)

    def _watch(self, target: Target, selector: str | None, since: str | None, timeout: float) -> Response:
        try:
            watcher = self.store.watch(target.resource, target.namespace, selector, since)
        except ApiError as exc:
            # A real API server answers an expired resourceVersion inside the stream, with 200.
            line = json.dumps({"type": "ERROR", "object": exc.status()}) + "\n"
            return Response(line, media_type="application/json")
        return StreamingResponse(self._events(watcher, timeout), media_type="application/json")

    async def _events(self, watcher: Watcher, timeout: float) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    return
                if event is None:
                    return
                yield json.dumps(event) + "\n"
        finally:
            self.store.unwatch(watcher)


async def _body(request: Request, *, required: bool = True) -> Obj:
    raw = await request.body()
    if not raw:
        if required:
            raise ApiError(400, "BadRequest", "request body is required")
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "body must be a JSON object")
    return body
