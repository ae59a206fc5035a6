"""KUBEGATE_TEMPLATES_FILE: applied at every start as an upsert; a bad file stops the start with
one line naming the file and the field; the shipped examples really serve on this machine."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from mcp_server.engine.templates import read_templates_file
from tests.gateway import Gateway, free_port, kubegate_env, mint_key
from tests.templates.conftest import EXAMPLES

GOOD = """
templates:
  - name: web
    image: nginx:1.27
    port: 80
    cpuLimit: 1
  - name: worker
    image: python:3.12-slim
    command: [python3, -m, http.server]
    envVars:
      - name: WORKERS
        value: 4
"""


def _start_error(tmp_path: Path, text: str | None) -> str:
    """What ``kubegate serve`` says when it refuses to start with this templates file (None: no file)."""
    path = tmp_path / "templates.yaml"
    if text is not None:
        path.write_text(text)
    env = kubegate_env(tmp_path / "data", {"KUBEGATE_TEMPLATES_FILE": str(path), "KUBEGATE_PORT": str(free_port())})
    done = subprocess.run([sys.executable, "-m", "mcp_server.cli", "serve"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("kubegate: ") and str(path) in lines[-1], done.stderr
    return lines[-1]


@pytest.mark.parametrize(("text", "expected"), [
    (None, "No such file"),
    ("templates:\n  - name: web\n   image: [", "invalid YAML at line 3"),
    ("- name: web\n", "must be a mapping with a 'templates' list"),
    ("templates:\n  - name: web\n    image: nginx\n    port: 70000\n", "templates[0] (web): port:"),
    ("templates:\n  - name: ok\n    image: nginx\n  - name: web\n    image: nginx\n    memoryLimit: 1GB\n",
     "templates[1] (web): memoryLimit:"),
    ("templates:\n  - name: web\n    image: nginx\n    cpuRequest: 2\n", "templates[0] (web): cpuRequest: 2 is more"),
    ("templates:\n  - name: web\n    image: nginx\n    colour: blue\n", "templates[0] (web): colour: unknown field"),
    ("templates:\n  - name: web\n    image: nginx\n  - name: web\n    image: nginx\n", "name appears twice"),
    ("templates:\n  - image: nginx\n", "templates[0]: name: Field required"),
    ("templates:\n  - name: web\n    image: nginx\n    envVars:\n      - name: PW\n        secret: true\n",
     "envVars.0.value"),
])
def test_a_bad_file_stops_the_start_naming_file_and_field(tmp_path: Path, text: str | None, expected: str) -> None:
    assert expected in _start_error(tmp_path, text)


def _templates(gateway: Gateway, key: str) -> dict[str, dict[str, object]]:
    response = httpx.get(f"{gateway.url}/api/templates", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return {t["name"]: t for t in response.json()["templates"]}


def test_the_file_upserts_the_templates_it_names_and_leaves_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text(GOOD)
    data = tmp_path / "data"
    gateway = Gateway(data, env_extra={"KUBEGATE_TEMPLATES_FILE": str(path)}).start()
    key = mint_key(data)  # the local operator: an administrator
    auth = {"Authorization": f"Bearer {key}"}
    try:
        first = _templates(gateway, key)
        assert {n: (t["version"], t["source"], t["port"]) for n, t in first.items()} == {
            "web": (1, "file", 80), "worker": (1, "file", 8080)}
        assert (first["web"]["cpuLimit"], first["worker"]["envVars"]) == (
            "1", [{"name": "WORKERS", "value": "4", "secret": False}])  # YAML numbers read as the text
        made = httpx.post(f"{gateway.url}/api/templates", headers=auth, json={"name": "by-api", "image": "nginx"})
        edited = httpx.patch(f"{gateway.url}/api/templates/web", headers=auth, json={"port": 8000})
        assert made.status_code == 201 and edited.json()["template"]["version"] == 2
    finally:
        gateway.stop()

    path.write_text(GOOD.replace("port: 80", "port: 81").split("  - name: worker")[0])  # worker left out
    for _ in range(2):  # the second start finds nothing to change
        gateway = Gateway(data, env_extra={"KUBEGATE_TEMPLATES_FILE": str(path)}).start()
        try:
            now = _templates(gateway, key)
        finally:
            gateway.stop()
        assert {n: (t["version"], t["source"], t["port"]) for n, t in now.items()} == {
            "web": (3, "file", 81),  # the file wins over the API edit of a template it names
            "worker": (1, "file", 8080),  # no longer named: kept (admins delete through the API)
            "by-api": (1, "api", 8080),
        }


@pytest.mark.parametrize(("name", "path", "expected"), [
    ("static-site", "/", "<h1>Hello from kubegate</h1>"),
    ("hello-python", "/", "Hello from kubegate (token set)"),
    ("hello-python", "/healthz", "ok"),
])
def test_the_example_templates_serve_on_this_machine(name: str, path: str, expected: str) -> None:
    """Each example's command, run as the local runtime runs it (the host's userland), with its env."""
    (spec,) = [s for s in read_templates_file(EXAMPLES / "templates.yaml") if s.name == name]
    assert spec.command is not None
    port = free_port()
    env = {"PATH": os.environ["PATH"], "PORT": str(port), **{e.name: e.value for e in spec.env}}
    with tempfile.TemporaryDirectory() as work:
        app = subprocess.Popen(list(spec.command), cwd=work, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            health = _wait_ok(f"http://127.0.0.1:{port}{spec.health_check_path}", app)
            assert health.status_code == 200
            page = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert page.status_code == 200 and expected in page.text
        finally:
            app.kill()
            app.wait(timeout=10)


def _wait_ok(url: str, app: subprocess.Popen[bytes], deadline_s: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert app.poll() is None, "the example exited"
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.05)  # polling a port that is not open yet, within the deadline
    raise AssertionError(f"{url} never answered")
