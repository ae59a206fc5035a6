"""Services in the fake cluster: the API server's defaults and rules, and where a Service can be reached.

A real Service gets a virtual ``clusterIP`` that kube-proxy routes to its Pods. Here
``k8s.sim.proxy`` gives it a loopback one and routes it to its ready Pods' addresses
(``k8s.sim.podnet``), so ``clusterIP:port`` works from any process on this machine
(``FakeCluster.service_address``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

Obj = dict[str, Any]



_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")


def defaulter(allocate: Callable[[Obj], None] | None = None) -> Callable[[Obj], None]:
    """What the API server fills in on create: a cluster IP and the policy defaults.

    ``allocate`` picks the cluster IP (the fake cluster's proxy: a reachable one); without it, or
    when it finds none, one from 10.96.0.0/12, as the default service range.
    """
    addresses = itertools.count(10)

    def default(service: Obj) -> None:
        if allocate is not None:
            allocate(service)
        spec = service.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName" and spec.get("clusterIP") != "None":
            number = next(addresses)
            spec.setdefault("clusterIP", f"10.96.{number // 250}.{number % 250 + 1}")
            spec["clusterIPs"] = [spec["clusterIP"]]
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        service["status"] = {"loadBalancer": {}}
    return default


def errors(service: dict[str, Any]) -> Iterator[str]:
    """The Service rules the schema cannot express (validation.ValidateService, the parts kubegate meets)."""
    name = str((service.get("metadata") or {}).get("name") or "")
    if not _DNS_1035.match(name):
        yield f"metadata.name {name!r}: a Service name must be a DNS-1035 label (start with a letter)"
    spec = service.get("spec") or {}
    if spec.get("type", "ClusterIP") not in _TYPES:
        yield f"spec.type: unsupported value {spec.get('type')!r}"
    ports = spec.get("ports") or []
    if not ports and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
        yield "spec.ports: Required value"
    names = [port.get("name") for port in ports]
    if len(ports) > 1 and (None in names or len(set(names)) != len(names)):
        yield "spec.ports: names are required and must be unique when there are several ports"
    for index, port in enumerate(ports):
        if not 1 <= int(port.get("port", 0)) <= 65535:
            yield f"spec.ports[{index}].port: must be between 1 and 65535"
        target = port.get("targetPort", 1)
        if isinstance(target, int) and not 1 <= target <= 65535:
            yield f"spec.ports[{index}].targetPort: must be between 1 and 65535"
        if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
            yield f"spec.ports[{index}].protocol: unsupported value"
