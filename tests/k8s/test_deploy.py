"""``deploy/``: manifests valid for Kubernetes 1.33, and RBAC that grants exactly what the runtime uses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml  # type: ignore[import-untyped]

from k8s import deployments, manifests
from k8s.client import KubeClient
from k8s.runtime import KubernetesRuntime
from k8s.sim import FakeCluster
from mcp_server import errors
from mcp_server.runtime.apps import AppSpec
from mcp_server.runtime.base import ExecRequest, RunSpec
from tests.k8s.apps_support import AppEvents, app_spec, phase, ref, revised
from tests.k8s.conftest import make_settings
from tests.runtime.support import Events

DEPLOY = Path(__file__).parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_deploy_manifest_is_valid_for_kubernetes_1_33(path: Path) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, "1.33.0", strict=True)


def rules(name: str) -> set[tuple[str, str, str]]:
    [role] = [doc for path in MANIFESTS for doc in documents(path)
              if doc["kind"] == "ClusterRole" and doc["metadata"]["name"] == name]
    return {(verb, group, resource) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_the_deployment_runs_three_non_root_replicas_ready_only_when_synced() -> None:
    docs = [doc for path in MANIFESTS for doc in documents(path)]
    [deployment] = [doc for doc in docs if doc["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    [budget] = [doc for doc in docs if doc["kind"] == "PodDisruptionBudget"]
    assert budget["spec"]["minAvailable"] == 2
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    [claim] = [doc for doc in docs if doc["kind"] == "PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # every replica reads the run logs
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "tcpSocket" in container["livenessProbe"]  # cheap: no database query, no cluster call
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBEGATE_RUNTIME"] == "kubernetes"
    secret = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert secret == {"KUBEGATE_DATABASE_URL": "kubegate-store", "KUBEGATE_RATE_LIMIT_STORAGE": "kubegate-store",
                      "KUBEGATE_SESSION_SECRET": "kubegate-store"}
    assert env["KUBEGATE_SERVICE_ACCOUNT"] == "kubegate/kubegate"


def test_the_image_is_built_in_two_stages_from_a_wheel_and_the_context_is_filtered() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and dockerfile.count("FROM python:3.11-slim") == 2
    assert "pip wheel" in dockerfile and "COPY --from=build /wheels" in dockerfile
    assert "COPY . " not in dockerfile  # no whole-tree copy: .git and a local data dir stay out
    assert "KUBEGATE_RUNTIME=kubernetes" in dockerfile
    assert 'CMD ["kubegate", "serve", "--host", "0.0.0.0"' in dockerfile
    ignored = (DEPLOY.parent / ".dockerignore").read_text().split()
    assert "*" in ignored and "**/.kubegate" in ignored and "!mcp_server/" in ignored


def test_the_gateway_has_a_network_policy_of_its_own() -> None:
    [policy] = [doc for path in MANIFESTS for doc in documents(path) if doc["kind"] == "NetworkPolicy"]
    assert policy["metadata"]["namespace"] == "kubegate"
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    [ingress] = policy["spec"]["ingress"]
    assert "namespaceSelector" in ingress["from"][0]
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {53, 443, 6443, 8080, 5432, 6379}
    # The sandboxes' port only towards kubegate's own namespaces.
    [sandboxes] = [rule for rule in policy["spec"]["egress"] if rule["ports"][0]["port"] == 8080]
    assert sandboxes["to"] == [{"namespaceSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "kubegate"}}}]


def test_the_admission_policy_binds_the_gateway_account_and_covers_every_kind_it_writes() -> None:
    docs = [doc for path in MANIFESTS for doc in documents(path)]
    [policy] = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    [binding] = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"] and policy["spec"]["failurePolicy"] == "Fail"
    [account] = [d for d in docs if d["kind"] == "ServiceAccount"]
    user = f"system:serviceaccount:{account['metadata']['namespace']}:{account['metadata']['name']}"
    assert user in policy["spec"]["matchConditions"][0]["expression"]
    covered = {(group, resource) for rule in policy["spec"]["matchConstraints"]["resourceRules"]
               for group in rule["apiGroups"] for resource in rule["resources"]}
    written = {(group, resource) for verb, group, resource in rules("kubegate") | rules("kubegate-runner")
               if verb in ("create", "update", "patch", "delete")}
    assert written == covered
    text = str(policy["spec"]["validations"])
    for rule in ("startsWith('kg-')", "pod-security.kubernetes.io/enforce", "serviceAccountName", "emptyDir",
                 "hostNetwork", "hostPID", "hostIPC", "hostPort", "hostUsers", "kubegate-runner", "ClusterIP"):
        assert rule in text


async def test_rbac_covers_every_call_the_runtime_makes_and_nothing_more(tmp_path: Path) -> None:
    """Cluster-wide calls are exactly the ``kubegate`` ClusterRole; calls inside user namespaces are exactly
    ``kubegate-runner`` plus the bootstrap RoleBinding; nothing is called in any other namespace."""
    async with FakeCluster() as cluster:
        policies = cluster.enforce(admission_documents(), GATEWAY)
        settings = make_settings(cluster, tmp_path)
        runtime = KubernetesRuntime(settings)
        events = Events(runtime)
        blocker = tmp_path / "never"
        try:
            done = RunSpec("task_done", "rbac@example.com", "busybox", ["sh", "-c", "echo ok"], env={"A": "1"})
            held = RunSpec("task_held", "rbac@example.com", "busybox",
                           ["sh", "-c", f"echo up; while [ ! -e {blocker} ]; do sleep 0.02; done"])
            await runtime.start(done)
            await runtime.start(held)
            await events.wait(done.run_id)
            assert (await events.next(held.run_id)).kind == "started"
            await use_a_sandbox(runtime, events)
            namespace = manifests.namespace_name("kg-", done.owner)
            await tamper_with_every_policy_object(cluster, namespace)
            await runtime.cancel(held.run_id)
            await events.wait(held.run_id)
            await runtime.remove(done.run_id)
            await exercise_every_app_call(runtime, tmp_path)
        finally:
            await events.close()
            await runtime.close()
        cluster.kubelet.node.cpu = 1.0  # a "large" run (2 CPUs) can never be scheduled: the start deadline reads why
        restarted = KubernetesRuntime(make_settings(cluster, tmp_path, start_timeout=0.2))
        events = Events(restarted)
        try:
            await restarted.recover([held])
            await restarted.cancel("task_elsewhere")
            stuck = RunSpec("task_stuck", "rbac@example.com", "busybox", ["true"], size="large")
            await restarted.start(stuck)
            assert "unschedulable" in str((await events.wait(stuck.run_id)).message)
        finally:
            await events.close()
            await restarted.close()
        assert cluster.invalid_writes == []
        assert policies.denials == []  # every write the gateway made passes its own admission policy
        cluster_wide = {(verb, group, resource) for verb, group, resource, ns in cluster.audit if not ns}
        inside = {(verb, group, resource) for verb, group, resource, ns in cluster.audit if ns}
        assert {ns for *_, ns in cluster.audit if ns} == {namespace}
        bootstrap = {("create", "rbac.authorization.k8s.io", "rolebindings")}
        assert cluster_wide | bootstrap == {rule for rule in rules("kubegate") if rule[0] != "bind"}
        assert inside == rules("kubegate-runner") | bootstrap


async def exercise_every_app_call(runtime: KubernetesRuntime, tmp_path: Path) -> None:
    """Create, scale, update, read logs and metrics of, make internal and delete one deployment."""
    reader = AppEvents(runtime.apps)
    try:
        spec = app_spec(tmp_path, owner="rbac@example.com", env={"A": "1"})
        await runtime.apps.apply(spec)
        await reader.until("web", phase("Ready", ready=1))
        await runtime.apps.apply(replace(spec, replicas=2))
        await runtime.apps.apply(revised(replace(spec, replicas=2), env={"A": "2"}, public=False))
        await reader.until("web", phase("Ready", ready=2, revision=2))
        assert await runtime.apps.read_logs(ref("web"), tail=5)
        assert (await runtime.apps.metrics(ref("web"))).available
        await runtime.apps.delete("web")
        await reader.gone("web")
    finally:
        await reader.close()


GATEWAY = "system:serviceaccount:kubegate:kubegate"


async def use_a_sandbox(runtime: KubernetesRuntime, events: Events) -> None:
    """Every call a sandbox makes: its objects, exec, both file ways, stats, extend, removal."""
    sandbox = RunSpec("sandbox_rbac", "rbac@example.com", "ubuntu", ["agent"], env={"KUBEGATE_SANDBOX_PASSWORD": "p"})
    await runtime.workloads.start(sandbox, port=8080)
    await events.wait(sandbox.run_id, "ready")
    assert (await runtime.workloads.exec(sandbox.run_id, ExecRequest(["true"]))).exit_code == 0
    await runtime.workloads.write_file(sandbox.run_id, "f", b"x")
    assert await runtime.workloads.read_file(sandbox.run_id, "f", limit=10) == b"x"
    assert (await runtime.workloads.stats(sandbox.run_id)).processes > 0
    await runtime.workloads.extend(sandbox.run_id, datetime.now(UTC) + timedelta(hours=1))
    await runtime.remove(sandbox.run_id)


def admission_documents() -> list[dict[str, Any]]:
    return documents(DEPLOY / "kubernetes" / "admission.yaml")


def hostile_job(namespace: str, run_id: str = "task_evil", **pod: Any) -> dict[str, Any]:
    job = manifests.job(RunSpec(run_id, "mallory", "busybox", ["cat", "/etc/shadow"]), namespace, ttl_seconds=60)
    job["spec"]["template"]["spec"].update(pod)
    return job


def hostile_deployment(namespace: str, name: str = "shop", **pod: Any) -> dict[str, Any]:
    deployment = deployments.deployment(AppSpec(name, "mallory", "busybox", 8080), namespace)
    deployment["spec"]["template"]["spec"].update(pod)
    return deployment


async def test_the_admission_policy_stops_what_a_compromised_gateway_would_try(tmp_path: Path) -> None:
    async with FakeCluster() as cluster:
        policies = cluster.enforce(admission_documents(), GATEWAY)
        cluster.store.create("namespaces", None, {"metadata": {"name": "kube-system"}})
        ours = manifests.namespace_name("kg-", "alice")
        cluster.store.create("namespaces", None, {"metadata": {"name": ours, "labels": {
            "app.kubernetes.io/managed-by": "kubegate", "pod-security.kubernetes.io/enforce": "restricted"}}})
        kube = await KubeClient.connect(cluster.kubeconfig_path)
        try:
            await kube.create(hostile_job(ours))  # what kubegate itself writes is allowed
            scratch = [{"name": "scratch", "emptyDir": {}}]
            await kube.create(hostile_job(ours, "task_ok", hostUsers=False, volumes=scratch))
            await kube.create(hostile_deployment(ours))  # a deployment as kubegate writes it is allowed
            attempts = [
                kube.create(hostile_deployment(ours, "evil-1", hostNetwork=True)),
                kube.create(hostile_deployment(ours, "evil-2", serviceAccountName="admin")),
                kube.create(hostile_deployment(ours, "evil-3", volumes=[{"name": "root", "hostPath": {"path": "/"}}])),
                kube.create(hostile_job("kube-system")),
                kube.create(hostile_job(ours, serviceAccountName="admin")),
                kube.create(hostile_job(ours, automountServiceAccountToken=True)),
                kube.create(hostile_job(ours, volumes=[{"name": "root", "hostPath": {"path": "/"}}])),
                kube.create(hostile_job(ours, volumes=[{"name": "token", "secret": {"secretName": "x"}}])),
                kube.create(hostile_job(ours, hostNetwork=True)),
                kube.create(hostile_job(ours, hostPID=True)),
                kube.create(hostile_job(ours, hostUsers=True)),
                kube.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments"}}),
                kube.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kg-loose",
                                       "labels": {"app.kubernetes.io/managed-by": "kubegate"}}}),
                kube.label_namespace("kube-system", {"app.kubernetes.io/managed-by": "kubegate",
                                                     "pod-security.kubernetes.io/enforce": "restricted"}),
                kube.create({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                             "metadata": {"name": "open", "namespace": "kube-system"},
                             "spec": {"podSelector": {}, "ingress": [{}]}}),
                kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "out", "namespace": ours},
                             "spec": {"type": "NodePort", "selector": {"a": "b"}, "ports": [{"port": 80}]}}),
                kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": ours},
                             "spec": {"externalIPs": ["192.0.2.1"], "selector": {"a": "b"}, "ports": [{"port": 80}]}}),
                kube.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                             "metadata": {"name": "me", "namespace": ours},
                             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                         "name": "cluster-admin"},
                             "subjects": [{"kind": "ServiceAccount", "name": "kubegate", "namespace": "kubegate"}]}),
            ]
            for attempt in attempts:
                with pytest.raises(errors.KubegateError, match="denied request"):
                    await attempt
        finally:
            await kube.close()
        assert len(policies.denials) == len(attempts)
        assert [job["metadata"]["namespace"] for job in cluster.objects("jobs")] == [ours, ours]
        assert [d["metadata"]["name"] for d in cluster.objects("deployments")] == ["shop"]


async def tamper_with_every_policy_object(cluster: FakeCluster, namespace: str) -> None:
    """What a tenant with edit rights (or a careless admin) might do; the gateway must put all of it back."""
    def strip(obj: dict[str, Any]) -> None:
        obj.pop("spec", None)
        if obj["kind"] == "NetworkPolicy":
            obj["spec"] = {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}
        elif obj["kind"] == "ResourceQuota":
            obj["spec"] = {"hard": {"pods": "1000"}}
        elif obj["kind"] == "LimitRange":
            obj["spec"] = {"limits": [{"type": "Container"}]}
        elif obj["kind"] == "RoleBinding":
            obj["subjects"] = [{"kind": "ServiceAccount", "name": "intruder", "namespace": namespace}]
    for resource, name in (("networkpolicies", "kubegate-default-deny"), ("resourcequotas", "kubegate"),
                           ("limitranges", "kubegate"), ("rolebindings", "kubegate-runner")):
        cluster.store.update(resource, namespace, name, strip)
    cluster.store.update("namespaces", None, namespace,
                         lambda ns: ns["metadata"]["labels"].pop("pod-security.kubernetes.io/warn"))
    await cluster.wait_until(lambda: policy_intact(cluster, namespace))


def policy_intact(cluster: FakeCluster, namespace: str) -> bool:
    [ns] = [n for n in cluster.objects("namespaces") if n["metadata"]["name"] == namespace]
    deny = [p for p in cluster.objects("networkpolicies") if p["metadata"]["name"] == "kubegate-default-deny"]
    quota = cluster.objects("resourcequotas")
    binding = cluster.objects("rolebindings")
    limits = cluster.objects("limitranges")
    return ("pod-security.kubernetes.io/warn" in ns["metadata"]["labels"]
            and bool(deny) and deny[0]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
            and bool(quota) and quota[0]["spec"]["hard"].get("pods") == "8"
            and bool(binding) and binding[0]["subjects"][0]["name"] == "kubegate"
            and bool(limits) and "max" in limits[0]["spec"]["limits"][0])
