"""One simulated container: a local process group, its timestamped log and its status as the kubelet reports it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

from k8s.sim.podnet import HOST_NETWORK, PodNet
from k8s.sim.store import ApiError, Obj, Store, now

MESSAGE_LIMIT = 4096


class ContainerConfigError(Exception):
    pass


def stamp(nanos: int) -> bytes:
    """RFC 3339 with nanoseconds, the way the kubelet prefixes log lines."""
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(nanos // 1_000_000_000))
            + f".{nanos % 1_000_000_000:09d}Z").encode()


class Container:
    def __init__(self, spec: Obj, workdir: Path, env: dict[str, str]) -> None:
        self.spec = spec
        self.workdir = workdir
        self.env = env
        self.lines: list[tuple[int, bytes]] = []
        """(nanoseconds, line) in order; a line keeps its newline (the last one may lack it)."""
        self.rotated = 0
        self.generation = 0
        self.changed = asyncio.Condition()
        self.done = False
        self.exit_code: int | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.net = PodNet(HOST_NETWORK)
        """The Pod's network; the kubelet sets it before ``start``, exec commands join it too."""
        self._started = ""
        self._finished = ""
        self._reason = ""
        self._error: str | None = None

    @property
    def message_path(self) -> Path:
        return self.workdir / "termination-log"

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.message_path.touch()
        target = self.spec.get("terminationMessagePath", "/dev/termination-log")
        argv = [arg.replace(target, str(self.message_path))
                for arg in [*self.spec.get("command", []), *self.spec.get("args", [])]]
        env = {key: value.replace(target, str(self.message_path)) for key, value in self.env.items()}
        self._started = now()
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.net.wrap(argv, cwd=self.workdir, path=env.get("PATH")), env=env, cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        except (OSError, IndexError) as exc:
            self._error = f"failed to start container: {exc}"
            await self._end(128, "StartError")

    async def wait(self) -> None:
        if self.process is None:
            return
        assert self.process.stdout is not None
        partial = b""
        while chunk := await self.process.stdout.read(65536):
            *complete, partial = (partial + chunk).split(b"\n")
            await self._append([line + b"\n" for line in complete])
        if partial:
            await self._append([partial])
        code = await self.process.wait()
        await self._end(code if code >= 0 else 128 - code, "Completed" if code == 0 else "Error")

    async def _append(self, lines: list[bytes]) -> None:
        if not lines:
            return
        async with self.changed:
            at = time.time_ns()  # one read, one timestamp: several lines may share it, as with a real runtime
            self.lines += [(at, line) for line in lines]
            self.changed.notify_all()

    async def _end(self, code: int, reason: str) -> None:
        async with self.changed:
            self.exit_code, self._reason, self._finished, self.done = code, reason, now(), True
            self.changed.notify_all()

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.returncode is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    async def stop(self, grace: float) -> None:
        """As the kubelet: the ``preStop`` hook (a ``sleep`` action) first, then SIGTERM, SIGKILL once ``grace``
        has passed since the stop began; a hook longer than ``grace`` gets 2 s more, not a SIGTERM never sent."""
        if self.process is None or self.done:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        pause = ((self.spec.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
        if pause > 0:
            with contextlib.suppress(TimeoutError):  # a container that ends by itself meanwhile is done
                await asyncio.wait_for(asyncio.shield(self.process.wait()), min(pause, grace))
            deadline = max(deadline, loop.time() + 2.0)
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), max(deadline - loop.time(), 0.0))
        except TimeoutError:
            self.signal(signal.SIGKILL)
        async with self.changed:
            await self.changed.wait_for(lambda: self.done)

    def rotate(self) -> None:
        self.rotated = len(self.lines)
        self.generation += 1

    def status(self) -> Obj:
        spec = self.spec
        base = {"name": spec["name"], "image": spec["image"], "imageID": f"sim://{spec['image']}",
                "restartCount": 0}
        if not self.done:
            pid = self.process.pid if self.process else 0
            return {**base, "containerID": f"sim://{pid}", "ready": True, "started": True,
                    "state": {"running": {"startedAt": self._started}}}
        message = self._error or self._message()
        state = {"exitCode": self.exit_code, "reason": self._reason, "startedAt": self._started,
                 "finishedAt": self._finished, **({"message": message} if message else {})}
        return {**base, "ready": False, "started": False, "state": {"terminated": state}}

    def _message(self) -> str | None:
        try:
            return self.message_path.read_bytes()[:MESSAGE_LIMIT].decode(errors="replace") or None
        except FileNotFoundError:
            return None

    async def follow(self, follow: bool, timestamps: bool, since: int | None) -> AsyncIterator[bytes]:
        sent, generation = self.rotated, self.generation
        while True:
            async with self.changed:
                if follow:
                    await self.changed.wait_for(
                        lambda: self.done or len(self.lines) > sent or self.generation != generation)  # noqa: B023
                batch, finished = self.lines[sent:], self.done or not follow or self.generation != generation
            sent += len(batch)
            chunk = b"".join((stamp(at) + b" " + line) if timestamps else line
                             for at, line in batch if since is None or at >= since)
            if chunk:
                yield chunk
            if finished and (sent >= len(self.lines) or self.generation != generation):
                return


def environment(store: Store, pod: Obj, spec: Obj, workdir: Path) -> dict[str, str]:
    """The container's environment, Secrets resolved; a missing Secret or key is the kubelet's config error."""
    namespace = pod["metadata"]["namespace"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "HOSTNAME": pod["metadata"]["name"]}
    for source in spec.get("envFrom") or []:
        if "secretRef" in source:
            env.update(_secret(store, namespace, source["secretRef"]["name"]))
    for var in spec.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif ref := var.get("valueFrom", {}).get("secretKeyRef"):
            data = _secret(store, namespace, ref["name"])
            if ref["key"] not in data:
                raise ContainerConfigError(f'couldn\'t find key {ref["key"]} in Secret {namespace}/{ref["name"]}')
            env[var["name"]] = data[ref["key"]]
    return env


def _secret(store: Store, namespace: str, name: str) -> dict[str, str]:
    try:
        secret = store.get("secrets", namespace, name)
    except ApiError as exc:
        raise ContainerConfigError(f'secret "{name}" not found') from exc
    return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
