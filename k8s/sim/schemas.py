"""Strict OpenAPI validation of objects, one compiled validator per kind (Kubernetes 1.33 schemas).

``kubernetes_validate.validate`` reads and parses the whole definitions file on every call,
which made each write to the fake cluster cost milliseconds; the schemas never change, so the
validator for each (apiVersion, kind) is built once from the same bundled files and kept.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

VERSION = "1.33.0"
_DIR = "kubernetes-json-schema/v1.33.0-local-strict"


@functools.cache
def _definitions() -> Registry[Any]:
    return Resource.from_contents(schema_contents(f"{_DIR}/_definitions.json", VERSION)) @ Registry()


@functools.cache
def _validator(api_version: str, kind: str) -> Any:
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = schema_contents(f"{_DIR}/{kind.lower()}-{group}.json", VERSION)
    registry = Resource.from_contents(schema) @ _definitions()
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def schema_error(obj: dict[str, Any]) -> str | None:
    """The first way ``obj`` breaks its kind's strict schema, ``None`` when it fits."""
    try:
        error = jsonschema.exceptions.best_match(_validator(obj["apiVersion"], obj["kind"]).iter_errors(obj))
    except FileNotFoundError:
        return f"no schema for {obj['apiVersion']}/{obj['kind']}"
    return None if error is None else str(error.message)
