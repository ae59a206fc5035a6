"""A fake Kubernetes cluster for tests and local runs: API server, Job controller and kubelet in one process.

Not a general-purpose emulator: it serves the resources and verbs kubegate uses (namespaces,
secrets, pods with ``pods/exec`` over WebSocket, jobs, services, events, networkpolicies,
resourcequotas, limitranges, roles, rolebindings, leases), validates every write against the
Kubernetes OpenAPI schema, admits Pods against ResourceQuotas and RuntimeClasses, and runs Pod
containers as local processes.
"""

from k8s.sim.admission import MeshInjector
from k8s.sim.cluster import FakeCluster, kubeconfig
from k8s.sim.kubelet import UNPULLABLE_REGISTRY
from k8s.sim.store import InvalidWrite

__all__ = ["UNPULLABLE_REGISTRY", "FakeCluster", "InvalidWrite", "MeshInjector", "kubeconfig"]
