"""What every user namespace must hold before anything of that user runs in it (pure builders).

A user namespace is safe to run in when it carries the Pod Security labels (``restricted``,
enforced, warned and audited at a pinned version), a RoleBinding that gives the gateway the
``kubegate-runner`` ClusterRole there (the only place it may write Jobs and Secrets), a
default-deny NetworkPolicy for ingress and egress, an egress allowance for Pods labelled
``network=allowed`` (DNS, and the internet minus the cluster's own ranges), a ResourceQuota and
a LimitRange. ``NamespacePolicy`` derives those objects from the settings once; ``k8s.namespaces``
makes a cluster match them. Any kind of workload (runs, sandboxes) reuses both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp_server.config import Settings
from mcp_server.runtime.base import SIZES, SizeName

Manifest = dict[str, Any]

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "kubegate"
SELECTOR = f"{MANAGED_BY}={MANAGER}"
OWNER_LABEL = "kubegate.dev/owner"
OWNER_ANNOTATION = "kubegate.dev/owner"
NETWORK_LABEL = "kubegate.dev/network"
RUNNER_ROLE = "kubegate-runner"
DENY_ALL = "kubegate-default-deny"
ALLOW_NETWORK = "kubegate-network"
QUOTA = "kubegate"
PSA = "pod-security.kubernetes.io"
EPHEMERAL_MIB: Mapping[SizeName, int] = {"small": 1024, "medium": 4096, "large": 10240}
"""Scratch disk per size: without a limit one run's writes could fill the node and evict other tenants."""


def size_quantities(size: SizeName) -> dict[str, str]:
    chosen = SIZES[size]
    return {"cpu": f"{chosen.cpu_millis}m", "memory": f"{chosen.memory_mib}Mi",
            "ephemeral-storage": f"{EPHEMERAL_MIB[size]}Mi"}


def pairs(text: str, what: str) -> dict[str, str]:
    """``a=1,b=2`` as a dict; a malformed entry is a configuration error, not something to skip."""
    result: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what}: {item!r} is not key=value")
        result[key.strip()] = value.strip()
    return result


def tolerations(text: str) -> list[Manifest]:
    """``key=value:Effect`` / ``key:Effect`` entries as Pod tolerations."""
    result: list[Manifest] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        target, _, effect = item.rpartition(":")
        key, sep, value = target.partition("=")
        if not key or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(f"KUBEGATE_TOLERATIONS: {item!r} is not key[=value]:Effect")
        toleration = {"key": key, "operator": "Equal" if sep else "Exists", "effect": effect}
        if sep:
            toleration["value"] = value
        result.append(toleration)
    return result


@dataclass(frozen=True, slots=True)
class NamespacePolicy:
    prefix: str
    account_namespace: str
    account_name: str
    pod_security_version: str
    except_v4: tuple[str, ...]
    except_v6: tuple[str, ...]
    dns_namespace: str
    dns_labels: Mapping[str, str]
    quota: Mapping[str, str]

    @classmethod
    def from_settings(cls, settings: Settings) -> NamespacePolicy:
        account_namespace, _, account_name = settings.service_account.partition("/")
        if not account_name:
            raise ValueError("KUBEGATE_SERVICE_ACCOUNT must be namespace/name")
        ranges = [ipaddress.ip_network(part.strip()) for part in settings.egress_except.split(",") if part.strip()]
        return cls(
            prefix=settings.namespace_prefix, account_namespace=account_namespace, account_name=account_name,
            pod_security_version=settings.pod_security_version,
            except_v4=tuple(str(net) for net in ranges if net.version == 4),
            except_v6=tuple(str(net) for net in ranges if net.version == 6),
            dns_namespace=settings.dns_namespace, dns_labels=pairs(settings.dns_selector, "KUBEGATE_DNS_SELECTOR"),
            quota=pairs(settings.quota, "KUBEGATE_QUOTA"))

    def namespace_labels(self, owner_label: str) -> dict[str, str]:
        labels = {MANAGED_BY: MANAGER, OWNER_LABEL: owner_label}
        for mode in ("enforce", "warn", "audit"):
            labels[f"{PSA}/{mode}"] = "restricted"
            labels[f"{PSA}/{mode}-version"] = self.pod_security_version
        return labels

    def namespace(self, name: str, owner: str, owner_label: str) -> Manifest:
        return {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": self.namespace_labels(owner_label),
                             "annotations": {OWNER_ANNOTATION: owner}}}

    def objects(self, namespace: str) -> list[Manifest]:
        """The namespace's contents, in the order they must be made (the RoleBinding lets us make the rest)."""
        return [self.role_binding(namespace), self.deny_all(namespace), self.allow_network(namespace),
                self.resource_quota(namespace), self.limit_range(namespace)]

    def role_binding(self, namespace: str) -> Manifest:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta(RUNNER_ROLE,
                namespace), "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                        "name": RUNNER_ROLE},
                "subjects": [{"kind": "ServiceAccount", "name": self.account_name,
                              "namespace": self.account_namespace}]}

    def deny_all(self, namespace: str) -> Manifest:
        """No traffic in or out of any Pod here unless another policy of ours allows it."""
        return _network_policy(DENY_ALL, namespace, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})

    def allow_network(self, namespace: str) -> Manifest:
        """``network: true`` runs: DNS, and any address outside the cluster, link-local and metadata ranges."""
        dns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.dns_namespace}},
               "podSelector": {"matchLabels": dict(self.dns_labels)}}
        blocks = [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(self.except_v4)}},
                  {"ipBlock": {"cidr": "::/0", "except": list(self.except_v6)}}]
        for block in blocks:
            if not block["ipBlock"]["except"]:
                del block["ipBlock"]["except"]
        return _network_policy(ALLOW_NETWORK, namespace, {
            "podSelector": {"matchLabels": {NETWORK_LABEL: "allowed"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [dns], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                       {"to": blocks}],
        })

    def resource_quota(self, namespace: str) -> Manifest:
        return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta(QUOTA, namespace),
                "spec": {"hard": dict(self.quota)}}

    def limit_range(self, namespace: str) -> Manifest:
        """Every container gets the smallest size by default and no more than the largest."""
        return {"apiVersion": "v1", "kind": "LimitRange", "metadata": _meta(QUOTA, namespace),
                "spec": {"limits": [{"type": "Container", "default": size_quantities("small"),
                                     "defaultRequest": size_quantities("small"),
                                     "max": size_quantities("large")}]}}


def _meta(name: str, namespace: str) -> Manifest:
    return {"name": name, "namespace": namespace, "labels": {MANAGED_BY: MANAGER}}


def _network_policy(name: str, namespace: str, spec: Manifest) -> Manifest:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(name, namespace),
            "spec": spec}


def drifted(desired: Manifest, actual: Manifest) -> bool:
    """Whether ``actual`` lost a label or any field of ``desired`` (server-added fields do not count)."""
    labels = actual.get("metadata", {}).get("labels") or {}
    if any(labels.get(key) != value for key, value in desired["metadata"].get("labels", {}).items()):
        return True
    return any(actual.get(key) != value for key, value in desired.items()
               if key not in ("apiVersion", "kind", "metadata"))
