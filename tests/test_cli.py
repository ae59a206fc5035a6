"""The CLI as a person meets it, against a real gateway: what it prints, how it fails, its exit codes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_server.cli import _parser
from tests.gateway import Gateway, free_port, kubegate_env

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "build-test-deploy.json"
CLI = [sys.executable, "-m", "mcp_server.cli"]


def kubegate(args: list[str], gateway: Gateway, key: str, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args[:2], "--url", gateway.url, "--api-key", key, *args[2:]],
                          env=kubegate_env(gateway.data_dir, env), capture_output=True, text=True, timeout=120, cwd=cwd)


def plain_failure(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("kubegate: ") and text in lines[-1], done.stderr


def test_tasks_run_prints_the_logs_and_exits_with_the_tasks_code(gateway: Gateway, api_key: str) -> None:
    done = kubegate(["tasks", "run", "--", "sh", "-c", "echo first; sleep 1; echo second; exit 3"], gateway, api_key)
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == ["first", "second"]  # each line once, in order
    assert "failed (exit code 3)" in done.stderr.splitlines()[-1]
    task_id = done.stderr.split()[1]
    assert task_id.startswith("task_")

    shown = kubegate(["tasks", "get", task_id], gateway, api_key)
    assert shown.returncode == 0 and "status:       failed" in shown.stdout and "exitCode:     3" in shown.stdout
    as_json = json.loads(kubegate(["tasks", "get", task_id, "--json"], gateway, api_key).stdout)
    assert as_json["name"] == "sh" and as_json["exitCode"] == 3  # --name is optional: taken from the command
    logs = kubegate(["tasks", "logs", task_id], gateway, api_key)
    assert logs.stdout == "first\nsecond\n"
    deleted = kubegate(["tasks", "delete", task_id], gateway, api_key)
    assert deleted.returncode == 0 and f"deleted task {task_id}" in deleted.stdout
    plain_failure(kubegate(["tasks", "get", task_id], gateway, api_key), "Task not found")


def test_tasks_run_json_prints_the_task(gateway: Gateway, api_key: str) -> None:
    done = kubegate(["tasks", "run", "--name", "cli", "--json", "--", "sh", "-c", "echo from-cli"], gateway, api_key)
    assert done.returncode == 0, done.stderr
    task = json.loads(done.stdout)
    assert task["status"] == "completed" and "from-cli" in task["logs"] and "from-cli" in done.stderr


def test_workflows_run_counts_once_and_prints_the_step_table(gateway: Gateway, api_key: str) -> None:
    done = kubegate(["workflows", "run", str(EXAMPLE)], gateway, api_key)
    assert done.returncode == 0, done.stderr
    last_progress = done.stderr.strip().splitlines()[-1]
    assert last_progress.endswith("] 3/3 steps completed; workflow completed"), last_progress
    assert last_progress.count("3/3") == 1
    title, header, *rows = done.stdout.strip().splitlines()
    assert title.endswith("completed, 3/3 steps completed") and header.split() == ["STEP", "STATUS", "EXIT", "REASON",
                                                                                  "OUTPUT"]
    assert [r.split()[:3] for r in rows] == [["build", "completed", "0"], ["test", "completed", "0"],
                                             ["deploy", "completed", "0"]]
    workflow_id = title.split()[1]
    again = kubegate(["workflows", "get", workflow_id], gateway, api_key)
    assert again.stdout == done.stdout


def test_a_yaml_workflow_that_fails_names_the_step(gateway: Gateway, api_key: str, tmp_path: Path) -> None:
    file = tmp_path / "wf.yaml"
    file.write_text("name: breaks\nsteps:\n  - name: compile\n    image: alpine:3\n    command: [sh, -c, 'exit 2']\n"
                    "  - name: ship\n    image: alpine:3\n    command: ['true']\n    dependsOn: [compile]\n")
    done = kubegate(["workflows", "run", str(file)], gateway, api_key)
    assert done.returncode == 1
    assert "failed: step compile failed (error, exit code 2)" in done.stderr
    assert [r.split()[:2] for r in done.stdout.strip().splitlines()[2:]] == [["compile", "failed"], ["ship", "skipped"]]


def test_client_failures_are_one_plain_line(gateway: Gateway, api_key: str, tmp_path: Path) -> None:
    nobody = subprocess.run([*CLI, "tasks", "get", "task_x", "--url", f"http://127.0.0.1:{free_port()}",
                             "--api-key", api_key], env=kubegate_env(tmp_path), capture_output=True, text=True,
                            timeout=60)
    plain_failure(nobody, "is `kubegate serve` running? set KUBEGATE_URL")
    refused = kubegate(["tasks", "get", "task_x"], gateway, "sk_live_" + "x" * 43)
    plain_failure(refused, "refused the API key (invalid, expired or revoked)")
    assert "sk_live_xxx" not in refused.stderr
    no_key = subprocess.run([*CLI, "tasks", "run", "--url", gateway.url, "--", "true"],
                            env=kubegate_env(gateway.data_dir, {"HOME": str(tmp_path)}), capture_output=True,
                            text=True, timeout=60)
    plain_failure(no_key, "--api-key")
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("name: [unclosed\n")
    plain_failure(kubegate(["workflows", "run", str(bad_file)], gateway, api_key), "neither valid JSON nor YAML")


def test_the_default_url_follows_kubegate_port_and_the_config_file(gateway: Gateway, api_key: str,
                                                                    tmp_path: Path) -> None:
    env = kubegate_env(gateway.data_dir, {"KUBEGATE_PORT": str(gateway.port), "KUBEGATE_API_KEY": api_key,
                                          "HOME": str(tmp_path)})
    by_port = subprocess.run([*CLI, "tasks", "run", "--", "true"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert by_port.returncode == 0 and gateway.url in by_port.stderr, by_port.stderr

    config = tmp_path / "xdg" / "kubegate" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'url = "{gateway.url}"\napi_key = "{api_key}"\n')
    env = kubegate_env(gateway.data_dir, {"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    from_file = subprocess.run([*CLI, "tasks", "run", "--", "true"], env=env, capture_output=True, text=True,
                               timeout=120)
    assert from_file.returncode == 0, from_file.stderr
    flag_wins = subprocess.run([*CLI, "tasks", "run", "--api-key", "sk_live_" + "y" * 43, "--", "true"], env=env,
                               capture_output=True, text=True, timeout=120)
    plain_failure(flag_wins, "refused the API key")


@pytest.mark.parametrize(("env", "text"), [
    ({"KUBEGATE_LOG_TAIL_BYTES": "16"}, "KUBEGATE_LOG_TAIL_BYTES=16: Input should be greater than or equal to 1024"),
    ({"KUBEGATE_PORT": "http"}, "KUBEGATE_PORT=http"),
    ({"KUBEGATE_DEFAULT_TIMEOUT_SECONDS": "90000"}, "KUBEGATE_DEFAULT_TIMEOUT_SECONDS (90000) is above"),
    ({"KUBEGATE_OIDC_CLIENT_ID": "id", "KUBEGATE_OIDC_CLIENT_SECRET": "never-shown-42"}, "KUBEGATE_OIDC_ISSUER"),
    ({"KUBEGATE_OIDC_CLIENT_ID": "id"}, "set both KUBEGATE_OIDC_CLIENT_ID and KUBEGATE_OIDC_CLIENT_SECRET"),
])
def test_bad_settings_stop_serve_with_one_line(tmp_path: Path, env: dict[str, str], text: str) -> None:
    done = subprocess.run([*CLI, "serve"], env=kubegate_env(tmp_path / "data", env), capture_output=True, text=True,
                          timeout=60)
    plain_failure(done, text)
    assert "never-shown-42" not in done.stderr


def test_serve_says_where_everything_is_once_bound_and_one_line_when_it_cannot(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "data").start()
    try:
        gw.stop()  # the banner comes right after the bind; stopping flushes the log
        log = gw.logs()
        data_dir = (tmp_path / "data").resolve()
        for line in (f"listening on {gw.url}", "runtime    local processes; isolation:",
                     f"store      SQLite {data_dir}/kubegate.db", f"data dir   {data_dir}", f"dashboard  {gw.url}/",
                     f"API docs   {gw.url}/docs", f"first key  kubegate keys create --name me --data-dir {data_dir}"):
            assert line in log, log
        assert log.index("Uvicorn running on") < log.index("listening on")
    finally:
        gw.stop()
    holder = Gateway(tmp_path / "other").start()
    try:
        env = kubegate_env(tmp_path / "third", {"KUBEGATE_PORT": str(holder.port)})
        clash = subprocess.run([*CLI, "serve"], env=env, capture_output=True, text=True, timeout=60)
        plain_failure(clash, f"cannot listen on 127.0.0.1:{holder.port}")
        assert "listening on" not in clash.stderr
    finally:
        holder.stop()


def test_keys_name_their_absolute_data_dir_and_list_and_revoke(gateway: Gateway, tmp_path: Path) -> None:
    env = {k: v for k, v in kubegate_env(gateway.data_dir).items() if k != "KUBEGATE_DATA_DIR"}
    env["PYTHONPATH"] = str(EXAMPLE.parents[1])  # run this checkout's CLI from another directory
    relative = subprocess.run([*CLI, "keys", "create", "--name", "here"], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
    assert f"Data dir: {tmp_path.resolve()}/.kubegate" in relative.stdout

    def keys(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, "keys", *args, "--user", "keys-owner@example.test"],
                              env=kubegate_env(gateway.data_dir), capture_output=True, text=True, timeout=60)

    created = keys("create", "--name", "doomed")
    key = created.stdout.strip().splitlines()[-1]
    key_id = created.stdout.split()[3]
    listed = keys("list")
    assert f"(data dir {gateway.data_dir.resolve()})" in listed.stdout.splitlines()[0]
    assert any(line.startswith(key_id) and "doomed" in line for line in listed.stdout.splitlines())
    assert key not in listed.stdout
    assert kubegate(["tasks", "get", "task_x"], gateway, key).returncode == 2  # accepted: the task is just unknown
    revoked = keys("revoke", key_id)
    assert revoked.returncode == 0 and f"Revoked API key {key_id}" in revoked.stdout
    plain_failure(kubegate(["tasks", "get", "task_x"], gateway, key), "refused the API key")
    assert key_id not in keys("list").stdout


def test_stdio_with_a_bad_key_says_so_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run([*CLI, "stdio"], stdin=subprocess.DEVNULL,
                          env=kubegate_env(tmp_path, {"KUBEGATE_API_KEY": "sk_live_" + "x" * 43}),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "KUBEGATE_API_KEY is invalid" in done.stderr and "Traceback" not in done.stderr
    assert "sk_live_xxx" not in done.stderr, "the key itself is never echoed"


def test_help_describes_every_option() -> None:
    undocumented: list[str] = []

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)
            elif not action.help:
                undocumented.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")

    walk(_parser())
    assert undocumented == []
