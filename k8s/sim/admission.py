"""Admission the fake API server applies to new Pods: ResourceQuota, RuntimeClass, a mesh injector.

``quota`` refuses a Pod whose requests or limits would take a namespace past a ResourceQuota,
or that leaves out a resource the quota constrains, with the API server's wording (the Job
controller turns that into a ``FailedCreate`` Event). ``runtime_classes`` refuses an unknown
``runtimeClassName``. ``MeshInjector`` adds a proxy container the way Istio's webhook does,
honouring the opt-out label unless told to ignore it (a misconfigured mesh).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from k8s.sim.store import ApiError, Obj, Store

_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}


def quantity(text: str) -> float:
    found = _QUANTITY.match(str(text))
    if not found or found.group(2) not in _SUFFIX:
        raise ApiError(422, "Invalid", f"quantities must match the regular expression: {text!r}")
    return float(found.group(1)) * _SUFFIX[found.group(2)]


def _usage(pod: Obj) -> dict[str, float]:
    used: dict[str, float] = {"pods": 1.0}
    for container in pod["spec"]["containers"]:
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for name, value in (resources.get(kind) or {}).items():
                used[f"{kind}.{name}"] = used.get(f"{kind}.{name}", 0.0) + quantity(value)
                if kind == "requests":
                    used[name] = used.get(name, 0.0) + quantity(value)
    return used


def quota(store: Store) -> Callable[[str, Obj], None]:
    def admit(resource: str, pod: Obj) -> None:
        if resource != "pods":
            return
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        quotas = store.peek("resourcequotas", namespace)
        if not quotas:
            return
        live = [_usage(p) for p in store.peek("pods", namespace)
                if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
        wanted = _usage(pod)
        for rq in quotas:
            hard = rq["spec"].get("hard") or {}
            missing = sorted(key for key in hard if key not in wanted)
            if missing:
                raise ApiError(403, "Forbidden", f'pods "{name}" is forbidden: failed quota: {rq["metadata"]["name"]}: '
                                                 f"must specify {','.join(missing)}")
            for key, limit in hard.items():
                used = sum(usage.get(key, 0.0) for usage in live)
                if used + wanted[key] > quantity(limit) + 1e-9:
                    raise ApiError(403, "Forbidden", f'pods "{name}" is forbidden: exceeded quota: '
                                                     f'{rq["metadata"]["name"]}, requested: {key}={wanted[key]:g}, '
                                                     f"used: {key}={used:g}, limited: {key}={limit}")
    return admit


def runtime_classes(known: set[str]) -> Callable[[str, Obj], None]:
    def admit(resource: str, pod: Obj) -> None:
        wanted = pod.get("spec", {}).get("runtimeClassName") if resource == "pods" else None
        if wanted and wanted not in known:
            raise ApiError(403, "Forbidden", f'pods "{pod["metadata"]["name"]}" is forbidden: pod rejected: '
                                             f'RuntimeClass "{wanted}" not found')
    return admit


class MeshInjector:
    """Puts an ``istio-proxy`` container first in every new Pod, unless the Pod opted out (or ``forced``)."""

    def __init__(self, *, forced: bool = False) -> None:
        self.forced = forced
        self.injected = 0

    def __call__(self, resource: str, pod: Obj) -> None:
        if resource != "pods":
            return
        if not self.forced and (pod["metadata"].get("labels") or {}).get("sidecar.istio.io/inject") == "false":
            return
        proxy = {"name": "istio-proxy", "image": "istio/proxyv2:1.26", "command": ["sh", "-c", "echo proxy ready"],
                 "resources": {kind: {"cpu": "10m", "memory": "40Mi", "ephemeral-storage": "10Mi"}
                               for kind in ("requests", "limits")}}
        pod["spec"]["containers"].insert(0, proxy)
        self.injected += 1
