"""A sandbox's URL: its own origin, reached with its password or its owner's key, HTTP and WebSocket."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.doors import Door
from tests.gateway import Gateway, mint_key
from tests.sandboxes.support import (
    WS_ECHO,
    basic,
    create,
    exec_ok,
    fetch,
    gateway_socket,
    host_of,
    wait_served,
)


async def serving(rest: Door, name: str, script: str) -> tuple[str, str, str]:
    """A sandbox running ``script`` in the background on its port: (id, url, password)."""
    created = await create(rest, name, timeout="10m")
    await exec_ok(rest, created["id"], f"nohup {script} >server.log 2>&1 &")
    return created["id"], created["url"], created["credentials"]["password"]


async def test_http_through_the_url_needs_the_password_or_the_owners_key(
        rest: Door, sbx_gateway: Gateway, sbx_key: str, sbx_data_dir: object) -> None:
    sid, url, password = await serving(rest, "web", "python3 -m http.server 8080")
    await exec_ok(rest, sid, "echo served-from-sandbox > page.txt")
    try:
        ok = await wait_served(sbx_gateway.url, url, password)
        assert ok.status_code == 200 and "page.txt" in ok.text
        by_key = await fetch(sbx_gateway.url, url, "/page.txt", authorization=f"Bearer {sbx_key}")
        assert by_key.status_code == 200 and by_key.text == "served-from-sandbox\n"

        anonymous = await fetch(sbx_gateway.url, url, "/page.txt")
        assert anonymous.status_code == 401 and "served-from-sandbox" not in anonymous.text
        assert anonymous.headers["www-authenticate"].startswith("Basic")
        wrong = await fetch(sbx_gateway.url, url, "/page.txt", authorization=basic("not-the-password"))
        assert wrong.status_code == 401
        bogus_key = await fetch(sbx_gateway.url, url, "/page.txt", authorization="Bearer sk_live_nope")
        assert bogus_key.status_code == 401
        stranger = mint_key(sbx_data_dir, user="stranger@example.test")  # type: ignore[arg-type]
        other = await fetch(sbx_gateway.url, url, "/page.txt", authorization=f"Bearer {stranger}")
        assert other.status_code == 404 and "served-from-sandbox" not in other.text
        unknown = await fetch(sbx_gateway.url, url.replace("web-", "nothere-"), "/", authorization=basic(password))
        assert unknown.status_code == 401

        # The sandbox's origin is not the gateway's: /api there is the sandbox's own path.
        api = await fetch(sbx_gateway.url, url, "/api/sandboxes", authorization=f"Bearer {sbx_key}")
        assert api.status_code == 404 and "x-ratelimit-limit" not in api.headers
        assert "sandbox_" not in api.text
    finally:
        await rest.call("sandboxes_delete", {"sandboxId": sid})


async def test_login_form_sets_a_cookie_for_that_host_only(rest: Door, sbx_gateway: Gateway) -> None:
    sid, url, password = await serving(rest, "form", "python3 -m http.server 8080")
    try:
        await wait_served(sbx_gateway.url, url, password)
        page = await fetch(sbx_gateway.url, url, "/", accept="text/html")
        assert page.status_code == 401 and "<form" in page.text
        async with httpx.AsyncClient(base_url=sbx_gateway.url, headers={"Host": host_of(url)}) as client:
            refused = await client.post("/.kubegate/login", data={"password": "wrong", "next": "/"})
            assert refused.status_code == 401 and not refused.cookies
            login = await client.post("/.kubegate/login", data={"password": password, "next": "/x"})
            assert login.status_code == 303 and login.headers["location"] == "/x"
            set_cookie = login.headers["set-cookie"]
            assert "HttpOnly" in set_cookie and "Domain" not in set_cookie and password not in set_cookie
            cookie = set_cookie.split(";")[0]
            listed = await client.get("/", headers={"Cookie": cookie})
            assert listed.status_code == 200 and "server.log" in listed.text
        log = await exec_ok(rest, sid, "cat server.log")
        assert "kubegate_sandbox" not in log["stdout"]
    finally:
        await rest.call("sandboxes_delete", {"sandboxId": sid})


async def test_websocket_echo_through_the_url(rest: Door, sbx_gateway: Gateway) -> None:
    created = await create(rest, "ws", timeout="10m")
    sid, url, password = created["id"], created["url"], created["credentials"]["password"]
    await rest.call("sandboxes_write_file", {"sandboxId": sid, "path": "ws.py", "content": WS_ECHO})
    await exec_ok(rest, sid, "nohup python3 ws.py >ws.log 2>&1 &")
    try:
        await wait_served(sbx_gateway.url, url, password)  # any answer but 502: it listens
        uri = "ws://" + host_of(url) + "/echo"
        async with connect(uri, sock=gateway_socket(sbx_gateway.url),
                           additional_headers={"Authorization": basic(password)}) as ws:
            await ws.send("hello")
            assert await ws.recv() == "echo:hello"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"echo:\x00\x01"
        with pytest.raises(Exception, match="1008|403|policy"):
            async with connect(uri, sock=gateway_socket(sbx_gateway.url)) as ws:
                await ws.recv()
    finally:
        await rest.call("sandboxes_delete", {"sandboxId": sid})
