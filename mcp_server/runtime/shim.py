"""The supervisor of one local run, like containerd-shim; see ``BOOT`` for how it is started.

The gateway starts one shim per run in a session of its own and then may die at any moment;
the shim outlives it, so the run keeps going and its end is still recorded. The shim

1. records its pid and start time in ``RUN_DIR/shim.pid``, by which a restarted gateway knows it;
2. reads the plan the gateway left in ``RUN_DIR/spec.bin`` (marshal) and deletes it (it holds
   the run's env, which may carry secrets);
3. forks the log pump (``shimkit``); for a root gateway, claims a host uid for the run and hands
   it the run's dirs (``runuid``); then forks the task into its own process group and its cgroups,
   with the plan's rlimits, cwd and env, as that uid; its stdout and stderr go through the pump to
   the run's log, which is capped. A run with network gets slirp4netns attached before it is released;
4. waits for whichever comes first: the task's exit, the timeout, or SIGTERM/SIGINT/SIGHUP (a
   cancel). On timeout or cancel it sends SIGTERM to the group and SIGKILL after the grace.
   Meanwhile it measures the work dir (``diskuse``) and SIGKILLs a run past its disk allowance;
5. SIGKILLs whatever is left of the run once the task is gone and waits until it is gone, so
   nothing outlives a run: the shim is the child subreaper of the run, so every orphan of the run
   (with bubblewrap: the sandbox's pid 1, whose exit empties its pid namespace) becomes its child.
   Without bubblewrap the task also gets PR_SET_PDEATHSIG, bubblewrap's ``--die-with-parent``.
   Then it empties and removes the run's cgroups and waits for the pump to drain the log;
6. writes ``RUN_DIR/exit.json`` atomically (tmp + rename) and exits.

Exit codes follow the shell and Kubernetes: a task killed by signal N exited with 128 + N
(143 for SIGTERM, 137 for SIGKILL), with or without bubblewrap, which reports the same way.
SIGXFSZ (a file past the run's disk allowance) or a work dir past it gives reason ``disk_limit``
(the log says which); SIGKILL by the memory
cgroup's OOM killer gives ``memory_limit``.

Start-up cost is the run's latency, so this file imports only builtin or C modules: no
``json`` (it drags in ``re``), no ``signal`` (it drags in ``enum``), no ``typing``; and it never
imports the ``mcp_server`` package. Signals are blocked before the fork and collected with
``sigtimedwait``: no handlers, no threads, no polling, and no wake-up can be lost.
"""

from __future__ import annotations

import marshal
import os
import resource
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Callable
    from typing import Any

    from mcp_server.runtime import diskuse, shimkit
else:
    import _signal

    try:
        import diskuse
        import shimkit  # the shim process: its directory is on sys.path (see BOOT)
    except ImportError:
        from mcp_server.runtime import diskuse, shimkit  # imported by the gateway for its constants

BOOT = "import sys; sys.path.insert(0, sys.argv[1]); import shim; shim.boot(sys.argv[2])"
"""``python -I -S -c BOOT RUNTIME_DIR RUN_DIR``: imported, not run as a script, so that Python uses
its cached bytecode (a script is compiled at every start), and without the ``mcp_server`` package,
whose ``__init__`` modules are not ours to keep small."""

SPEC_FILE = "spec.bin"
LOG_FILE = "log"
PID_FILE = "shim.pid"
EXIT_FILE = "exit.json"
DEADLINE_FILE = "deadline"
"""Epoch seconds at which a long-lived run must end; re-read on SIGUSR1 (``extend``)."""
_STOP = {_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP}
_WAITED = {_signal.SIGCHLD, _signal.SIGUSR1, *_STOP}
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def main(run_dir: str) -> int:
    _signal.pthread_sigmask(_signal.SIG_BLOCK, _WAITED)
    started = time.time()
    pid = pump = 0
    cgroups: list[str] = []
    try:
        _write(os.path.join(run_dir, PID_FILE), f"{os.getpid()} {start_ticks('self')}\n")
        spec_path = os.path.join(run_dir, SPEC_FILE)
        with open(spec_path, "rb") as file:
            spec: dict[str, Any] = marshal.load(file)
        os.unlink(spec_path)
        cgroups = spec["cgroups"]
        prctl = _prctl()
        prctl(_PR_SET_CHILD_SUBREAPER, 1)
        pump, out = shimkit.start_pump(os.path.join(run_dir, LOG_FILE), spec["log_bytes"])
        if spec["run_uids"]:  # a root gateway: the run gets a host uid of its own (see runuid)
            spec["uid"], _held = shimkit.claim_uid(spec["uid_locks"], *spec["run_uids"])
            shimkit.hand_over(run_dir, spec["cwd"], spec["uid"])
        pid = _start(spec, prctl if spec["die_with_shim"] else None, out)
        disk = None
        if spec["disk_bytes"]:
            disk = diskuse.DiskWatch(spec["cwd"], spec["work_inside"], spec["disk_bytes"], spec["disk_files"],
                                     os.getpid())
        code, reason = _supervise(pid, float(spec["timeout"]), float(spec["grace"]), run_dir, disk)
        if code == 128 + _signal.SIGXFSZ and reason == "error":
            reason = "disk_limit"
        elif code == 128 + _signal.SIGKILL and reason == "error" and shimkit.oom_killed(cgroups):
            reason = "memory_limit"
    except Exception as exc:  # whatever broke, the run must still get an exit record
        os.write(2, f"kubegate shim: {exc!r}\n".encode())
        code, reason = None, "error"
    if pid:
        _kill_all(pid, pump, cgroups)
    _record(run_dir, code, reason, started)
    return 0


