"""``kubegate keys create`` goes through the registry like every door: same validation, same answer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.gateway import kubegate_env


def test_keys_create_refuses_what_every_door_refuses_with_the_same_message(tmp_path: Path) -> None:
    def create(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mcp_server.cli", "keys", "create", *args],
                              env=kubegate_env(tmp_path / "data"), capture_output=True, text=True, timeout=60)

    too_long = create("--name", "x", "--expires-in-days", "3651")
    assert too_long.returncode != 0 and "expiresInDays" in too_long.stderr and "sk_live_" not in too_long.stdout
    unknown = create("--name", "x", "--scopes", "nonsense:read")
    assert unknown.returncode != 0 and "scopes" in unknown.stderr
    made = create("--name", "ok", "--scopes", "tasks:read")
    assert made.returncode == 0 and made.stdout.strip().splitlines()[-1].startswith("sk_live_")
    assert "(scopes: tasks:read;" in made.stdout
