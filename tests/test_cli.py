"""The CLI's run commands against a real gateway: progress on stderr, the result on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.gateway import Gateway, kubegate_env

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "build-test-deploy.json"


def kubegate(args: list[str], gateway: Gateway, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_server.cli", *args[:2], "--url", gateway.url, "--api-key", key, *args[2:]],
        env=kubegate_env(gateway.data_dir), capture_output=True, text=True, timeout=120,
    )


def test_tasks_run_shows_progress_and_prints_the_task(gateway: Gateway, api_key: str) -> None:
    done = kubegate(["tasks", "run", "--name", "cli", "--", "sh", "-c", "echo from-cli; sleep 1.2"],
                    gateway, api_key)
    assert done.returncode == 0, done.stderr
    task = json.loads(done.stdout)
    assert task["status"] == "completed" and "from-cli" in task["logs"]
    assert f"task {task['id']}" in done.stderr and "task completed" in done.stderr.splitlines()[-1]

    failed = kubegate(["tasks", "run", "--name", "cli", "--", "sh", "-c", "exit 4"], gateway, api_key)
    assert failed.returncode == 1 and json.loads(failed.stdout)["exitCode"] == 4


def test_workflows_run_shows_steps_completed(gateway: Gateway, api_key: str) -> None:
    done = kubegate(["workflows", "run", str(EXAMPLE)], gateway, api_key)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    assert "3/3" in done.stderr.splitlines()[-1]


def test_run_without_a_key_is_refused(gateway: Gateway) -> None:
    done = subprocess.run([sys.executable, "-m", "mcp_server.cli", "tasks", "run", "--name", "x", "--url",
                           gateway.url, "--", "true"], env=kubegate_env(gateway.data_dir),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "api-key" in done.stderr


def test_stdio_with_a_bad_key_says_so_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mcp_server.cli", "stdio"], stdin=subprocess.DEVNULL,
                          env=kubegate_env(tmp_path, {"KUBEGATE_API_KEY": "sk_live_" + "x" * 43}),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "KUBEGATE_API_KEY is invalid" in done.stderr and "Traceback" not in done.stderr
    assert "sk_live_xxx" not in done.stderr, "the key itself is never echoed"
