"""``pods/{name}/exec`` over WebSocket, spoken as the API server speaks it (channel protocols v4 and v5).

Every binary or text frame starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final
``Status`` as JSON (``Success``, or ``NonZeroExitCode`` with the code in ``details.causes``),
4 terminal resize (ignored: there is no terminal), and on v5 only 255 "close channel N" (the
client's end of stdin). The command runs as a local process in the container's directory with
its environment, as the simulated kubelet runs the container itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from k8s.sim.containers import Container
from k8s.sim.kubelet import Kubelet
from k8s.sim.store import ApiError, Obj

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def exit_status(code: int) -> Obj:
    """The status channel's last word: ``Success``, or the exit code the way kubectl reads it back."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def _protocol(websocket: WebSocket) -> str | None:
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    return next((p for p in PROTOCOLS if p in offered), None)


class Exec:
    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet

    async def serve(self, websocket: WebSocket, namespace: str, name: str) -> None:
        query = websocket.query_params
        try:
            command = query.getlist("command")
            if not command:
                raise ApiError(400, "BadRequest", "you must specify at least one command for the container")
            if query.get("tty") in ("true", "1"):
                raise ApiError(400, "BadRequest", "tty is not supported by the fake cluster")
            container = self.kubelet.container(namespace, name, query.get("container"))
            if container.done:
                raise ApiError(400, "BadRequest", f"container is not running in pod {name}")
            protocol = _protocol(websocket)
            if protocol is None:
                raise ApiError(400, "BadRequest", f"a channel protocol is required, one of {', '.join(PROTOCOLS)}")
        except ApiError as exc:
            await websocket.send_denial_response(JSONResponse(exc.status(), status_code=exc.code))
            return
        await websocket.accept(subprotocol=protocol)
        wanted = {key: query.get(key) in ("true", "1") for key in ("stdin", "stdout", "stderr")}
        await _Session(websocket, protocol, container, wanted).run(command)


class _Session:
    def __init__(self, websocket: WebSocket, protocol: str, container: Container, wanted: dict[str, bool]) -> None:
        self.websocket, self.protocol, self.container, self.wanted = websocket, protocol, container, wanted
        self.send_lock = asyncio.Lock()

    async def _send(self, channel: int, data: bytes) -> None:
        async with self.send_lock:
            await self.websocket.send_bytes(bytes([channel]) + data)

    async def run(self, command: list[str]) -> None:
        pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        try:
            process = await asyncio.create_subprocess_exec(
                *self.container.net.wrap(command, cwd=self.container.workdir, path=self.container.env.get("PATH")),
                cwd=self.container.workdir, env=self.container.env, start_new_session=True,
                stdin=pipe if self.wanted["stdin"] else devnull,
                stdout=pipe if self.wanted["stdout"] else devnull, stderr=pipe if self.wanted["stderr"] else devnull)
        except OSError as exc:
            # What containerd answers for a missing or unrunnable executable, on the status channel.
            failure = {"metadata": {}, "status": "Failure", "reason": "InternalError", "code": 500,
                       "message": f'exec: "{command[0]}": {exc.strerror}: unknown'}
            await self._send(STATUS, json.dumps(failure).encode())
            await self.websocket.close()
            return
        reader = asyncio.create_task(self._stdin(process))
        try:
            await asyncio.gather(self._pump(process.stdout, STDOUT), self._pump(process.stderr, STDERR))
            code = await process.wait()
            await self._send(STATUS, json.dumps(exit_status(code if code >= 0 else 128 - code)).encode())
            await self.websocket.close()
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass  # the client went away: its command goes too, below
        finally:
            reader.cancel()
            if process.returncode is None:
                _kill(process)
                await process.wait()

    async def _pump(self, stream: asyncio.StreamReader | None, channel: int) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            await self._send(channel, chunk)

    async def _stdin(self, process: asyncio.subprocess.Process) -> None:
        try:
            while True:
                message: Any = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    _kill(process)
                    return
                data = message.get("bytes") or (message.get("text") or "").encode()
                await self._frame(process, data)
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            _kill(process)

    async def _frame(self, process: asyncio.subprocess.Process, data: bytes) -> None:
        if not data or process.stdin is None:
            return
        channel, payload = data[0], data[1:]
        if channel == STDIN and payload:
            process.stdin.write(payload)
            await process.stdin.drain()
        elif channel == CLOSE and self.protocol.startswith("v5") and payload[:1] == bytes([STDIN]):
            process.stdin.close()


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
