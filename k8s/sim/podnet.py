"""Per-Pod networking for the fake cluster: each Pod gets a network namespace and an address of its own.

Without it every simulated Pod would share the host's network: two Pods listening on 8080
collide, and nothing can address one Pod. With it (root, ``nsenter`` and ``slirp4netns``
present; ``PodNetwork.available``):

- a Pod's sandbox is a holder process (``sleep infinity``) in a new network namespace, as the
  kubelet's "pause" container; every container process, and every ``pods/exec`` command, runs
  in that namespace (``PodNet.wrap``);
- ``slirp4netns`` gives the namespace its interface (NAT out, no route to the host's loopback)
  and forwards each TCP ``containerPort`` the Pod declares from ``{podIP}:{port}`` on the
  host to the same port inside. The pod IP is a random ``127.x.y.z`` (any process on this
  machine can dial it; random, so fake clusters run side by side do not collide) and lands in
  the Pod's ``status.podIP``. Only declared ports are reachable, as with a ``hostPort``;
  declare the ports a Pod serves.

A Pod that declares no ports (a task's Job) stays on the host network: nothing needs to reach
it, and its start stays as quick as before.

Services reach them through ``k8s.sim.proxy`` (a kube-proxy for ``spec.clusterIP``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_READY_SECONDS = 10.0
_TRIES = 8


def random_loopback() -> str:
    """A random address in 127.0.0.0/8 away from 127.0.0.x (the usual one) and the broadcast ends."""
    return f"127.{random.randint(16, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


@dataclass
class PodNet:
    """One Pod's network: its address and namespace; ``close`` takes them down."""

    ip: str
    holder: asyncio.subprocess.Process | None = None
    slirp: asyncio.subprocess.Process | None = None
    ports: list[int] = field(default_factory=list)
    _scratch: Path | None = None

    @property
    def namespace(self) -> str | None:
        return f"/proc/{self.holder.pid}/ns/net" if self.holder is not None else None

    def wrap(self, argv: Sequence[str], *, cwd: Path, path: str | None) -> list[str]:
        """``argv`` run inside the Pod's network namespace (as is, on the host network).

        The executable is looked up here (``path`` is the container's ``PATH``) so a missing one
        fails to start as it would without ``nsenter`` in front, not as nsenter's exit 127.
        """
        if self.namespace is None:
            return list(argv)
        program = argv[0]
        found = str(cwd / program) if "/" in program else shutil.which(program, path=path)
        if found is None or not os.path.isfile(found):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if not os.access(found, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        # nsenter is the node's, found on the host's PATH: the container's PATH may not have it.
        return [shutil.which("nsenter") or "nsenter", f"--net={self.namespace}", "--", found, *argv[1:]]

    def kill(self) -> None:
        """SIGKILL the namespace's holder and slirp4netns, without waiting for them."""
        for process in (self.slirp, self.holder):
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGKILL)

    async def close(self) -> None:
        self.kill()
        for process in (self.slirp, self.holder):
            if process is not None:
                await process.wait()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


HOST_NETWORK = "127.0.0.1"


class PodNetwork:
    """Hands out ``PodNet``s; on the host network (every Pod at 127.0.0.1) when it cannot make namespaces."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = self.available() if enabled is None else enabled

    @staticmethod
    @functools.cache
    def available() -> bool:
        """Root, the tools, and a kernel (or container) that lets this process make a network namespace."""
        if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("nsenter", "slirp4netns", "unshare")):
            return False
        probe = subprocess.run(["unshare", "--net", "--", "true"], capture_output=True, check=False)
        return probe.returncode == 0

    async def attach(self, ports: Sequence[int]) -> PodNet:
        """A network for a new Pod whose declared TCP ``ports`` must be reachable at its address."""
        if not self.enabled or not ports:
            # A Pod that serves nothing (a task's) needs no address of its own; skipping the
            # namespace and slirp4netns keeps its start as quick as before per-Pod networks.
            return PodNet(HOST_NETWORK)
        net = PodNet("", ports=list(ports))
        try:
            await self._namespace(net)
            for _ in range(_TRIES):
                net.ip = random_loopback()
                if await self._forward(net):
                    return net
            raise OSError(f"no free pod address found for ports {list(ports)}")
        except BaseException:
            await net.close()
            raise

    async def _namespace(self, net: PodNet) -> None:
        net.holder = await asyncio.create_subprocess_exec(
            "unshare", "--net", "--", "sleep", "infinity", start_new_session=True,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL)
        net._scratch = Path(tempfile.mkdtemp(prefix="podnet-"))
        api = net._scratch / "api.sock"
        read, write = os.pipe()
        try:
            # The holder must have unshared before slirp4netns joins: wait until its namespace differs.
            async with asyncio.timeout(_READY_SECONDS):
                while os.readlink(f"/proc/{net.holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
                    await asyncio.sleep(0.002)
            net.slirp = await asyncio.create_subprocess_exec(
                "slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback", f"--ready-fd={write}",
                f"--api-socket={api}", "--netns-type=path", str(net.namespace), "tap0",
                pass_fds=(write,), start_new_session=True, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            os.close(write)
            write = -1
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(_READY_SECONDS):
                ready = await loop.run_in_executor(None, os.read, read, 1)
            if ready != b"1":
                raise OSError("slirp4netns did not configure the pod's network")
        finally:
            os.close(read)
            if write >= 0:
                os.close(write)

    async def _forward(self, net: PodNet) -> bool:
        """Forward every port from ``net.ip``; ``False`` when one is taken there (try another address)."""
        assert net._scratch is not None
        ids: list[object] = []
        for port in net.ports:
            reply = await _api(net._scratch / "api.sock", {"execute": "add_hostfwd", "arguments": {
                "proto": "tcp", "host_addr": net.ip, "host_port": port, "guest_port": port}})
            if "error" in reply:
                for forward in ids:
                    await _api(net._scratch / "api.sock", {"execute": "remove_hostfwd", "arguments": {"id": forward}})
                return False
            answer = reply["return"]
            assert isinstance(answer, dict)
            ids.append(answer["id"])
        return True


async def _api(path: Path, request: dict[str, object]) -> dict[str, object]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(json.dumps(request).encode())
        await writer.drain()
        writer.write_eof()
        reply: dict[str, object] = json.loads(await reader.read())
        return reply
    finally:
        writer.close()
