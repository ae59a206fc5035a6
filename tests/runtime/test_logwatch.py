from __future__ import annotations

from pathlib import Path

import anyio

from mcp_server.runtime.logwatch import LogWatcher
from tests.runtime.support import WAIT


async def test_a_write_to_a_watched_file_wakes_its_watchers(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.touch()
    watcher = LogWatcher()
    with watcher.watch(log) as (first, poll), watcher.watch(log) as (second, _):
        assert poll is None  # inotify, not the polling fallback
        with log.open("a") as file:
            file.write("line\n")
        with anyio.fail_after(WAIT):
            await first.wait()
            await second.wait()
    watcher.close()
