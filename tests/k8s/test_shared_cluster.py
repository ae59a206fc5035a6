"""The Kubernetes runtime on a shared cluster: each finding of the security review, through the official client."""

from __future__ import annotations

import asyncio
import itertools
import shlex
from pathlib import Path
from typing import Any

import anyio
import pytest

from k8s import manifests
from k8s.runtime import KubernetesRuntime
from k8s.sim import FakeCluster, MeshInjector
from k8s.sim.store import ApiError
from mcp_server import errors
from mcp_server.runtime.base import RunSpec
from tests.k8s.conftest import make_settings
from tests.runtime.support import Events

_ids = itertools.count()
OWNER = "tenant@example.com"
NAMESPACE = manifests.namespace_name("kg-", OWNER)


def spec(script: str, **kwargs: Any) -> RunSpec:
    return RunSpec(run_id=f"task_s{next(_ids)}", owner=OWNER, image="busybox:1.36", command=["sh", "-c", script],
                   **kwargs)


def selector(run: RunSpec) -> str:
    return f"{manifests.RUN_LABEL}={manifests.label_value(run.run_id)}"


def gated(flag: Path, then: str) -> str:
    return f"echo waiting; while [ ! -e {shlex.quote(str(flag))} ]; do sleep 0.02; done; {then}"


def named(cluster: FakeCluster, resource: str, name: str) -> list[dict[str, Any]]:
    return [o for o in cluster.objects(resource) if o["metadata"]["name"] == name]


def refuse(kind: str, message: str) -> Any:
    def admit(resource: str, obj: dict[str, Any]) -> None:
        if resource == kind:
            raise ApiError(403, "Forbidden", f'{resource} "{obj["metadata"].get("name")}" is forbidden: {message}')
    return admit


