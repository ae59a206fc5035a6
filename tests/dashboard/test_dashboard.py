"""The dashboard in headless Chromium: log in through a real OIDC provider, start a workflow from the
page, watch it finish live over /api/events (no reload, no polling), read a step's logs, mint and
revoke a key, log out. The gateway is a real ``kubegate serve``; the browser is Debian's chromium.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway import Gateway, mint_key

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # the provider imports authlib.jose, now deprecated
    import oidc_provider_mock

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="apt-get install chromium (.ci/test does)"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*",
                               "ignore::DeprecationWarning:oidc_provider_mock.*"),
]
ALICE = oidc_provider_mock.User(sub="alice", claims={"email": "alice@example.test", "email_verified": True})
WAIT_MS = 90_000


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with oidc_provider_mock.run_server_in_thread(user_claims=[ALICE]) as provider:
        gw = Gateway(tmp_path_factory.mktemp("dashboard"), env_extra={
            "KUBEGATE_OIDC_ISSUER": f"http://localhost:{provider.server_port}",
            "KUBEGATE_OIDC_CLIENT_ID": "kubegate-dashboard", "KUBEGATE_OIDC_CLIENT_SECRET": "dashboard-secret-1c9e",
        })
        gw.start()
        try:
            yield gw
        finally:
            gw.stop()


@pytest.fixture()
def page(gateway: Gateway) -> Iterator[playwright.Page]:
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context(base_url=gateway.url)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gateway.url)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("dialog", lambda dialog: dialog.accept())
        try:
            yield page
        finally:
            browser.close()


def log_in(page: playwright.Page) -> None:
    page.goto("/")
    page.get_by_role("link", name="Log in with your account").click()
    page.fill("input[name=sub]", "alice")
    page.get_by_role("button", name="Authorize").click()
    playwright.expect(page.locator("#who")).to_have_text("alice@example.test")
    playwright.expect(page.locator("#live")).to_have_attribute("data-state", "live")


def test_a_person_logs_in_runs_a_workflow_live_reads_logs_and_manages_keys(
        gateway: Gateway, page: playwright.Page, tmp_path: Path) -> None:
    stranger_key = mint_key(gateway.data_dir, user="mallory@example.test")
    log_in(page)
    list_reads: list[str] = []
    page.on("request", lambda r: list_reads.append(r.url) if r.url.endswith("/api/workflows?limit=50") else None)
    page.evaluate("window.__sameDocument = true")

    page.select_option("#start-example", "build-test-deploy.json")
    playwright.expect(page.locator("#start-body")).to_have_value(re.compile(r'"name": "build-test-deploy"'))
    playwright.expect(page.locator("#start-kind")).to_have_value("workflows")
    page.get_by_role("button", name="Start", exact=True).click()
    row = page.locator("#kind-workflows tbody tr[data-id^='workflow_']")
    playwright.expect(row).to_have_count(1)
    workflow_id = row.get_attribute("data-id")
    # Another user's work, started meanwhile, must never reach this page.
    foreign = httpx.post(f"{gateway.url}/api/tasks", headers={"Authorization": f"Bearer {stranger_key}"},
                         json={"name": "foreign", "image": "alpine:3", "command": ["true"]}, timeout=30).json()

    playwright.expect(row).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    assert page.evaluate("window.__sameDocument") is True  # updated live, never reloaded
    assert list_reads == []  # and not by polling the list
    assert page.locator(f"[data-id='{foreign['task']['id']}']").count() == 0

    details = page.get_by_role("button", name="Details of build-test-deploy")
    details.focus()
    page.keyboard.press("Enter")  # keyboard-usable
    steps = page.locator(f"#detail-{workflow_id} table.steps tbody tr[data-step]")
    playwright.expect(steps).to_have_count(3)
    playwright.expect(page.locator(f"#detail-{workflow_id} tr[data-step='deploy']")).to_have_attribute(
        "data-status", "completed")
    page.get_by_role("button", name="Logs of step build").click()
    playwright.expect(page.locator(f"pre[data-logs='{workflow_id}/build']")).to_contain_text("building myapp")

    page.fill("#key-name", "from-dashboard")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-value")
    playwright.expect(secret).to_have_text(re.compile(r"^sk_live_[0-9A-Za-z]{43}$"))
    key = secret.inner_text()
    page.get_by_role("button", name="Copy", exact=True).click()
    playwright.expect(page.locator("#copied")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == key
    assert httpx.get(f"{gateway.url}/api/api-keys", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000

    page.get_by_role("button", name="Revoke from-dashboard").click()
    playwright.expect(page.locator("#key-table tr", has_text="from-dashboard")).to_have_count(0)
    assert httpx.get(f"{gateway.url}/api/api-keys", headers={"Authorization": f"Bearer {key}"}).status_code == 401

    page.get_by_role("button", name="Log out").click()
    playwright.expect(page.get_by_role("link", name="Log in with your account")).to_be_visible()
    assert page.context.request.get(f"{gateway.url}/api/workflows").status == 401


def test_the_page_fits_a_phone_screen(gateway: Gateway, page: playwright.Page, tmp_path: Path) -> None:
    key = mint_key(gateway.data_dir, user="alice@example.test")
    body = {"name": "phone", "steps": [{"name": "only", "image": "alpine:3", "command": ["true"]}]}
    created = httpx.post(f"{gateway.url}/api/workflows", json=body, headers={"Authorization": f"Bearer {key}"})
    workflow_id = created.json()["workflow"]["id"]
    page.set_viewport_size({"width": 375, "height": 740})
    log_in(page)
    delete = page.locator(f"tr[data-id='{workflow_id}']").get_by_role("button", name="Delete phone")
    playwright.expect(delete).to_be_visible()
    box = delete.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 375  # every action within reach, no sideways scroll
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)
