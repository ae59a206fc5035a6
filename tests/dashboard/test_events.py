"""``GET /api/events`` over real HTTP: the caller's own changes arrive as they happen, nobody else's."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.gateway import Gateway, mint_key


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("events")).start()
    yield gw
    gw.stop()


class Stream:
    """Reads one event stream in a thread, collecting ``(event, data)`` pairs."""

    def __init__(self, url: str, key: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.status = 0
        self.arrived = threading.Condition()
        self.client = httpx.Client(timeout=httpx.Timeout(30, read=None))
        self.thread = threading.Thread(target=self._read, args=(url, key), daemon=True)
        self.thread.start()

    def _read(self, url: str, key: str) -> None:
        try:
            with self.client.stream("GET", f"{url}/api/events", headers={"Authorization": f"Bearer {key}"}) as r:
                self.status = r.status_code
                event = ""
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        with self.arrived:
                            self.events.append((event, json.loads(line[6:])))
                            self.arrived.notify_all()
        except httpx.HTTPError:
            pass

    def wait_for(self, event: str, object_id: str, **fields: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for name, data in self.events:
                obj = data.get("object") or {}
                if name == event and data.get("id") == object_id and all(obj.get(k) == v for k, v in fields.items()):
                    return data
            return None

        with self.arrived:
            assert self.arrived.wait_for(lambda: found() is not None, timeout=60), (event, object_id, self.events)
            result = found()
        assert result is not None
        return result

    def close(self) -> None:
        self.client.close()


def test_events_need_credentials(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/api/events")
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"


def test_the_stream_carries_my_changes_and_deletes_but_never_a_strangers(gateway: Gateway) -> None:
    mine = mint_key(gateway.data_dir, user="owner@example.test")
    theirs = mint_key(gateway.data_dir, user="stranger@example.test")
    stream = Stream(gateway.url, mine)
    try:
        with stream.arrived:
            assert stream.arrived.wait_for(lambda: any(e == "ready" for e, _ in stream.events), timeout=60)
        body = {"name": "seen", "image": "alpine:3", "command": ["sh", "-c", "echo secret-log-line"]}
        foreign = _post(gateway, theirs, "/api/tasks", {**body, "name": "unseen"})["task"]["id"]
        own = _post(gateway, mine, "/api/tasks", body)["task"]["id"]
        done = stream.wait_for("change", own, status="completed")
        assert done["kind"] == "tasks" and "logs" not in done["object"]  # logs are fetched on demand
        httpx.delete(f"{gateway.url}/api/tasks/{foreign}", headers={"Authorization": f"Bearer {theirs}"})
        httpx.delete(f"{gateway.url}/api/tasks/{own}", headers={"Authorization": f"Bearer {mine}"})
        stream.wait_for("removed", own)
        assert stream.status == 200
        assert all(data.get("id") != foreign for _, data in stream.events)
    finally:
        stream.close()


def _post(gateway: Gateway, key: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{gateway.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result
