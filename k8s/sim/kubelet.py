"""A simulated scheduler and kubelet: every container of a Pod runs as a local process on this machine.

A Pod that does not fit the one node (its ``nodeSelector``, the node's taints, its resource
requests) stays ``Pending`` with ``PodScheduled=False/Unschedulable``. The image is not pulled
(one from the registry ``unpullable.invalid`` fails the way a missing image does:
``ErrImagePull`` then ``ImagePullBackOff``); every container's command runs on the host with
its environment resolved from Secrets. The termination-message path maps to a per-container
file whose content becomes ``state.terminated.message``. Log lines are kept with their
timestamps; ``rotate`` forgets what was written so far and ends open follows, as a kubelet
rotating its log files does. Security contexts are recorded, not enforced.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k8s.sim.containers import Container, ContainerConfigError, environment
from k8s.sim.podnet import PodNet, PodNetwork
from k8s.sim.store import ApiError, Obj, Store, now

NODE = "sim-node"
NODE_LABELS = {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
UNPULLABLE_REGISTRY = "unpullable.invalid"


def _waiting(container: Obj, reason: str, message: str | None = None) -> Obj:
    waiting = {"reason": reason, **({"message": message} if message else {})}
    return {"name": container["name"], "image": container["image"], "imageID": "", "ready": False,
            "restartCount": 0, "started": False, "state": {"waiting": waiting}}


def _millicores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


@dataclass
class Node:
    labels: dict[str, str] = field(default_factory=lambda: dict(NODE_LABELS))
    taints: list[Obj] = field(default_factory=list)
    cpu: float = 64.0

    def unfit(self, spec: Obj) -> str | None:
        """Why a Pod cannot go on this node, in the scheduler's words; ``None`` when it fits."""
        selector = spec.get("nodeSelector") or {}
        if any(self.labels.get(key) != value for key, value in selector.items()):
            return "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        tolerated = spec.get("tolerations") or []
        for taint in self.taints:
            if not any(t.get("key") == taint["key"] and t.get("effect") in (None, taint["effect"]) and (
                    t.get("operator") == "Exists" or t.get("value") == taint.get("value")) for t in tolerated):
                return f"0/1 nodes are available: 1 node(s) had untolerated taint {{{taint['key']}: " \
                       f"{taint.get('value', '')}}}."
        cpu = sum(_millicores(c.get("resources", {}).get("requests", {}).get("cpu", "0")) for c in spec["containers"])
        if cpu > self.cpu:
            return "0/1 nodes are available: 1 Insufficient cpu."
        return None


def _tcp_ports(specs: list[Obj]) -> list[int]:
    """The TCP ports the Pod's containers declare: what its network forwards from its address."""
    return sorted({int(port["containerPort"]) for spec in specs for port in spec.get("ports") or []
                   if port.get("protocol", "TCP") == "TCP"})