async def test_a_namespace_that_already_exists_gets_its_whole_policy(cluster: FakeCluster,
                                                                     runtime: KubernetesRuntime,
                                                                     events: Events) -> None:
    cluster.store.create("namespaces", None, {"metadata": {"name": NAMESPACE}})  # e.g. a crash after the create
    run = spec("echo hi")
    await runtime.start(run)
    assert (await events.wait(run.run_id)).output == "hi"
    [namespace] = named(cluster, "namespaces", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for resource, name in (("networkpolicies", "kubegate-default-deny"), ("networkpolicies", "kubegate-network"),
                           ("resourcequotas", "kubegate"), ("limitranges", "kubegate"),
                           ("rolebindings", "kubegate-runner")):
        assert named(cluster, resource, name), f"{resource}/{name} is missing"


async def test_a_policy_deleted_behind_our_back_is_back_before_the_next_run(cluster: FakeCluster,
                                                                           runtime: KubernetesRuntime,
                                                                           events: Events) -> None:
    first = spec("echo one")
    await runtime.start(first)
    await events.wait(first.run_id)
    assert runtime.guard.verified(NAMESPACE)
    cluster.store.delete("networkpolicies", NAMESPACE, "kubegate-default-deny")
    cluster.store.delete("resourcequotas", NAMESPACE, "kubegate")
    await cluster.wait_until(lambda: bool(named(cluster, "networkpolicies", "kubegate-default-deny"))
                             and bool(named(cluster, "resourcequotas", "kubegate")))
    second = spec("echo two")
    await runtime.start(second)
    assert (await events.wait(second.run_id)).output == "two"
    assert runtime.guard.repairs >= 1


async def test_no_run_starts_where_the_policy_cannot_be_ensured(cluster: FakeCluster,
                                                                runtime: KubernetesRuntime) -> None:
    cluster.store.admission.append(refuse("networkpolicies", "denied by the cluster's policy engine"))
    with pytest.raises(errors.Unavailable, match="could not be secured"):
        await runtime.start(spec("echo never"))
    assert cluster.objects("jobs") == [] and cluster.objects("secrets") == []
    assert not runtime.guard.verified(NAMESPACE)


async def test_a_failure_after_the_job_exists_ends_the_run_and_leaves_nothing(cluster: FakeCluster,
                                                                             runtime: KubernetesRuntime,
                                                                             events: Events) -> None:
    cluster.store.admission.append(refuse("secrets", "secrets are not allowed here"))
    run = spec("echo never", env={"TOKEN": "s3cr3t"})
    await runtime.start(run)  # the Job exists by now: the run is tracked, not raised and forgotten
    exited = await events.wait(run.run_id)
    assert exited.reason == "error" and "could not start" in str(exited.message)
    await cluster.wait_until(lambda: not cluster.objects("jobs", selector(run)))
    assert cluster.objects("secrets") == [] and cluster.objects("pods", selector(run)) == []


async def test_the_secret_exists_only_once_owned_and_the_job_ran_only_after_it(cluster: FakeCluster,
                                                                               runtime: KubernetesRuntime,
                                                                               events: Events) -> None:
    run = spec('printf "%s" "$TOKEN" > "$KUBEGATE_OUTPUT"', env={"TOKEN": "value"})
    seen: list[tuple[str, str]] = []
    cluster.store.listeners.append(lambda resource, kind, obj: seen.append((resource, kind)) if resource in (
        "secrets", "pods") and kind == "ADDED" else None)
    await runtime.start(run)
    assert (await events.wait(run.run_id)).output == "value"
    assert seen[:2] == [("secrets", "ADDED"), ("pods", "ADDED")]


async def test_status_and_logs_come_from_the_run_container_despite_an_injected_sidecar(
        cluster: FakeCluster, runtime: KubernetesRuntime, events: Events) -> None:
    injector = MeshInjector(forced=True)  # a mesh that ignores the opt-out
    cluster.store.admission.append(injector)
    run = spec('echo from-run; printf done > "$KUBEGATE_OUTPUT"; exit 0')
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert (exited.reason, exited.exit_code, exited.output) == ("completed", 0, "done")
    assert runtime.read_logs(run.run_id, tail=100) == "from-run\n"
    assert injector.injected == 1


async def test_the_opt_out_keeps_a_well_behaved_mesh_out(cluster: FakeCluster, runtime: KubernetesRuntime,
                                                         events: Events) -> None:
    injector = MeshInjector()
    cluster.store.admission.append(injector)
    run = spec("echo alone")
    await runtime.start(run)
    await events.wait(run.run_id)
    assert injector.injected == 0


@pytest.mark.parametrize(("setup", "expected"), [
    ("selector", "did not start within 1s: unschedulable: 0/1 nodes are available"),
    ("quota", "did not start within 1s: quota: Error creating: pods"),
    ("runtime_class", 'did not start within 1s: admission: Error creating: pods'),
])
async def test_a_run_that_never_gets_a_pod_ends_with_the_reason(cluster: FakeCluster, tmp_path: Path,
                                                                setup: str, expected: str) -> None:
    more: dict[str, Any] = {"start_timeout": 1.0}
    if setup == "selector":
        more["node_selector"] = "kubegate.dev/pool=untrusted"
    elif setup == "quota":
        more["quota"] = "requests.cpu=100m"
    else:
        more["runtime_class"] = "kata"
    runtime = KubernetesRuntime(make_settings(cluster, tmp_path, **more))
    events = Events(runtime)
    try:
        run = spec("echo never")
        await runtime.start(run)
        exited = await events.wait(run.run_id)
        assert exited.reason == "error" and str(exited.message).startswith(expected), exited.message
        if setup == "quota":
            assert "exceeded quota: kubegate" in str(exited.message)
        if setup == "runtime_class":
            assert 'RuntimeClass "kata" not found' in str(exited.message)
        await cluster.wait_until(lambda: not cluster.objects("jobs", selector(run)))
    finally:
        await events.close()
        await runtime.close()


async def test_an_eviction_is_reported_as_such(cluster: FakeCluster, runtime: KubernetesRuntime, events: Events,
                                               tmp_path: Path) -> None:
    run = spec(gated(tmp_path / "never", "true"))
    await runtime.start(run)
    assert (await events.next(run.run_id)).kind == "started"
    [pod] = cluster.objects("pods", selector(run))
    cluster.evict(pod["metadata"]["namespace"], pod["metadata"]["name"])
    exited = await events.wait(run.run_id)
    assert exited.reason == "error" and str(exited.message).startswith("evicted"), exited.message
    assert "exit code" not in str(exited.message)


async def until_logged(runtime: KubernetesRuntime, run_id: str, needle: str) -> None:
    """Poll the gateway's copy of the log, within a bounded deadline, until ``needle`` is in it."""
    with anyio.fail_after(20):
        while needle not in runtime.read_logs(run_id, tail=1000):
            await anyio.sleep(0.02)


async def test_the_log_copy_survives_rotation_without_losing_or_repeating_lines(
        cluster: FakeCluster, runtime: KubernetesRuntime, events: Events, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    run = spec(f"echo a; echo b; {gated(first, 'echo c; echo d')}; "
               f"while [ ! -e {shlex.quote(str(second))} ]; do sleep 0.02; done; echo e")
    await runtime.start(run)
    assert (await events.next(run.run_id)).kind == "started"
    await until_logged(runtime, run.run_id, "waiting\n")
    [pod] = cluster.objects("pods", selector(run))
    cluster.rotate_logs(pod["metadata"]["namespace"], pod["metadata"]["name"])  # the copier's stream ends here
    first.touch()
    await until_logged(runtime, run.run_id, "d\n")
    cluster.rotate_logs(pod["metadata"]["namespace"], pod["metadata"]["name"])
    second.touch()
    assert (await events.wait(run.run_id)).output == "e"
    assert runtime.read_logs(run.run_id, tail=100) == "a\nb\nwaiting\nc\nd\ne\n"


async def test_the_job_is_deleted_once_its_result_was_taken(cluster: FakeCluster, runtime: KubernetesRuntime,
                                                            events: Events) -> None:
    run = spec("echo kept", env={"A": "1"})
    await runtime.start(run)
    await events.wait(run.run_id)
    assert cluster.objects("jobs", selector(run))  # the engine has not asked for the next event yet
    other = spec("echo next")
    await runtime.start(other)
    await events.wait(other.run_id)  # asking for more means the first result was recorded
    await cluster.wait_until(lambda: not cluster.objects("jobs", selector(run))
                             and not cluster.objects("secrets", selector(run)))


async def test_recovery_collects_finished_jobs_whose_result_was_recorded(cluster: FakeCluster,
                                                                         tmp_path: Path) -> None:
    settings = make_settings(cluster, tmp_path)
    first = KubernetesRuntime(settings)
    events = Events(first)
    run = spec("echo recorded")
    try:
        await first.start(run)
        await events.wait(run.run_id)
    finally:
        await events.close()
        await first.close()
    assert cluster.objects("jobs", selector(run))  # the gateway went away before deleting it
    second = KubernetesRuntime(settings)
    try:
        await second.recover([])  # the store calls nothing active: the result was recorded
        await cluster.wait_until(lambda: not cluster.objects("jobs", selector(run)))
    finally:
        await second.close()


async def test_a_terminating_namespace_refuses_the_start_until_it_is_gone(cluster: FakeCluster,
                                                                          runtime: KubernetesRuntime,
                                                                          events: Events, tmp_path: Path) -> None:
    held = spec(gated(tmp_path / "never", "true"))
    await runtime.start(held)
    assert (await events.next(held.run_id)).kind == "started"
    gate, terminate = asyncio.Event(), cluster.store.terminator
    assert terminate is not None

    async def slow(pod: dict[str, Any], grace: float) -> None:  # a Pod that takes its grace period to stop
        await gate.wait()
        await terminate(pod, grace)
    cluster.store.terminator = slow
    cluster.store.delete("namespaces", None, NAMESPACE)
    [namespace] = named(cluster, "namespaces", NAMESPACE)
    assert namespace["status"]["phase"] == "Terminating"
    with pytest.raises(errors.Unavailable, match="being deleted"):
        await runtime.start(spec("echo too early"))
    assert not cluster.objects("jobs")
    gate.set()
    await cluster.wait_until(lambda: not named(cluster, "namespaces", NAMESPACE), timeout=40)
    later = spec("echo after")
    await runtime.start(later)
    assert (await events.wait(later.run_id)).output == "after"


async def test_ready_means_every_watch_has_synced(cluster: FakeCluster, runtime: KubernetesRuntime,
                                                 events: Events) -> None:
    assert not runtime.ready()
    run = spec("echo up")
    await runtime.start(run)
    await events.wait(run.run_id)
    assert runtime.ready()
