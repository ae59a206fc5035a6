"""A simulated kubelet: every Pod's container runs as a local process on this machine.

The image is not pulled (an image from the registry ``unpullable.invalid`` fails the way a
missing image does: ``ErrImagePull`` then ``ImagePullBackOff``); the command runs on the host
with the Pod's environment resolved from its Secrets. The container's termination-message
path is mapped to a per-pod file whose content becomes ``state.terminated.message``, as the
real kubelet does with ``/dev/termination-log``. Security contexts are recorded, not enforced.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k8s.sim.store import ApiError, Obj, Store, now

NODE = "sim-node"
UNPULLABLE_REGISTRY = "unpullable.invalid"
MESSAGE_LIMIT = 4096


@dataclass(eq=False)
class Container:
    log: bytearray = field(default_factory=bytearray)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    done: bool = False
    process: asyncio.subprocess.Process | None = None

    async def append(self, data: bytes) -> None:
        async with self.changed:
            self.log += data
            self.changed.notify_all()

    async def finish(self) -> None:
        async with self.changed:
            self.done = True
            self.changed.notify_all()

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.returncode is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass


class ContainerConfigError(Exception):
    pass


def _waiting(container: Obj, reason: str, message: str | None = None) -> Obj:
    waiting = {"reason": reason, **({"message": message} if message else {})}
    return {"name": container["name"], "image": container["image"], "imageID": "", "ready": False,
            "restartCount": 0, "started": False, "state": {"waiting": waiting}}


class Kubelet:
    def __init__(self, store: Store, workdir: Path) -> None:
        self._store = store
        self._workdir = workdir
        self._containers: dict[str, Container] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        store.listeners.append(self._on_event)

    def _on_event(self, resource: str, kind: str, obj: Obj) -> None:
        if resource != "pods":
            return
        uid = obj["metadata"]["uid"]
        if kind == "ADDED":
            task = asyncio.get_running_loop().create_task(self._run(obj))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "DELETED" and uid in self._containers:
            self._containers.pop(uid).signal(signal.SIGKILL)

    async def terminate(self, uid: str, grace: float) -> None:
        """SIGTERM the container, SIGKILL it after ``grace`` seconds, return once it has stopped."""
        container = self._containers.get(uid)
        if container is None or container.process is None:
            return
        container.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(container.process.wait(), grace)
        except TimeoutError:
            container.signal(signal.SIGKILL)
            await container.process.wait()
        async with container.changed:
            await container.changed.wait_for(lambda: container.done)

    async def close(self) -> None:
        for container in self._containers.values():
            container.signal(signal.SIGKILL)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _set_status(self, pod: Obj, phase: str, container_status: Obj, **extra: Any) -> bool:
        meta = pod["metadata"]

        def mutate(obj: Obj) -> None:
            obj["spec"]["nodeName"] = NODE
            ready = "True" if phase == "Running" else "False"
            obj["status"] = {
                "phase": phase, "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
                "startTime": obj.get("status", {}).get("startTime") or now(), "qosClass": "Guaranteed",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now()},
                               {"type": "Ready", "status": ready, "lastTransitionTime": now()}],
                "containerStatuses": [container_status], **extra,
            }
        try:
            self._store.update("pods", meta["namespace"], meta["name"], mutate)
        except ApiError:
            return False
        return True

    async def _run(self, pod: Obj) -> None:
        spec = pod["spec"]["containers"][0]
        uid = pod["metadata"]["uid"]
        if spec["image"].startswith(UNPULLABLE_REGISTRY + "/"):
            image = spec["image"]
            self._set_status(pod, "Pending", _waiting(spec, "ErrImagePull", f"pull access denied for {image}"))
            self._set_status(pod, "Pending", _waiting(spec, "ImagePullBackOff", f'Back-off pulling image "{image}"'))
            return
        workdir = Path(tempfile.mkdtemp(prefix=f"pod-{uid[:8]}-", dir=self._workdir))
        message_file = workdir / "termination-log"
        message_file.touch()
        try:
            env = self._environment(pod, spec, str(message_file), workdir)
        except ContainerConfigError as exc:
            self._set_status(pod, "Pending", _waiting(spec, "CreateContainerConfigError", str(exc)))
            return
        argv = [arg.replace(spec.get("terminationMessagePath", "/dev/termination-log"), str(message_file))
                for arg in [*spec.get("command", []), *spec.get("args", [])]]
        container = self._containers[uid] = Container()
        started = now()
        try:
            container.process = await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=workdir, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        except (OSError, IndexError) as exc:
            await container.finish()
            self._terminated(pod, spec, started, 128, "StartError", f"failed to start container: {exc}")
            return
        running = {"name": spec["name"], "image": spec["image"], "imageID": f"sim://{spec['image']}",
                   "containerID": f"sim://{container.process.pid}", "ready": True, "restartCount": 0,
                   "started": True, "state": {"running": {"startedAt": started}}}
        self._set_status(pod, "Running", running, podIP="10.0.0.1", podIPs=[{"ip": "10.0.0.1"}])
        await self._pump(container)
        code = await container.process.wait()
        await container.finish()
        if self._containers.get(uid) is container:
            message = message_file.read_bytes()[:MESSAGE_LIMIT].decode(errors="replace")
            exit_code = code if code >= 0 else 128 - code
            self._terminated(pod, spec, started, exit_code, "Completed" if code == 0 else "Error", message or None)

    async def _pump(self, container: Container) -> None:
        assert container.process is not None and container.process.stdout is not None
        while chunk := await container.process.stdout.read(65536):
            await container.append(chunk)

    def _terminated(self, pod: Obj, spec: Obj, started: str, code: int, reason: str, message: str | None) -> None:
        state = {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now(),
                 **({"message": message} if message else {})}
        status = {"name": spec["name"], "image": spec["image"], "imageID": f"sim://{spec['image']}",
                  "ready": False, "restartCount": 0, "started": False, "state": {"terminated": state}}
        self._set_status(pod, "Succeeded" if code == 0 else "Failed", status)

    def _environment(self, pod: Obj, spec: Obj, message_file: str, workdir: Path) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir),
               "HOSTNAME": pod["metadata"]["name"]}
        for source in spec.get("envFrom") or []:
            if "secretRef" in source:
                env.update(self._secret(namespace, source["secretRef"]["name"]))
        for var in spec.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
            elif ref := var.get("valueFrom", {}).get("secretKeyRef"):
                data = self._secret(namespace, ref["name"])
                if ref["key"] not in data:
                    raise ContainerConfigError(f'couldn\'t find key {ref["key"]} in Secret {namespace}/{ref["name"]}')
                env[var["name"]] = data[ref["key"]]
        path = spec.get("terminationMessagePath", "/dev/termination-log")
        return {key: value.replace(path, message_file) for key, value in env.items()}

    def _secret(self, namespace: str, name: str) -> dict[str, str]:
        try:
            secret = self._store.get("secrets", namespace, name)
        except ApiError as exc:
            raise ContainerConfigError(f'secret "{name}" not found') from exc
        return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}

    async def log(self, namespace: str, name: str, *, follow: bool) -> AsyncIterator[bytes]:
        """The container's output from its start; with ``follow``, until the container ends or the pod goes."""
        pod = self._store.get("pods", namespace, name)
        container = self._containers.get(pod["metadata"]["uid"])
        if container is None:
            raise ApiError(400, "BadRequest", f'container "{pod["spec"]["containers"][0]["name"]}" in pod '
                                              f'"{name}" is waiting to start: ContainerCreating')
        return self._follow(container, follow)

    async def _follow(self, container: Container, follow: bool) -> AsyncIterator[bytes]:
        sent = 0
        while True:
            async with container.changed:
                if follow:
                    await container.changed.wait_for(lambda: container.done or len(container.log) > sent)  # noqa: B023
                chunk, finished = bytes(container.log[sent:]), container.done or not follow
            sent += len(chunk)
            if chunk:
                yield chunk
            if finished and sent >= len(container.log):
                return