def _start(spec: dict[str, Any], prctl: Callable[[int, int], int] | None, out: int) -> int:
    """Fork the task (attaching its network when it has one); the shim keeps no copy of ``out``."""
    network: list[str] | None = spec["network"]
    if network is None:
        pid = _spawn(spec, prctl, out, ())
        os.close(out)
        return pid
    info_read, info_write, block_read, block_write = shimkit.network_fds()
    spec["argv"] = [{"%INFO_FD%": str(info_write), "%BLOCK_FD%": str(block_read)}.get(a, a) for a in spec["argv"]]
    pid = _spawn(spec, prctl, out, (info_write, block_read))
    for fd in (out, info_write, block_read):
        os.close(fd)
    shimkit.attach_network(network, info_read, block_write, rootless=os.geteuid() != 0)
    return pid


def boot(run_dir: str) -> None:
    """Entry point: exits without the interpreter's teardown, which costs milliseconds."""
    os._exit(main(run_dir))


def _prctl() -> Callable[[int, int], int]:
    """libc's ``prctl``, which ``os`` lacks.

    ``import ctypes`` costs ~3 ms of start-up; its C core alone costs ~0.5 ms and needs only the
    two small classes ``ctypes`` itself builds on it. The public module remains the fallback.
    """
    try:
        import _ctypes

        class _Int(_ctypes._SimpleCData):  # type: ignore[type-arg]
            _type_ = "i"

        class _Function(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = _Int

        class _Libc:
            _handle = _ctypes.dlopen(None)  # type: ignore[arg-type]

        function: Callable[[int, int], int] = _Function(("prctl", _Libc))  # type: ignore[arg-type]
    except (ImportError, AttributeError, TypeError):
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).prctl
    return function


def _spawn(spec: dict[str, Any], prctl: Callable[[int, int], int] | None, out: int, keep: tuple[int, ...]) -> int:
    shim = os.getpid()
    pid = os.fork()
    if pid == 0:
        _exec(spec, prctl, shim, out, keep)
    # Set here too so the group exists before the parent may signal it, whichever runs first.
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child already exec'd (EACCES) or is gone: its own setpgid did the job
    return pid


def _exec(spec: dict[str, Any], prctl: Callable[[int, int], int] | None, shim: int, out: int,
          keep: tuple[int, ...]) -> None:
    """Become the task; never returns."""
    argv: list[str] = spec["argv"]
    try:
        os.setpgid(0, 0)
        shimkit.join_cgroups(spec["cgroups"])  # before anything else runs: its children inherit them
        os.dup2(out, 1)
        os.dup2(out, 2)
        for fd in keep:
            os.set_inheritable(fd, True)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, _signal.SIGKILL)
            if os.getppid() != shim:
                os._exit(137)  # the shim died before the request took effect
        for res, soft, hard in spec["limits"]:
            resource.setrlimit(res, (soft, hard))
        if spec.get("uid"):
            shimkit.drop_to(spec["uid"])  # last: cgroups and limits are set; bwrap runs as the run's uid
        # Python ignores these at start-up and ignored signals survive exec: give them back.
        for signum in (_signal.SIGPIPE, _signal.SIGXFSZ):
            _signal.signal(signum, _signal.SIG_DFL)
        if spec["ignore_term"]:
            _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, set())
        os.chdir(spec["cwd"])
        os.execvpe(argv[0], argv, spec["env"])
    except BaseException as exc:  # the fork must never return into the shim
        os.write(2, f"kubegate: cannot run {argv[0]!r}: {exc}\n".encode(errors="replace"))
    finally:
        os._exit(127)


