"""KubernetesRuntime against the fake cluster: the official client over HTTP, pods as local processes."""

from __future__ import annotations

import json
import shlex
import socket
from pathlib import Path

import anyio
import pytest

from k8s import manifests
from k8s.runtime import KubernetesRuntime
from k8s.sim import UNPULLABLE_REGISTRY, FakeCluster
from k8s.sim import kubeconfig as sim_kubeconfig
from mcp_server import errors
from mcp_server.config import Settings
from mcp_server.runtime.base import RunSpec
from tests.k8s.conftest import make_settings
from tests.runtime.support import WAIT, Events, sh


def run_selector(run: RunSpec) -> str:
    return f"{manifests.RUN_LABEL}={manifests.label_value(run.run_id)}"


def gated(flag: Path, then: str) -> str:
    """A script that blocks until ``flag`` exists: the test, not a timer, decides when the run ends."""
    return f"echo waiting; while [ ! -e {shlex.quote(str(flag))} ]; do sleep 0.02; done; {then}"


async def test_a_run_completes_with_the_termination_message_as_output(runtime: KubernetesRuntime,
                                                                      events: Events) -> None:
    run = sh('echo working; printf "the answer" > "$KUBEGATE_OUTPUT"')
    await runtime.start(run)
    assert (await events.next(run.run_id)).kind == "started"
    exited = await events.next(run.run_id)
    assert (exited.kind, exited.reason, exited.exit_code, exited.output) == ("exited", "completed", 0, "the answer")
    assert runtime.read_logs(run.run_id, tail=1000) == "working\n"


async def test_without_an_output_file_the_last_log_line_is_the_output(runtime: KubernetesRuntime,
                                                                      events: Events) -> None:
    run = sh("echo first; echo last; echo")
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert exited.output == "last"


async def test_a_non_zero_exit_is_an_error_with_its_code(runtime: KubernetesRuntime, events: Events) -> None:
    run = sh("echo broken >&2; exit 3")
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert (exited.reason, exited.exit_code, exited.output) == ("error", 3, "broken")
    assert exited.message == "exit code 3"


async def test_env_reaches_the_container_through_an_owned_secret(cluster: FakeCluster, runtime: KubernetesRuntime,
                                                                 events: Events) -> None:
    run = sh('printf "%s" "$GREETING" > "$KUBEGATE_OUTPUT"', env={"GREETING": "hello secret"})
    await runtime.start(run)
    assert (await events.wait(run.run_id)).output == "hello secret"
    [job] = cluster.objects("jobs", run_selector(run))
    assert "hello secret" not in str(job)
    [secret] = cluster.objects("secrets", run_selector(run))
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]


async def test_the_deadline_ends_the_run_as_a_timeout(cluster: FakeCluster, runtime: KubernetesRuntime,
                                                      events: Events, tmp_path: Path) -> None:
    # 3 s, not 1: the deadline counts from the Job's start, and a loaded fake cluster may take a second to run
    # its Pod (then no Pod was there to get the SIGTERM).
    run = sh(gated(tmp_path / "never", "true"), timeout_seconds=3)
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert exited.reason == "timeout"
    assert exited.exit_code == 143  # SIGTERM from the kubelet when the Job controller deleted the Pod
    assert runtime.read_logs(run.run_id, tail=100) == "waiting\n"


async def test_cancel_deletes_the_job_its_pod_and_its_secret(cluster: FakeCluster, runtime: KubernetesRuntime,
                                                             events: Events, tmp_path: Path) -> None:
    run = sh(gated(tmp_path / "never", "true"), env={"TOKEN": "x"})
    await runtime.start(run)
    assert (await events.next(run.run_id)).kind == "started"
    await runtime.cancel(run.run_id)
    exited = await events.next(run.run_id)
    assert (exited.kind, exited.reason) == ("exited", "cancelled")
    selector = run_selector(run)
    await cluster.wait_until(lambda: not any(cluster.objects(kind, selector) for kind in ("jobs", "pods", "secrets")))
    await runtime.cancel(run.run_id)  # idempotent, and no second event
    await runtime.cancel("task_unknown")


async def until_logged(runtime: KubernetesRuntime, run: RunSpec, text: str) -> None:
    """Poll the gateway's log copy (a file, no event to wait on) until it holds ``text``."""
    with anyio.fail_after(WAIT):
        while runtime.read_logs(run.run_id, tail=1000) != text:
            await anyio.sleep(0.02)


async def test_logs_are_copied_and_outlive_the_pod(cluster: FakeCluster, tmp_path: Path) -> None:
    runtime = KubernetesRuntime(make_settings(cluster, tmp_path, ttl=0))
    events = Events(runtime)
    try:
        flag = tmp_path / "go"
        run = sh(gated(flag, "for i in 1 2 3; do echo line $i; done"))
        await runtime.start(run)
        assert (await events.next(run.run_id)).kind == "started"
        await until_logged(runtime, run, "waiting\n")  # the copier is attached: with a TTL of 0 the Pod goes
        flag.touch()                                   # as soon as it ends
        assert (await events.wait(run.run_id)).output == "line 3"
        await cluster.wait_until(lambda: not cluster.objects("pods", run_selector(run)))
        assert not cluster.objects("jobs", run_selector(run))
        assert runtime.read_logs(run.run_id, tail=7) == "line 3\n"
        assert runtime.read_logs(run.run_id, tail=1000) == "waiting\nline 1\nline 2\nline 3\n"
    finally:
        await events.close()
        await runtime.close()


