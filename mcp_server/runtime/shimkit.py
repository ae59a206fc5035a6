"""What the shim does around the task: cap its log, attach its network, join and empty its cgroups.

Imported by the shim at start-up (see ``shim``), so like it this module uses only builtin or C
modules and never the ``mcp_server`` package; the gateway imports it too, for the same cgroup
clean-up.

The log pump: the task writes into a pipe, and a forked pump appends what it reads to the run's
log. Past ``cap`` bytes it rewrites the file in place as a marker line followed by the newest
half of the cap, so the tail survives a flood and a reader sees that the head was dropped. It ends
when the last writer is gone, i.e. once nothing of the run is left.

The network: bwrap reports the sandbox's pid on its info fd and waits on its block fd;
``slirp4netns`` is attached to ``/proc/PID/ns/net`` (by path: joining by pid is refused) and the
sandbox is released once it reports ready. slirp connects out from the host's namespace, so any
address of the host itself (a gateway bound to 0.0.0.0, a database on the host's LAN address)
would be reachable through it; before the release the run's namespace gets a ``prohibit`` route
for every address of the host (``fence``), which the run, holding no capability, cannot remove.
The host's loopback is out of reach already (``--disable-host-loopback``). Should the fence fail,
slirp is killed and the run has no network rather than an unfenced one.
"""

from __future__ import annotations

import fcntl
import os
import select
import time

_NS_GET_USERNS = 0xB701  # linux/nsfs.h: the user namespace that owns a namespace

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
else:
    import _signal  # not ``signal``: it imports ``enum``, which costs start-up time

_SETUP_SECONDS = 10.0


def start_pump(log_path: str, cap: int) -> tuple[int, int]:
    """Fork the log pump; answers ``(pid, write_fd)``, the fd the task's stdout and stderr go to."""
    read, write = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(write)
            pump(read, log_path, cap)
        finally:
            os._exit(0)
    os.close(read)
    return pid, write


def pump(read: int, log_path: str, cap: int) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    size, dropped, broken = os.fstat(fd).st_size, 0, False
    while chunk := os.read(read, 65536):
        if broken:
            continue  # keep draining: the task must not die of SIGPIPE because the disk is full
        try:
            while chunk:
                written = os.write(fd, chunk)
                size, chunk = size + written, chunk[written:]
            if cap and size > cap:
                size = os.fstat(fd).st_size  # the shim may have appended a line of its own
                size, dropped = _drop_head(log_path, size, cap, dropped)
        except OSError:
            broken = True


def _drop_head(log_path: str, size: int, cap: int, dropped: int) -> tuple[int, int]:
    """Rewrite the log as a marker and its newest ``cap / 2`` bytes (through an fd without O_APPEND,
    on which ``pwrite`` would append)."""
    fd = os.open(log_path, os.O_RDWR | os.O_CLOEXEC)
    try:
        return _rewrite(fd, size, cap, dropped)
    finally:
        os.close(fd)


