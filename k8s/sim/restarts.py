"""The simulated kubelet's care of long-running Pods: restarts with CrashLoopBackOff, readiness probes.

A container of a Pod with ``restartPolicy: Always`` (or ``OnFailure``, after a failure) that
exits is started again: at once the first time, then after a back-off that doubles from
``backoff_base`` up to ``backoff_cap`` (10 s and 300 s on a real kubelet); meanwhile it waits with reason
``CrashLoopBackOff``, ``lastState.terminated`` says how it ended and ``restartCount`` counts up.
With ``terminationMessagePolicy: FallbackToLogsOnError`` a failed container's message is the
tail of its log, as upstream. An HTTP readiness probe is sent to the Pod's address on the
container's port (``probes``); the container, and the Pod's ``Ready`` condition, are ready
only after ``successThreshold`` answers of 2xx/3xx and stop being so after
``failureThreshold`` misses. A container without a readiness probe is ready while it runs.
``restartPolicy: Never`` Pods (Jobs) are left to the base kubelet unchanged. A Pod waiting with
``CreateContainerConfigError`` (a Secret it names is missing) is started when a Secret of its
namespace is written, as a kubelet's retries would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k8s.sim import probes
from k8s.sim.containers import Container
from k8s.sim.kubelet import Kubelet
from k8s.sim.podnet import PodNetwork
from k8s.sim.store import Obj, Store

FALLBACK_LINES, FALLBACK_BYTES = 80, 2048


@dataclass
class Life:
    """What the kubelet remembers of one container across its restarts."""

    probe: Obj | None
    restarts: int = 0
    last: Obj | None = None
    waiting: Obj | None = None
    ready: bool = False


def _fallback(container: Container) -> str:
    text = b"".join(line for _, line in container.lines[-FALLBACK_LINES:])[-FALLBACK_BYTES:]
    return text.decode(errors="replace")


class RestartingKubelet(Kubelet):
    def __init__(self, store: Store, workdir: Path, network: PodNetwork | None = None) -> None:
        super().__init__(store, workdir, network)
        self.backoff_base = 10.0
        self.backoff_cap = 300.0
        self._lives: dict[str, dict[str, Life]] = {}
        self._addresses: dict[str, dict[str, Any]] = {}
        self._stopping: set[str] = set()

    def _on_event(self, resource: str, kind: str, obj: Obj) -> None:
        super()._on_event(resource, kind, obj)
        if resource == "secrets" and kind != "DELETED":
            self._retry_config(obj["metadata"]["namespace"])
        if resource == "pods" and kind == "DELETED":
            uid = obj["metadata"]["uid"]
            for table in (self._lives, self._addresses):
                table.pop(uid, None)
            self._stopping.discard(uid)

    def _retry_config(self, namespace: str) -> None:
        """A kubelet keeps retrying a Pod whose env names a missing Secret: start those waiting here again."""
        for pod in self._store.list("pods", namespace, None):
            statuses = pod.get("status", {}).get("containerStatuses") or []
            stuck = any((s.get("state", {}).get("waiting") or {}).get("reason") == "CreateContainerConfigError"
                        for s in statuses)
            if stuck and pod["metadata"]["uid"] not in self._pods and not pod["metadata"].get("deletionTimestamp"):
                self._spawn(self._run(pod))

    async def terminate(self, uid: str, grace: float) -> None:
        self._stopping.add(uid)
        await super().terminate(uid, grace)

    def _alive(self, uid: str, containers: dict[str, Container]) -> bool:
        return self._pods.get(uid) is containers and uid not in self._stopping and not self.closing

    async def _wait(self, pod: Obj, containers: dict[str, Container], container: Container) -> None:
        policy = pod["spec"].get("restartPolicy", "Always")
        if policy == "Never":
            await super()._wait(pod, containers, container)
            return
        uid, name = pod["metadata"]["uid"], container.spec["name"]
        life = self._lives.setdefault(uid, {}).setdefault(name, Life(container.spec.get("readinessProbe")))
        if life.probe is not None and "httpGet" in life.probe:
            self._spawn(self._probe(pod, containers, name, life))
        while True:
            await container.wait()
            if not self._alive(uid, containers) or (policy == "OnFailure" and container.exit_code == 0):
                if self._pods.get(uid) is containers:
                    self._publish(pod, containers)
                return
            fresh = await self._back_off(pod, containers, container, life)
            if fresh is None:
                return
            container = fresh

    async def _back_off(self, pod: Obj, containers: dict[str, Container], ended: Container,
                        life: Life) -> Container | None:
        """Say CrashLoopBackOff, wait out the back-off, start the container again (``None``: the Pod went)."""
        meta, name = pod["metadata"], ended.spec["name"]
        life.last = dict(ended.status()["state"]["terminated"])
        if ended.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError" and ended.exit_code \
                and not life.last.get("message") and (tail := _fallback(ended)):
            life.last["message"] = tail
        life.ready = False
        if life.restarts:  # as a kubelet: the first restart is at once, back-off starts with the second
            delay = min(self.backoff_cap, self.backoff_base * 2 ** (life.restarts - 1))
            life.waiting = {"reason": "CrashLoopBackOff", "message": f"back-off {delay:g}s restarting failed "
                            f"container={name} pod={meta['name']}_{meta['namespace']}({meta['uid']})"}
            self._publish(pod, containers)
            await asyncio.sleep(delay)
        if not self._alive(meta["uid"], containers):
            return None
        fresh = Container(ended.spec, ended.workdir, ended.env)
        fresh.net = ended.net  # the Pod keeps its network (and address) across its containers' restarts
        ended.message_path.write_bytes(b"")
        containers[name] = fresh
        life.restarts += 1
        life.waiting = None
        await fresh.start()
        self._publish(pod, containers)
        return fresh

    async def _probe(self, pod: Obj, containers: dict[str, Container], name: str, life: Life) -> None:
        assert life.probe is not None
        probe, uid = life.probe, pod["metadata"]["uid"]
        successes = failures = 0
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        while self._alive(uid, containers):
            current = containers[name]
            ok = not current.done and life.waiting is None and await probes.http_get(
                probes.host(self._addresses.get(uid, {}).get("podIP")), probes.port(probe["httpGet"], current.spec),
                probe["httpGet"].get("path", "/"), float(probe.get("timeoutSeconds", 1)))
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            ready = life.ready
            if ok and successes >= int(probe.get("successThreshold", 1)):
                ready = True
            elif not ok and (failures >= int(probe.get("failureThreshold", 3)) or life.waiting is not None):
                ready = False
            if ready != life.ready and self._alive(uid, containers):
                life.ready = ready
                self._publish(pod, containers)
            await asyncio.sleep(float(probe.get("periodSeconds", 10)))

    def _publish(self, pod: Obj, containers: dict[str, Container], **extra: Any) -> None:
        uid = pod["metadata"]["uid"]
        if extra:
            self._addresses[uid] = extra
        if pod["spec"].get("restartPolicy", "Always") == "Never":
            super()._publish(pod, containers, **extra)
            return
        lives = self._lives.setdefault(uid, {})
        for name, container in containers.items():
            lives.setdefault(name, Life(container.spec.get("readinessProbe")))
        statuses = [self._decorate(c, lives.get(name)) for name, c in containers.items()]
        codes = [c.exit_code for c in containers.values()]
        done = all(code == 0 for code in codes) and not any(life.waiting for life in lives.values())
        phase = "Succeeded" if done and pod["spec"].get("restartPolicy") == "OnFailure" else "Running"
        ready = phase == "Running" and all(status["ready"] for status in statuses)
        self._set_status(pod, phase, statuses, ready=ready, **self._addresses.get(uid, {}))

    @staticmethod
    def _decorate(container: Container, life: Life | None) -> Obj:
        status = container.status()
        if life is None:
            return status
        status["restartCount"] = life.restarts
        if life.last is not None:
            status["lastState"] = {"terminated": life.last}
        if life.waiting is not None:
            status.update(state={"waiting": life.waiting}, ready=False, started=False)
        elif not container.done and life.probe is not None:
            status["ready"] = life.ready
        return status
