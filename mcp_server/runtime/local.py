"""The local runtime: each run is a process under its own detached supervisor (the shim).

``start`` lays out the run's directory (see ``rundir``), spawns the shim (``python -I -S``)
in a new session with ``posix_spawn`` and emits ``started`` at once: the shim exists, and it
alone owns the run from then on (timeout, cancel, exit record), so the gateway may die at any
moment without losing it. The gateway learns that a shim ended from a pidfd registered with the
event loop: no polling, one file descriptor per running run, no thread (so hundreds of
concurrent runs cost hundreds of fds, well under the usual 1024). The pidfd also reaps the
shim when it is our child (``waitid(P_PIDFD)``), so no zombie is left behind, and it works the
same for shims inherited from a previous gateway, which ``recover`` re-attaches to after checking
their pid *and* start time (a reused pid has another start time).

Exit codes are 128 + N for a run killed by signal N (see ``shim``); a timeout or cancel ends with
SIGTERM to the run's process group and SIGKILL after ``grace_seconds``.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mcp_server.config import Settings
from mcp_server.errors import Conflict, Unavailable
from mcp_server.runtime import containment, isolation, shim
from mcp_server.runtime.base import DEFAULT_SIZE, SIZES, RunEvent, RunSpec
from mcp_server.runtime.follow import RunsFollower
from mcp_server.runtime.local_apps import PREFIX as APP_PREFIX
from mcp_server.runtime.local_apps import LocalApps
from mcp_server.runtime.retention import Retention
from mcp_server.runtime.rundir import RunDir, remove_tree
from mcp_server.runtime.shimkit import kill_cgroups, remove_cgroups
from mcp_server.runtime.workload import WORKLOAD_LABEL, LocalWorkloads

logger = logging.getLogger(__name__)

SHIM = Path(shim.__file__).resolve()
# Signals the gateway may have ignored or blocked, which the shim must see with default dispositions.
_SHIM_SIGDEF = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ)


@dataclass(eq=False)
class _Run:
    dir: RunDir
    timeout: float
    pidfd: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False
    quiet: bool = False
    """Followed only to be removed: its end is no event (its owner is going; a leader may report it)."""


class LocalRuntime:
    """Runs on this machine, confined with bubblewrap when available."""

    name = "local"

    def __init__(self, settings: Settings, *, grace_seconds: float = 2.0) -> None:
        self._runs_dir = settings.runs_dir.resolve()
        self._confinement, self._cgroups = containment.confine(settings)
        self._grace = grace_seconds
        self._runs: dict[str, _Run] = {}
        self._events: asyncio.Queue[RunEvent | None] = asyncio.Queue()
        self._retention = Retention(self._runs_dir, settings.run_retention_seconds, self._remove_files)
        self._closed = False
        self._follower: RunsFollower | None = None
        self.workloads = LocalWorkloads(self, settings)
        self.apps = LocalApps(self)
        if self._confinement.refusal is not None:
            logger.error("%s", self._confinement.refusal)

    async def ready(self) -> str | None:
        """``None`` when runs can start (for ``/readyz``), else why not."""
        if self._closed:
            return "the local runtime is closed"
        where = self._runs_dir if self._runs_dir.exists() else self._runs_dir.parent
        if not os.access(where, os.W_OK | os.X_OK):
            return "the runs directory is not writable"
        return self._confinement.refusal  # e.g. no usable bubblewrap under ``auto``

    @property
    def isolated(self) -> bool:
        """Whether runs are confined with bubblewrap."""
        return self._confinement.mode == "bwrap"

    @property
    def refusal(self) -> str | None:
        """Why this runtime refuses runs (no usable bubblewrap under ``auto``), or None."""
        return self._confinement.refusal

    @property
    def containment(self) -> dict[str, str]:
        """The isolation, limits and network in force, as ``/healthz`` shows them."""
        return containment.describe(self._confinement, self._cgroups)

    async def start(self, spec: RunSpec) -> None:
        await self.launch(spec)

    async def launch(self, spec: RunSpec, *, planned: RunSpec | None = None,
                     prepare: Callable[[RunDir], Sequence[int]] | None = None) -> None:
        """Start run ``spec``, confined as ``planned`` says (its command, limits; default ``spec``).

        ``prepare`` runs once the run's directory exists; the fds it returns become fds 3, 4, ...
        of the run (and are closed here once handed down). Long-lived workloads use both.
        """
        if self._closed:
            raise Unavailable("the local runtime is closed")
        run = _Run(RunDir(self._runs_dir, spec.run_id), spec.timeout_seconds)
        if spec.run_id in self._runs:
            raise Conflict(f"run {spec.run_id} already exists")
        cgroups = self._cgroups.dirs(spec.run_id) if self._cgroups is not None else []
        # Refuses before anything is made.
        plan = isolation.plan(planned or spec, run.dir.work, self._confinement, cgroups)
        self._make_cgroups(spec)
        try:
            run.dir.create(plan, timeout=spec.timeout_seconds, grace=self._grace)
        except FileExistsError as exc:
            remove_cgroups(cgroups)
            raise Conflict(f"run {spec.run_id} already exists") from exc
        except BaseException:
            remove_cgroups(cgroups)
            raise
        pass_fds: Sequence[int] = ()
        try:
            pass_fds = prepare(run.dir) if prepare is not None else ()
            pid = self._spawn(run.dir, pass_fds)
        except BaseException:
            remove_tree(run.dir.path)
            remove_cgroups(cgroups)
            raise
        finally:
            for fd in pass_fds:
                os.close(fd)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            # Without a pidfd the run could not be followed; better not to have it at all.
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            remove_tree(run.dir.path)
            remove_cgroups(cgroups)
            raise Unavailable(f"cannot follow a new run: {exc.strerror}") from exc
        self._runs[spec.run_id] = run
        self._attach(run, pidfd)
        self.emit(RunEvent(spec.run_id, "started", _now()))

    def _make_cgroups(self, spec: RunSpec) -> None:
        if self._cgroups is None:
            return
        try:
            self._cgroups.create(spec.run_id, SIZES.get(spec.size) or SIZES[DEFAULT_SIZE])
        except OSError as exc:
            raise Unavailable(f"cannot create the run's cgroups: {exc.strerror}") from exc

    def signal_shim(self, run_id: str, signum: int) -> bool:
        """Send ``signum`` to the run's supervisor; False when it is not running.

        A run this process does not follow is signalled through a pidfd of the moment, not adopted:
        a replica that is not the engine's leader must not report how the run ends.
        """
        run = self._runs.get(run_id)
        tracked = run.pidfd if run is not None else None
        try:
            pidfd = tracked if tracked is not None else _open_shim(RunDir(self._runs_dir, run_id))
        except ValueError:
            return False
        if pidfd is None:
            return False
        try:
            signal.pidfd_send_signal(pidfd, signum)
        except ProcessLookupError:
            return False
        finally:
            if pidfd is not tracked:
                os.close(pidfd)
        return True

    def run_dir(self, run_id: str) -> RunDir:
        return RunDir(self._runs_dir, run_id)

    def _spawn(self, run_dir: RunDir, pass_fds: Sequence[int] = ()) -> int:
        log = run_dir.open_log()
        # Out of the way first, so that no dup2 onto 3, 4, ... overwrites a passed fd still to come.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in pass_fds]
        passed = [(os.POSIX_SPAWN_DUP2, fd, 3 + i) for i, fd in enumerate(high)]
        try:
            return os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", "-c", shim.BOOT, str(SHIM.parent), str(run_dir.path)],
                {},
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log, 1),
                    (os.POSIX_SPAWN_DUP2, log, 2),
                    *passed,
                ],
                setsid=True,  # out of the gateway's session: its Ctrl-C or SIGHUP is not the run's
                setsigmask=(),
                setsigdef=_SHIM_SIGDEF,
            )
        finally:
            for fd in (log, *high):
                os.close(fd)

    def _attach(self, run: _Run, pidfd: int) -> None:
        run.pidfd = pidfd
        asyncio.get_running_loop().add_reader(pidfd, self._shim_ended, run)

    def _shim_ended(self, run: _Run) -> None:
        pidfd = run.pidfd
        if pidfd is None:
            return
        asyncio.get_running_loop().remove_reader(pidfd)
        try:
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            pass  # a shim inherited from an earlier gateway: init reaps it
        os.close(pidfd)
        run.pidfd = None
        self._finish(run)

    def _finish(self, run: _Run) -> None:
        run_id, output = run.dir.path.name, run.dir.output()
        record = run.dir.exit_record()
        if record is not None:
            message = _message(record.reason, record.exit_code, run.timeout)
            event = RunEvent(run_id, "exited", record.finished_at, record.exit_code, output, record.reason, message)
        elif run.cancelled or run.dir.was_cancelled():
            event = RunEvent(run_id, "exited", _now(), None, output, "cancelled")
        else:
            message = "the run's supervisor ended without recording how the run ended"
            event = RunEvent(run_id, "exited", _now(), None, output, "lost", message)
        if not run.quiet:
            self.emit(event)
            self._retention.schedule(run_id, event.at)
        run.done.set()

    def emit(self, event: RunEvent) -> None:
        if self._closed:
            return
        if event.run_id.startswith(APP_PREFIX):
            self.apps.on_run_event(event)  # a deployment replica: its app's business, not the engine's
        else:
            self._events.put_nowait(event)

    def run_ids(self, prefix: str) -> list[str]:
        """The runs on disk whose id starts with ``prefix``."""
        if not self._runs_dir.is_dir():
            return []
        return sorted(entry.name for entry in self._runs_dir.iterdir() if entry.name.startswith(prefix))

    async def cancel(self, run_id: str) -> None:
        run = self._runs.get(run_id) or self._adopt(run_id)
        if run is None or run.pidfd is None:
            return
        run.cancelled = True
        run.dir.mark_cancelled()  # remembered even if the shim dies before recording a reason
        try:
            signal.pidfd_send_signal(run.pidfd, signal.SIGTERM)
        except ProcessLookupError:
            pass  # it is ending anyway; its pidfd will report it

    async def remove(self, run_id: str) -> None:
        """See ``Runtime.remove``; raises ``Conflict`` naming what could not be removed, if anything."""
        run = self._runs.get(run_id) or self._adopt(run_id, quiet=True)
        if run is not None and not run.done.is_set():
            await self.cancel(run_id)
            try:
                await asyncio.wait_for(run.done.wait(), self._grace + 5)
            except TimeoutError:
                logger.warning("run %s did not end after a kill; removing its files anyway", run_id)
        self._runs.pop(run_id, None)
        self._retention.forget(run_id)
        left = await self._remove_files(run_id)
        if left:
            raise Conflict(f"run {run_id} was stopped but these could not be removed: {', '.join(left[:10])}")

    async def _remove_files(self, run_id: str) -> list[str]:
        """Kill what is left in the run's cgroups, then delete its cgroups and its directory."""
        try:
            path = RunDir(self._runs_dir, run_id).path
        except ValueError:
            return []
        left: list[str] = []
        if self._cgroups is not None:
            dirs = self._cgroups.dirs(run_id)
            kill_cgroups(dirs)
            left += remove_cgroups(dirs)
        return left + await asyncio.to_thread(remove_tree, path)

    def _adopt(self, run_id: str, *, quiet: bool = False) -> _Run | None:
        """Track a live shim this runtime did not start (no ``recover`` for it yet), if there is one."""
        if self._closed:
            return None
        try:
            run = _Run(RunDir(self._runs_dir, run_id), timeout=0.0, quiet=quiet)
        except ValueError:
            return None
        pidfd = _open_shim(run.dir)
        if pidfd is None:
            return None
        self._runs[run_id] = run
        self._attach(run, pidfd)
        return run

    async def recover(self, active: Sequence[RunSpec]) -> None:
        if self._follower is None:  # only the recovering process follows runs other processes start
            self._follower = RunsFollower(self._runs_dir, self.follow)
            self._follower.start()
        self._retention.sweep({spec.run_id for spec in active})
        for spec in active:
            if spec.run_id in self._runs:
                continue
            try:
                run = _Run(RunDir(self._runs_dir, spec.run_id), spec.timeout_seconds)
            except ValueError:
                self.emit(RunEvent(spec.run_id, "exited", _now(), reason="lost", message="invalid run id"))
                continue
            self._runs[spec.run_id] = run
            pidfd = _open_shim(run.dir)
            if pidfd is None:
                self._finish(run)
            else:
                self._attach(run, pidfd)
                if spec.labels.get(WORKLOAD_LABEL):
                    self.workloads.watch_ready(spec.run_id)

    def follow(self, run_id: str) -> None:
        """A run another process started has recorded its end: report it as if this runtime had started it."""
        if self._closed or run_id in self._runs:
            return
        if self._adopt(run_id) is not None:
            return  # its shim is still exiting: its end reports the run
        try:
            run = _Run(RunDir(self._runs_dir, run_id), timeout=0.0)
        except ValueError:
            return
        if run.dir.exit_record() is not None:
            self._runs[run_id] = run
            self._finish(run)

    def read_logs(self, run_id: str, *, tail: int) -> str:
        try:
            return RunDir(self._runs_dir, run_id).read_log(tail)
        except ValueError:
            return ""

    async def events(self) -> AsyncIterator[RunEvent]:
        while (event := await self._events.get()) is not None:
            yield event
        self._events.put_nowait(None)  # for any later iterator: the stream stays ended

    async def close(self) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        for run in self._runs.values():
            if run.pidfd is not None:
                loop.remove_reader(run.pidfd)
                os.close(run.pidfd)
                run.pidfd = None
        self._closed = True
        if self._follower is not None:
            self._follower.close()
        await self.workloads.close()
        await self.apps.close()
        self._retention.close()
        self._events.put_nowait(None)


def _open_shim(run_dir: RunDir) -> int | None:
    """A pidfd for the run's shim if it is still there; the start time tells it from a reused pid."""
    identity = run_dir.shim_identity()
    if identity is None:
        return None
    pid, ticks = identity
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    # Checked after opening: the pidfd pins the process, so the answer cannot go stale.
    try:
        same = shim.start_ticks(str(pid)) == ticks
    except (OSError, ValueError):
        same = False
    if not same:
        os.close(pidfd)
        return None
    return pidfd


def _message(reason: str, exit_code: int | None, timeout: float) -> str | None:
    if reason == "disk_limit":
        return ("the run outgrew its disk allowance (KUBEGATE_RUN_DISK_BYTES and KUBEGATE_RUN_DISK_FILES for its"
                " work dir, KUBEGATE_RUN_MAX_FILE_BYTES per file) and was stopped; its log says which")
    if reason == "memory_limit":
        return "the run outgrew its memory limit (its size) and was killed"
    if reason == "timeout":
        return f"timed out after {timeout:g}s" if timeout else "timed out"
    if reason == "error":
        return f"exited with code {exit_code}" if exit_code is not None else "the run could not be started"
    return None


def _now() -> datetime:
    return datetime.now(UTC)