def _supervise(pid: int, timeout: float, grace: float, run_dir: str,
               disk: diskuse.DiskWatch | None) -> tuple[int, str]:
    deadline: float | None = time.monotonic() + timeout
    reason = ""
    measure_at = time.monotonic() + diskuse.INTERVAL if disk else None
    while (status := _exit_status(pid)) is None:
        wake = deadline if measure_at is None or (deadline is not None and deadline < measure_at) else measure_at
        signo = _next_signal(wake)
        if signo is None and wake is measure_at and disk is not None and not reason:
            if (over := disk.over()) is not None:
                reason = "disk_limit"
                _note(run_dir, f"kubegate: the run was stopped because {over} (KUBEGATE_RUN_DISK_BYTES, "
                               "KUBEGATE_RUN_DISK_FILES)")
                _kill_group(pid, _signal.SIGKILL)  # at once: every moment of grace is more writing
                deadline = measure_at = None
            else:
                measure_at = time.monotonic() + disk.interval
            continue
        if signo == _signal.SIGCHLD:
            continue
        if signo == _signal.SIGUSR1:
            if not reason:
                deadline = _read_deadline(run_dir, deadline)
            continue
        if signo is None and reason:
            _kill_group(pid, _signal.SIGKILL)  # the grace is over
            deadline = None
        elif not reason:
            reason = "timeout" if signo is None else "cancelled"
            _kill_group(pid, _signal.SIGTERM)
            deadline, measure_at = time.monotonic() + grace, None
    code = status if status >= 0 else 128 - status
    return code, reason or ("completed" if code == 0 else "error")


def _note(run_dir: str, line: str) -> None:
    """A line of the shim's own at the end of the run's log."""
    try:
        fd = os.open(os.path.join(run_dir, LOG_FILE), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def _read_deadline(run_dir: str, current: float | None) -> float | None:
    """The monotonic deadline the ``deadline`` file now asks for (``current`` if it is unreadable)."""
    try:
        with open(os.path.join(run_dir, DEADLINE_FILE), "rb") as file:
            wanted = float(file.read())
    except (OSError, ValueError):
        return current
    return time.monotonic() + max(0.0, wanted - time.time())


def _next_signal(deadline: float | None) -> int | None:
    """The next signal among those waited for, or None once ``deadline`` (monotonic) passes."""
    if deadline is None:
        return _signal.sigwaitinfo(_WAITED).si_signo
    info = _signal.sigtimedwait(_WAITED, max(0.0, deadline - time.monotonic()))
    return None if info is None else info.si_signo


def _exit_status(pid: int) -> int | None:
    """The task's exit code (-N for signal N) once it has exited, leaving it unreaped.

    Other children are orphans of the run adopted by the shim as subreaper: reaped as they end.
    """
    while (child := os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)) is not None:
        if child.si_pid == pid:
            return child.si_status if child.si_code == os.CLD_EXITED else -child.si_status
        os.waitpid(child.si_pid, 0)
    return None


def _kill_all(pid: int, pump: int, cgroups: list[str]) -> None:
    """SIGKILL what is left of the run and wait until it is gone, then for the log to be drained.

    First the task's group, while the unreaped task still holds its pid (so the group id cannot
    have been reused); then, as subreaper, every orphan adopted, including those that left the
    group, until none is left; then whatever is still in the run's cgroups. The log pump ends
    once the last of them has closed the log pipe.
    """
    _kill_group(pid, _signal.SIGKILL)
    os.waitpid(pid, 0)
    while children := [child for child in _children() if child != pump]:
        for child in children:
            _kill(child)
        for child in children:
            os.waitpid(child, 0)
    shimkit.kill_cgroups(cgroups)
    if pump:
        try:
            os.waitpid(pump, 0)
        except ChildProcessError:
            pass  # it ended early (the task closed its output) and was reaped with the orphans
    shimkit.remove_cgroups(cgroups)


def _children() -> list[int]:
    try:
        with open(f"/proc/self/task/{os.getpid()}/children", "rb") as file:
            return [int(pid) for pid in file.read().split()]
    except OSError:
        return []


def _kill(pid: int) -> None:
    try:
        os.kill(pid, _signal.SIGKILL)
    except ProcessLookupError:
        pass


def _kill_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def start_ticks(pid: str) -> int:
    """When process ``pid`` started, in clock ticks since boot: with the pid, its identity."""
    with open(f"/proc/{pid}/stat", "rb") as file:
        stat = file.read()
    # The command name may hold spaces and parentheses; the fields after its last ")" cannot.
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def _record(run_dir: str, code: int | None, reason: str, started: float) -> None:
    exit_code = "null" if code is None else str(code)
    body = (
        f'{{"exit_code": {exit_code}, "reason": "{reason}", '
        f'"started_at": {started!r}, "finished_at": {time.time()!r}}}\n'
    )
    try:
        _write(os.path.join(run_dir, EXIT_FILE), body)
    except FileNotFoundError:
        pass  # the run was removed while it ended: nobody is left to tell


def _write(path: str, text: str) -> None:
    """Readers see the whole file or none of it."""
    tmp = path + ".tmp"
    with open(tmp, "w") as file:
        file.write(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    boot(sys.argv[1])