def _rewrite(fd: int, size: int, cap: int, dropped: int) -> tuple[int, int]:
    keep = cap // 2
    tail = os.pread(fd, keep, size - keep)
    newline = tail.find(b"\n", 0, 4096)  # start on a whole line when one starts nearby
    if newline >= 0:
        tail = tail[newline + 1 :]
    dropped += size - len(tail)
    marker = (
        f"[kubegate: this log passed its cap of {cap} bytes; the first {dropped} bytes were dropped,"
        " the newest output follows]\n"
    ).encode()
    body = marker[: cap // 4] + tail
    os.pwrite(fd, body, 0)
    os.ftruncate(fd, len(body))
    return len(body), dropped


def network_fds() -> tuple[int, int, int, int]:
    """``(info_read, info_write, block_read, block_write)``, all close-on-exec."""
    info_read, info_write = os.pipe2(os.O_CLOEXEC)
    block_read, block_write = os.pipe2(os.O_CLOEXEC)
    return info_read, info_write, block_read, block_write


def attach_network(slirp: list[str], info_read: int, block_write: int, rootless: bool) -> int:
    """Wire the sandbox to slirp4netns and release it; answers slirp's pid (0 if it failed)."""
    slirp_pid = 0
    try:
        info = _read_until(info_read, b"}")
        marker = info.find(b'"child-pid":')
        if marker < 0:
            raise OSError("bubblewrap did not report its sandbox")
        child = int(info[marker + 12 :].split(b",")[0].split(b"}")[0])
        _await_loopback(child)
        ready_read, ready_write = os.pipe2(os.O_CLOEXEC)
        netns = os.open(f"/proc/{child}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        owner = _owning_userns(netns) if rootless else -1
        argv = [*slirp, f"--ready-fd={ready_write}", "--netns-type=path", f"/proc/self/fd/{netns}", "tap0"]
        if rootless:
            argv[1:1] = [f"--userns-path=/proc/self/fd/{owner}"]
            os.set_inheritable(owner, True)
        os.set_inheritable(netns, True)
        os.set_inheritable(ready_write, True)
        slirp_pid = os.posix_spawn(argv[0], argv, {}, setsigmask=(), file_actions=[
            (os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)
        ])
        os.close(ready_write)
        for fd in (netns, owner):
            if fd >= 0:
                os.close(fd)
        if not _read_until(ready_read, b"1"):
            raise OSError("slirp4netns did not come up")
        os.close(ready_read)
        if not fence(child, rootless):
            _stop(slirp_pid)
            slirp_pid = 0
            raise OSError("the host's own addresses could not be fenced off")
    except (OSError, ValueError) as exc:
        os.write(2, f"kubegate: the run's network could not be attached ({exc}); it has none\n".encode())
    finally:
        os.write(block_write, b"1")  # released either way: without slirp the namespace stays empty
        os.close(block_write)
        os.close(info_read)
    return slirp_pid


_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000


def fence(child: int, rootless: bool) -> bool:
    """Add a ``prohibit`` route for each of the host's own addresses in ``child``'s network namespace.

    Done in a forked helper, which enters the namespace (and, for a gateway that is not root, the
    user namespace owning it first, where it holds every capability) and speaks rtnetlink.
    """
    addresses = host_addresses()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _enter_and_prohibit(child, rootless, addresses)
            code = 0
        except BaseException as exc:
            os.write(2, f"kubegate: fencing the run's network failed ({exc!r})\n".encode())
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def host_addresses() -> list[str]:
    """The host's own IPv4 addresses, loopback aside: the ``/32 host LOCAL`` entries of the fib."""
    with open("/proc/net/fib_trie", "rb") as file:
        lines = file.read().decode().splitlines()
    found = {lines[i - 1].split()[-1] for i, line in enumerate(lines) if i and line.strip() == "/32 host LOCAL"}
    return sorted(a for a in found if not a.startswith("127."))


def _enter_and_prohibit(child: int, rootless: bool, addresses: list[str]) -> None:
    import ctypes  # in the helper only: the shim itself stays lean

    libc = ctypes.CDLL(None, use_errno=True)
    netns = os.open(f"/proc/{child}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    if rootless and libc.setns(_owning_userns(netns), _CLONE_NEWUSER) != 0:
        raise OSError(ctypes.get_errno(), "setns(user)")
    if libc.setns(netns, _CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns(net)")
    _prohibit(addresses)


def _prohibit(addresses: list[str]) -> None:
    """``ip route add prohibit ADDRESS/32`` for each address, over rtnetlink (no ``ip`` binary needed)."""
    import socket
    import struct

    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        for seq, address in enumerate(addresses, start=1):
            # struct rtmsg: AF_INET, dst_len 32, src_len, tos, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
            # RTN_PROHIBIT, flags; then the RTA_DST attribute.
            body = struct.pack("=BBBBBBBBI", socket.AF_INET, 32, 0, 0, 254, 3, 0, 8, 0)
            body += struct.pack("=HH", 8, 1) + socket.inet_aton(address)
            flags = 0x1 | 0x4 | 0x200 | 0x400  # NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE
            sock.send(struct.pack("=IHHII", 16 + len(body), 24, flags, seq, 0) + body)  # RTM_NEWROUTE
            reply = sock.recv(65536)
            kind, = struct.unpack_from("=H", reply, 4)
            error, = struct.unpack_from("=i", reply, 16) if kind == 2 else (0,)  # NLMSG_ERROR carries errno
            if error:
                raise OSError(-error, f"route to {address}: {os.strerror(-error)}")


def _stop(pid: int) -> None:
    try:
        os.kill(pid, _signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _owning_userns(netns: int) -> int:
    """The user namespace that owns the run's network namespace, as a close-on-exec fd.

    ``/proc/PID/ns/user`` is not it: with ``--disable-userns`` bwrap nests a second user
    namespace after it reports the pid, and slirp joining that one gets EPERM on ``setns(net)``
    whenever it wins the race. The kernel names the owner directly (``NS_GET_USERNS``).
    """
    owner = fcntl.ioctl(netns, _NS_GET_USERNS)
    os.set_inheritable(owner, False)
    return owner


def _await_loopback(child: int) -> None:
    """Wait (briefly, bounded) until bwrap has brought up the sandbox's loopback.

    bwrap configures ``lo`` in the new namespace while it reports the pid, before it waits on
    the block fd; slirp4netns configuring the same namespace at that moment makes bwrap fail
    (``loopback: Failed RTM_NEWADDR``). The kernel offers no event for it short of a netlink
    socket inside the namespace, so the local routes are read until 127.0.0.1 appears (a
    millisecond or so; 2 s at most, after which slirp is started anyway).
    """
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child}/net/fib_trie", "rb") as file:
                if b"127.0.0.1" in file.read():
                    return
        except OSError:
            return  # the sandbox is gone already
        time.sleep(0.0005)


def _read_until(fd: int, end: bytes) -> bytes:
    data = b""
    while end not in data:
        if not select.select([fd], [], [], _SETUP_SECONDS)[0]:
            raise OSError("timed out")
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def join_cgroups(dirs: list[str]) -> None:
    for path in dirs:
        with open(f"{path}/cgroup.procs", "w") as file:
            file.write(str(os.getpid()))


def kill_cgroups(dirs: list[str]) -> None:
    """SIGKILL every process in the run's cgroups (in one write where ``cgroup.kill`` exists)."""
    for path in dirs:
        if os.path.exists(f"{path}/cgroup.kill"):
            try:
                with open(f"{path}/cgroup.kill", "w") as file:
                    file.write("1")
                return
            except OSError:
                pass
    for _ in range(100):  # a fork bomb refills the list while it is read; pids.max bounds it
        pids = {pid for path in dirs for pid in _procs(path)}
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass


def remove_cgroups(dirs: list[str]) -> list[str]:
    """Remove the run's cgroups; answers those that could not be removed."""
    left = []
    for path in dirs:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            left.append(path)
    return left


def oom_killed(dirs: list[str]) -> bool:
    """Whether the memory controller killed something in the run's cgroups."""
    for path in dirs:
        for name in ("memory.oom_control", "memory.events"):
            try:
                with open(f"{path}/{name}") as file:
                    for line in file:
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
            except (OSError, ValueError):
                continue
    return False


def _procs(path: str) -> list[int]:
    try:
        with open(f"{path}/cgroup.procs") as file:
            return [int(pid) for pid in file.read().split()]
    except (OSError, ValueError):
        return []


def claim_uid(locks: str, first: int, count: int) -> tuple[int, int]:
    """A uid of ``first .. first + count - 1`` no other live run holds, and the fd that holds it.

    Held by an ``flock`` on ``locks/UID`` for as long as the fd is open, i.e. until this supervisor
    ends, so a crashed gateway or supervisor never leaks one. The search starts at a point given by
    the pid, which spreads concurrent runs over the range instead of probing from its start.
    """
    start = os.getpid() % count
    for step in range(count):
        uid = first + (start + step) % count
        fd = os.open(f"{locks}/{uid}", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uid, fd
    raise OSError("every uid of KUBEGATE_RUN_UID_RANGE is held by a live run; widen the range")


def hand_over(run_dir: str, work: str, uid: int) -> None:
    """The run's uid may pass through its run dir (nothing else in it is its) and owns its work dir."""
    os.chown(run_dir, 0, uid)
    os.chmod(run_dir, 0o710)
    os.chown(work, uid, uid)
    os.chmod(work, 0o700)


def drop_to(uid: int) -> None:
    """Become ``uid`` for good: no supplementary groups, real, effective and saved ids all ``uid``."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
