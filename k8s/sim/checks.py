"""Rules the API server enforces that the OpenAPI schema cannot express: names, labels, keys."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

from k8s.sim import appchecks, services

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
_QUALIFIED = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ENV_NAME = re.compile(r"^[^=]+$")
_LABEL_NAMED = {"namespaces", "jobs"}
"""Names that must be DNS labels: namespaces by rule, Jobs because their name becomes a label value."""


def _qualified_name_errors(key: str, what: str) -> Iterator[str]:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        yield f"{what} key {key!r}: prefix must be a DNS subdomain"
    if not _QUALIFIED.match(name):
        yield f"{what} key {key!r}: name must be <=63 alphanumerics, '-', '_' or '.'"


def _meta_errors(resource: str, meta: dict[str, Any]) -> Iterator[str]:
    name = str(meta.get("name") or "")
    pattern = _DNS_LABEL if resource in _LABEL_NAMED else _DNS_SUBDOMAIN
    if not pattern.match(name):
        yield f"metadata.name {name!r} is not a valid DNS name"
    yield from _labels_errors(meta.get("labels") or {}, "metadata.labels")
    for key in meta.get("annotations") or {}:
        yield from _qualified_name_errors(key, "metadata.annotations")


def _labels_errors(labels: dict[str, str], where: str) -> Iterator[str]:
    for key, value in labels.items():
        yield from _qualified_name_errors(key, where)
        if not _LABEL_VALUE.match(value):
            yield f"{where}[{key}]: invalid label value {value!r}"


def _pod_spec_errors(spec: dict[str, Any], where: str) -> Iterator[str]:
    if spec.get("restartPolicy") not in (None, "Always", "OnFailure", "Never"):
        yield f"{where}.restartPolicy: unsupported value"
    for container in spec.get("containers") or []:
        if not _DNS_LABEL.match(container.get("name", "")):
            yield f"{where}.containers: invalid name {container.get('name')!r}"
        for env in container.get("env") or []:
            if not _ENV_NAME.match(env.get("name", "")):
                yield f"{where}.containers.env: invalid name {env.get('name')!r}"


def semantic_errors(resource: str, obj: dict[str, Any]) -> list[str]:
    """Every rule ``obj`` breaks, as one message each."""
    problems = list(_meta_errors(resource, obj.get("metadata") or {}))
    if resource == "secrets":
        for key, value in (obj.get("data") or {}).items():
            if not _SECRET_KEY.match(key):
                problems.append(f"data[{key!r}]: invalid key")
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                problems.append(f"data[{key!r}]: not base64")
    if resource == "services":
        problems += services.errors(obj)
        problems += _labels_errors((obj.get("spec") or {}).get("selector") or {}, "spec.selector")
    if resource == "pods":
        problems += _pod_spec_errors(obj.get("spec") or {}, "spec")
    if resource == "jobs":
        template = obj.get("spec", {}).get("template", {})
        problems += _labels_errors(template.get("metadata", {}).get("labels") or {}, "spec.template.metadata.labels")
        spec = template.get("spec") or {}
        problems += _pod_spec_errors(spec, "spec.template.spec")
        if spec.get("restartPolicy") not in ("Never", "OnFailure"):
            problems.append("spec.template.spec.restartPolicy: must be Never or OnFailure for a Job")
    problems += appchecks.errors(resource, obj)
    return problems
