"""The rules the API server enforces on Deployments, ReplicaSets and Ingresses that the schema cannot express."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from k8s.sim.selectors import matches

Obj = dict[str, Any]
_DNS_SUBDOMAIN = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
_PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")


def _selector_text(selector: Obj) -> str:
    return ",".join(f"{key}={value}" for key, value in (selector.get("matchLabels") or {}).items())


def _replicated(kind: str, obj: Obj) -> Iterator[str]:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    selector = spec.get("selector") or {}
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        yield "spec.selector: Required value"
    elif not matches(_selector_text(selector), labels):
        yield "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
    if (template.get("spec") or {}).get("restartPolicy", "Always") != "Always":
        yield f"spec.template.spec.restartPolicy: Unsupported value: only \"Always\" for a {kind}"
    if int(spec.get("replicas", 1)) < 0:
        yield "spec.replicas: must be greater than or equal to 0"
    if kind == "Deployment":
        deadline, ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds", 0)
        if deadline is not None and deadline <= ready:
            yield "spec.progressDeadlineSeconds: must be greater than minReadySeconds"


def _ingress(obj: Obj) -> Iterator[str]:
    spec = obj.get("spec") or {}
    if not spec.get("rules") and not spec.get("defaultBackend"):
        yield "spec: either `defaultBackend` or `rules` must be specified"
    for index, rule in enumerate(spec.get("rules") or []):
        host = rule.get("host")
        if host is not None and not _DNS_SUBDOMAIN.match(host):
            yield f"spec.rules[{index}].host: must be a DNS-1123 subdomain"
        for path in (rule.get("http") or {}).get("paths") or []:
            if path.get("pathType") not in _PATH_TYPES:
                yield f"spec.rules[{index}].http.paths.pathType: Unsupported value"
            if path.get("pathType") in ("Exact", "Prefix") and not str(path.get("path", "")).startswith("/"):
                yield f"spec.rules[{index}].http.paths.path: must be an absolute path"
            service = (path.get("backend") or {}).get("service") or {}
            port = service.get("port") or {}
            if service and ("name" in port) == ("number" in port):
                yield f"spec.rules[{index}].http.paths.backend.service.port: exactly one of name or number"


def errors(resource: str, obj: Obj) -> list[str]:
    if resource == "deployments":
        return list(_replicated("Deployment", obj))
    if resource == "replicasets":
        return list(_replicated("ReplicaSet", obj))
    if resource == "ingresses":
        return list(_ingress(obj))
    return []
