"""Status mapping over Job and Pod objects as a real cluster reports them (``fixtures/*.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from k8s import status

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return obj


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_every_fixture_is_a_valid_object_of_the_kubernetes_api(path: Path) -> None:
    kubernetes_validate.validate(json.loads(path.read_text()), "1.33.0", strict=True)


def test_a_succeeded_job_completes_with_the_termination_message_as_output() -> None:
    end = status.job_end(load("job_succeeded"))
    assert end is not None and end.succeeded
    assert status.outcome(end, load("pod_succeeded")) == status.Outcome(0, "completed", "42", None)


def test_a_failed_pod_gives_its_exit_code() -> None:
    end = status.job_end(load("job_failed"))
    assert end is not None and not end.succeeded and end.reason == "BackoffLimitExceeded"
    assert status.outcome(end, load("pod_failed")) == status.Outcome(3, "error", None, "exit code 3")


def test_deadline_exceeded_is_a_timeout_even_though_the_pod_failed_too() -> None:
    end = status.job_end(load("job_deadline_exceeded"))
    assert end is not None
    result = status.outcome(end, load("pod_deadline_exceeded"))
    assert (result.reason, result.exit_code) == ("timeout", 143)
    assert result.message == "Job was active longer than specified deadline"


def test_deadline_exceeded_without_any_pod_left_is_still_a_timeout() -> None:
    end = status.job_end(load("job_deadline_exceeded"))
    assert end is not None
    assert status.outcome(end, None).reason == "timeout"
    assert status.outcome(end, None).exit_code is None


def test_an_evicted_pod_is_an_error_that_says_why_and_has_no_output() -> None:
    end = status.job_end(load("job_failed"))
    assert end is not None
    result = status.outcome(end, load("pod_evicted"))
    assert (result.reason, result.exit_code, result.output) == ("error", 137, None)
    assert result.message is not None and result.message.startswith(
        "evicted by the kubelet (node pressure or shutdown): The node was low on resource: memory.")


def test_image_pull_backoff_is_fatal_while_the_job_is_still_active() -> None:
    assert status.job_end(load("job_active")) is None
    pod = load("pod_image_pull_backoff")
    assert status.container_phase(pod) == "waiting"
    assert not status.has_started(pod)
    message = status.fatal_waiting(pod)
    assert message is not None and message.startswith('ImagePullBackOff: Back-off pulling image "registry.example.com')


def test_a_running_pod_has_started_and_is_not_final() -> None:
    pod = load("pod_running")
    assert status.container_phase(pod) == "running"
    assert status.has_started(pod) and status.terminated(pod) is None and status.fatal_waiting(pod) is None


def test_a_pod_without_container_statuses_has_no_phase_yet() -> None:
    pod = load("pod_running")
    del pod["status"]["containerStatuses"]
    assert status.container_phase(pod) is None and not status.has_started(pod)