class Kubelet:
    def __init__(self, store: Store, workdir: Path, network: PodNetwork | None = None) -> None:
        self._store = store
        self._workdir = workdir
        self.node = Node()
        self.network = network or PodNetwork(enabled=False)
        self._pods: dict[str, dict[str, Container]] = {}
        self._nets: dict[str, PodNet] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        store.listeners.append(self._on_event)
        store.terminator = self.terminate_pod

    def _on_event(self, resource: str, kind: str, obj: Obj) -> None:
        if resource != "pods":
            return
        uid = obj["metadata"]["uid"]
        if kind == "ADDED":
            self._spawn(self._run(obj))
        elif kind == "DELETED" and uid in self._pods:
            for container in self._pods.pop(uid).values():
                container.signal(signal.SIGKILL)
            self._release(uid)

    def _release(self, uid: str) -> None:
        """Take down a Pod's network once nothing runs in it."""
        if (net := self._nets.pop(uid, None)) is None:
            return
        if self.closing:
            net.kill()
        else:
            self._spawn(net.close())

    def _spawn(self, work: Any) -> None:
        if self.closing:  # nothing new starts once the node is going away (a restart would outlive the close)
            work.close()
            return
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def terminate(self, uid: str, grace: float) -> None:
        """SIGTERM every container, SIGKILL after ``grace`` seconds, return once all have stopped."""
        for container in list(self._pods.get(uid, {}).values()):
            await container.stop(grace)

    async def terminate_pod(self, pod: Obj, grace: float) -> None:
        await self.terminate(pod["metadata"]["uid"], grace)

    def containers_of(self, uid: str) -> dict[str, Container]:
        """The started containers of a Pod, by name (empty before it runs and after it is gone)."""
        return dict(self._pods.get(uid, {}))

    def rotate(self, uid: str) -> None:
        """Rotate every container log of a Pod: reads start after this point, open follows end."""
        for container in self._pods.get(uid, {}).values():
            container.rotate()

    def kill(self) -> None:
        """SIGKILL every container and Pod network now, and start nothing more."""
        self.closing = True
        for containers in self._pods.values():
            for container in containers.values():
                container.signal(signal.SIGKILL)
        for net in self._nets.values():
            net.kill()

    async def close(self) -> None:
        # Everything is killed before the first await: while close waits, a container's watcher would otherwise
        # see it die and start it again (restartPolicy Always), and that process would outlive the cluster.
        self.kill()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for net in list(self._nets.values()):
            await net.close()
        self._nets.clear()

    def _set_status(self, pod: Obj, phase: str, statuses: list[Obj], *, scheduled: str | None = None,
                    ready: bool | None = None, **extra: Any) -> bool:
        meta = pod["metadata"]

        def mutate(obj: Obj) -> None:
            old = obj.get("status", {})
            kept = [c for c in old.get("conditions") or [] if c["type"] == "DisruptionTarget"]
            if scheduled is not None:
                obj["status"] = {"phase": "Pending", "qosClass": "Guaranteed", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": scheduled,
                     "lastTransitionTime": now()}]}
                return
            obj["spec"]["nodeName"] = NODE
            is_ready = "True" if (phase == "Running" if ready is None else ready) else "False"
            obj["status"] = {
                "phase": phase, "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
                "startTime": old.get("startTime") or now(), "qosClass": "Guaranteed",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now()},
                               {"type": "Ready", "status": is_ready, "lastTransitionTime": now()}, *kept],
                "containerStatuses": statuses, **extra,
            }
        try:
            self._store.update("pods", meta["namespace"], meta["name"], mutate)
        except ApiError:
            return False
        return True

    async def _run(self, pod: Obj) -> None:
        specs = pod["spec"]["containers"]
        if why := self.node.unfit(pod["spec"]):
            self._set_status(pod, "Pending", [], scheduled=why)
            return
        unpullable = [s for s in specs if s["image"].startswith(UNPULLABLE_REGISTRY + "/")]
        if unpullable:
            for reason, text in (("ErrImagePull", "pull access denied for {}"), ("ImagePullBackOff",
                                                                                 'Back-off pulling image "{}"')):
                self._set_status(pod, "Pending", [
                    _waiting(s, reason, text.format(s["image"])) if s in unpullable
                    else _waiting(s, "PodInitializing") for s in specs])
            return
        workdir = Path(tempfile.mkdtemp(prefix=f"pod-{pod['metadata']['uid'][:8]}-", dir=self._workdir))
        containers: dict[str, Container] = {}
        uid = pod["metadata"]["uid"]
        try:
            for spec in specs:
                env = environment(self._store, pod, spec, workdir / spec["name"])
                containers[spec["name"]] = Container(spec, workdir / spec["name"], env)
        except ContainerConfigError as exc:
            self._set_status(pod, "Pending", [_waiting(s, "CreateContainerConfigError", str(exc)) for s in specs])
            return
        try:
            net = await self.network.attach(_tcp_ports(specs))
        except OSError as exc:
            self._set_status(pod, "Pending", [_waiting(s, "ContainerCreating", f"pod network: {exc}") for s in specs])
            return
        if not self._still_wanted(pod):  # deleted (or being deleted) while its network was being made
            await net.close()
            return
        self._nets[uid] = net
        self._pods[uid] = containers
        for container in containers.values():
            container.net = net
            await container.start()
        self._publish(pod, containers, podIP=net.ip, podIPs=[{"ip": net.ip}])
        await asyncio.gather(*(self._wait(pod, containers, c) for c in containers.values()))
        if self._pods.get(uid) is containers:
            self._release(uid)

    def _still_wanted(self, pod: Obj) -> bool:
        meta = pod["metadata"]
        try:
            stored = self._store.get("pods", meta["namespace"], meta["name"])["metadata"]
        except ApiError:
            return False
        return bool(stored["uid"] == meta["uid"] and not stored.get("deletionTimestamp"))

    async def _wait(self, pod: Obj, containers: dict[str, Container], container: Container) -> None:
        await container.wait()
        if self._pods.get(pod["metadata"]["uid"]) is containers:
            self._publish(pod, containers)

    def _publish(self, pod: Obj, containers: dict[str, Container], **extra: Any) -> None:
        statuses = [c.status() for c in containers.values()]
        codes = [c.exit_code for c in containers.values()]
        if any(code is None for code in codes):
            phase = "Running"
        else:
            phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
        self._set_status(pod, phase, statuses, **extra)

    async def log(self, namespace: str, name: str, container: str | None, *, follow: bool, timestamps: bool,
                  since_seconds: int | None) -> AsyncIterator[bytes]:
        """One container's output; with ``follow``, until it ends, the Pod goes or the log rotates."""
        running = self.container(namespace, name, container)
        since = time.time_ns() - since_seconds * 1_000_000_000 if since_seconds is not None else None
        return running.follow(follow, timestamps, since)

    def container(self, namespace: str, name: str, container: str | None) -> Container:
        """The started container ``container`` (the only one when ``None``) of a Pod, or the API's 400/404."""
        pod = self._store.get("pods", namespace, name)
        names = [c["name"] for c in pod["spec"]["containers"]]
        if container is None and len(names) > 1:
            raise ApiError(400, "BadRequest", f"a container name must be specified for pod {name}, "
                                              f"choose one of: [{' '.join(names)}]")
        chosen = container or names[0]
        if chosen not in names:
            raise ApiError(400, "BadRequest", f"container {chosen} is not valid for pod {name}")
        running = self._pods.get(pod["metadata"]["uid"], {}).get(chosen)
        if running is None:
            raise ApiError(400, "BadRequest", f'container "{chosen}" in pod "{name}" is waiting to start: '
                                              "ContainerCreating")
        return running
