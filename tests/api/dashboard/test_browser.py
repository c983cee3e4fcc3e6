"""The dashboard in a real browser: Playwright driving Debian's headless Chromium against a
real `roomlog serve`. Screenshots of each page go to `artifacts/screenshots/` (git-ignored)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import Server

CHROMIUM = os.environ.get("ROOMLOG_CHROMIUM", "/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no Chromium at {CHROMIUM}: install Debian's `chromium` package "
    "(`make test` does where it can) or set ROOMLOG_CHROMIUM",
)
# Headless and quiet: no GPU, no sandbox (containers lack the namespaces), no calls home.
LAUNCH_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "screenshots"


class Site:
    def __init__(self, server: Server, key: str) -> None:
        self.url = server.url
        self.key = key
        self.api = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'roomlog.db'}"
    created = subprocess.run(
        [sys.executable, "-m", "roomlog", "keys", "create", "--database-url", url],
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    server = Server(url, folder / "serve.log")
    site = Site(server, key)
    now = time.time()
    base = now - 4 * 3600

    def event(kind: str, room: str, pid: str, at: float, user: str | None = None) -> Any:
        body: dict[str, Any] = {
            "id": f"{kind}-{room}-{pid}-{at}",
            "type": f"participant.{kind}",
            "room": room,
            "participant_id": pid,
            "at": round(at, 3),
        }
        if user:
            body["user_name"] = user
        return body

    bodies = [
        # design: Ana stays on after Ben leaves; after 10 minutes alone the session splits.
        event("joined", "design", "ana-1", base, "Ana"),
        event("joined", "design", "ben-1", base + 100, "Ben"),
        event("left", "design", "ben-1", base + 200),
        event("joined", "design", "ben-1", base + 230, "Ben"),
        event("left", "design", "ben-1", base + 400),
        event("left", "design", "ana-1", base + 2000),
        {
            "type": "chat.message",
            "room": "design",
            "participant_id": "ben-1",
            "text": "Notes are in the doc",
            "at": base + 150,
        },
        # standup: going on now.
        event("joined", "standup", "chen-1", now - 300, "Chen"),
        event("joined", "standup", "dara-1", now - 200, "Dara"),
    ]
    answer = site.api.post("/v1/events", json=bodies)
    assert answer.status_code == 200 and answer.json()["rejected"] == [], answer.text
    try:
        yield site
    finally:
        site.api.close()
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only where Chromium is

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_a_newcomer_signs_in_finds_a_session_and_downloads_its_attendance(
    site: Site, browser: Any
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)

    page.goto(site.url + "/")
    assert "/sign-in" in page.url
    page.fill("#key", "rl_wrong_key")
    page.click("button[type=submit]")
    assert page.locator("#sign-in-error").is_visible()
    shoot(page, "sign-in")
    page.fill("#key", site.key)
    page.click("button[type=submit]")
    page.wait_for_url(site.url + "/")
    assert page.locator("#live").get_by_text("standup").is_visible()
    assert page.locator("#live").get_by_text("Chen, Dara").is_visible()
    # Someone joins another room: the live panel shows it without a reload.
    arrival = {
        "id": "late-arrival",
        "type": "participant.joined",
        "room": "retro",
        "participant_id": "eli-1",
        "user_name": "Eli",
        "at": round(time.time(), 3),
    }
    assert site.api.post("/v1/events", json=arrival).status_code == 200
    page.evaluate("() => { window.notReloaded = true; }")
    page.locator("#live").get_by_text("retro").wait_for(timeout=15_000)
    assert page.evaluate("() => window.notReloaded") is True
    shoot(page, "overview")

    page.get_by_role("link", name="Sessions", exact=True).click()
    page.wait_for_url("**/sessions")
    listed = site.api.get("/v1/meetings").json()
    assert page.locator("table.sessions tbody tr").count() == listed["total_count"]
    assert listed["total_count"] in (3, 4)  # the arrival's session begins 30 s after it
    page.fill("#room", "design")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/sessions?room=design**")
    rows = page.locator("table.sessions tbody tr")
    assert rows.count() == 2
    shoot(page, "sessions")

    # Newest first: the last row is the first design session, the one that split.
    rows.nth(1).get_by_role("link").click()
    page.wait_for_url("**/sessions/*")
    session_id = page.url.rsplit("/", 1)[1]
    meeting = site.api.get(f"/v1/meetings/{session_id}").json()
    records = site.api.get(f"/v1/meetings/{session_id}/participants").json()["data"]
    bars = page.locator(".timeline .bar")
    assert bars.count() == len(records) == 3
    for participant in {r["participant_id"] for r in records}:
        expected = sum(1 for r in records if r["participant_id"] == participant)
        track = page.locator(f'.track[data-participant="{participant}"] .bar')
        assert track.count() == expected
    assert "alone for 10 min" in page.locator("#ended").inner_text()
    first = bars.first
    first.hover()
    tip = first.get_attribute("data-tip")
    assert tip and "→" in tip
    shown = first.evaluate("bar => getComputedStyle(bar, '::after').content")
    assert shown == f'"{tip}"'
    first.focus()  # keyboard users get the same
    assert first.evaluate("bar => getComputedStyle(bar, '::after').content") == f'"{tip}"'
    shoot(page, "session")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download attendance (CSV)").click()
    saved = Path(download.value.path()).read_bytes().decode()
    served = site.api.get(f"/v1/meetings/{session_id}/attendance.csv").text
    assert saved == served
    exported = csv_rows(saved)
    assert {r["participant_id"] for r in exported} == {r["participant_id"] for r in records}
    assert all(r["session_id"] == meeting["id"] for r in exported)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download chat (CSV)").click()
    chat = csv_rows(Path(download.value.path()).read_bytes().decode())
    assert [(c["participant"], c["name"], c["text"]) for c in chat] == [
        ("ben-1", "Ben", "Notes are in the doc")
    ]

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/sign-in")
    page.goto(site.url + "/sessions")
    assert "/sign-in" in page.url
    context.close()


def test_the_session_page_reads_on_a_phone(site: Site, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True)
    page = context.new_page()
    page.goto(site.url + "/sign-in")
    page.fill("#key", site.key)
    page.click("button[type=submit]")
    page.wait_for_url(site.url + "/")
    [newest] = site.api.get("/v1/meetings", params={"room": "standup"}).json()["data"]
    page.goto(f"{site.url}/sessions/{newest['id']}")
    assert page.locator(".timeline .bar.open").count() == 2
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375
    shoot(page, "session-phone")
    context.close()