async def test_logs_are_copied_while_the_run_goes_on(runtime: KubernetesRuntime, events: Events,
                                                     tmp_path: Path) -> None:
    flag = tmp_path / "go"
    run = sh(gated(flag, "echo finished"))
    await runtime.start(run)
    assert (await events.next(run.run_id)).kind == "started"
    await until_logged(runtime, run, "waiting\n")
    flag.touch()
    assert (await events.wait(run.run_id)).output == "finished"
    assert runtime.read_logs(run.run_id, tail=1000) == "waiting\nfinished\n"


async def test_status_survives_the_server_dropping_the_watches(cluster: FakeCluster, runtime: KubernetesRuntime,
                                                               events: Events, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    run = sh(gated(flag, "echo resumed > $KUBEGATE_OUTPUT"))
    await runtime.start(run)
    assert (await events.next(run.run_id)).kind == "started"
    assert cluster.drop_watches() == len(runtime.watchers) == 9  # jobs, pods, services, deployments, policy kinds
    flag.touch()
    assert (await events.wait(run.run_id)).output == "resumed"
    assert runtime.watchers["jobs"].resumes >= 1
    assert runtime.watchers["jobs"].relists == 0


async def test_an_expired_resource_version_makes_the_watch_list_again(cluster: FakeCluster,
                                                                      runtime: KubernetesRuntime, events: Events,
                                                                      tmp_path: Path) -> None:
    flag = tmp_path / "go"
    run = sh(gated(flag, "echo relisted > $KUBEGATE_OUTPUT"))
    await runtime.start(run)
    assert (await events.next(run.run_id)).kind == "started"
    cluster.hold_watches()
    cluster.drop_watches()
    flag.touch()
    await cluster.wait_until(lambda: "Complete" in str(cluster.objects("jobs", run_selector(run))))
    cluster.compact()
    cluster.hold_watches(False)
    assert (await events.wait(run.run_id)).output == "relisted"
    assert runtime.watchers["jobs"].relists >= 1


async def test_an_image_that_cannot_be_pulled_fails_fast(cluster: FakeCluster, runtime: KubernetesRuntime,
                                                         events: Events) -> None:
    run = RunSpec(run_id="task_badimage", owner="bob", image=f"{UNPULLABLE_REGISTRY}/nope:1", command=["true"])
    await runtime.start(run)
    exited = await events.next(run.run_id)
    assert (exited.kind, exited.reason, exited.exit_code) == ("exited", "error", None)
    assert exited.message is not None and exited.message.startswith("ImagePullBackOff")
    await cluster.wait_until(lambda: not cluster.objects("jobs", run_selector(run)))


async def test_remove_deletes_the_cluster_objects_and_the_log_copy(cluster: FakeCluster, runtime: KubernetesRuntime,
                                                                   events: Events, tmp_path: Path) -> None:
    run = sh("echo bye", env={"A": "1"})
    await runtime.start(run)
    await events.wait(run.run_id)
    assert runtime.read_logs(run.run_id, tail=100) == "bye\n"
    await runtime.remove(run.run_id)
    assert runtime.read_logs(run.run_id, tail=100) == ""
    assert not (tmp_path / "runs" / run.run_id).exists()
    await cluster.wait_until(lambda: not cluster.objects("secrets", run_selector(run)))


async def test_recover_after_a_restart_reattaches_finishes_and_loses(cluster: FakeCluster, tmp_path: Path) -> None:
    settings = make_settings(cluster, tmp_path)
    finish_flag, running_flag = tmp_path / "finish", tmp_path / "running"
    finished = sh(gated(finish_flag, "echo done-while-away > $KUBEGATE_OUTPUT"))
    running = sh(gated(running_flag, "echo after-restart > $KUBEGATE_OUTPUT"))
    vanished = sh("echo gone")
    first = KubernetesRuntime(settings)
    events = Events(first)
    for run in (finished, running, vanished):
        await first.start(run)
    for run in (finished, running):
        assert (await events.next(run.run_id)).kind == "started"
    await events.wait(vanished.run_id)
    await events.close()
    await first.close()

    finish_flag.touch()
    await cluster.wait_until(lambda: bool(cluster.objects("jobs", run_selector(finished)))
                             and "Complete" in str(cluster.objects("jobs", run_selector(finished))[0]["status"]))
    [job] = cluster.objects("jobs", run_selector(vanished))
    cluster.store.delete("jobs", job["metadata"]["namespace"], job["metadata"]["name"], "Background")

    second = KubernetesRuntime(settings)
    events = Events(second)
    try:
        await second.recover([finished, running, vanished])
        lost = await events.wait(vanished.run_id)
        assert lost.reason == "lost"
        done = await events.wait(finished.run_id)
        assert (done.reason, done.output) == ("completed", "done-while-away")
        assert (await events.next(running.run_id)).kind == "started"
        running_flag.touch()
        resumed = await events.wait(running.run_id)
        assert (resumed.reason, resumed.output) == ("completed", "after-restart")
        assert second.read_logs(running.run_id, tail=100) == "waiting\n"
    finally:
        await events.close()
        await second.close()


async def test_an_unreachable_cluster_is_unavailable(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(sim_kubeconfig(f"http://127.0.0.1:{port}")))
    runtime = KubernetesRuntime(Settings(data_dir=tmp_path, kubeconfig=kubeconfig))
    try:
        with pytest.raises(errors.Unavailable):
            await runtime.start(sh("true"))
    finally:
        await runtime.close()


async def test_a_namespace_deleted_behind_our_back_is_created_again(cluster: FakeCluster, runtime: KubernetesRuntime,
                                                                    events: Events) -> None:
    first = sh("echo one")
    await runtime.start(first)
    await events.wait(first.run_id)
    cluster.store.delete("namespaces", None, manifests.namespace_name("kg-", first.owner))
    second = sh("echo two")
    await runtime.start(second)
    assert (await events.wait(second.run_id)).output == "two"
