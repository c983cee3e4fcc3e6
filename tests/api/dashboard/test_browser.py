"""The dashboard in a real browser: Playwright driving Debian's headless Chromium against a
real `roomlog serve`, in America/New_York at desktop (1440) and phone (390) widths.
Screenshots of each page go to `artifacts/screenshots/` (git-ignored)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from roomlog.domain.events import MICROS
from roomlog.domain.timeline import span
from tests.receiver import Receiver
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
ZONE = "America/New_York"
NEW_YORK = ZoneInfo(ZONE)
WIDTHS = (1440, 390)


class Site:
    def __init__(self, server: Server, key: str) -> None:
        self.url = server.url
        self.key = key
        self.api = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        self.late_night = ""  # the New York day of the session that began at 23:30 there


def shown(seconds: int, zone: Any = NEW_YORK) -> str:
    """An instant as the dashboard should show it in `zone`."""
    return datetime.fromtimestamp(seconds, tz=UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def event(kind: str, room: str, pid: str, at: float, user: str | None = None) -> Any:
    body: dict[str, Any] = {
        "id": f"{kind}-{room}-{pid}-{at}",
        "type": f"participant.{kind}",
        "room": room,
        "participant_id": pid,
        "at": round(at, 3),
    }
    if user:
        body["user_id"] = user.lower()
        body["user_name"] = user
    return body


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
    receiver = Receiver()
    made = site.api.post("/v1/webhooks", json={"url": receiver.url})
    assert made.status_code == 200, made.text
    now = time.time()
    base = now - 4 * 3600
    # A session that began at 23:30 in New York two days ago: 04:30 UTC the day after.
    evening = datetime.now(NEW_YORK).replace(hour=23, minute=30, second=0, microsecond=0)
    evening -= timedelta(days=2)
    site.late_night = evening.date().isoformat()
    late = evening.timestamp()
    bodies = [
        # design: Ana on a laptop and, for a while, a phone; Ben drops and rejoins. After Ben
        # leaves, Ana stays alone: after 10 minutes the session splits.
        event("joined", "design", "ana-laptop", base, "Ana"),
        event("joined", "design", "ben-1", base + 100, "Ben"),
        event("joined", "design", "ana-phone", base + 300, "Ana"),
        event("left", "design", "ben-1", base + 200),
        event("joined", "design", "ben-2", base + 230, "Ben"),
        event("left", "design", "ana-phone", base + 500),
        event("left", "design", "ben-2", base + 400),
        event("left", "design", "ana-laptop", base + 2000),
        {
            "type": "chat.message",
            "room": "design",
            "participant_id": "ben-1",
            "text": "Notes are in the doc",
            "at": base + 150,
        },
        event("joined", "late-night", "eli-1", late, "Eli"),
        event("joined", "late-night", "fay-1", late + 60, "Fay"),
        event("left", "late-night", "fay-1", late + 900),
        event("left", "late-night", "eli-1", late + 960),
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
        receiver.stop()


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


def signed_in(browser: Any, site: Site, width: int = 1440) -> tuple[Any, Any]:
    context = browser.new_context(
        viewport={"width": width, "height": 900},
        timezone_id=ZONE,
        accept_downloads=True,
        is_mobile=width < 600,
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(site.url + "/sign-in")
    page.fill("#key", site.key)
    page.click("button[type=submit]")
    page.wait_for_url(site.url + "/")
    return context, page


def design_sessions(site: Site) -> list[Any]:
    found = site.api.get("/v1/meetings", params={"room": "design"}).json()["data"]
    return sorted(found, key=lambda m: m["start_time"])


def test_a_newcomer_signs_in_finds_a_session_and_downloads_its_attendance(
    site: Site, browser: Any
) -> None:
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, timezone_id=ZONE, accept_downloads=True
    )
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
    assert f"in your time zone, {ZONE}" in page.locator("footer").inner_text()
    # Someone joins another room: the live panel shows it without a reload.
    arrival = event("joined", "retro", "gil-1", time.time(), "Gil")
    assert site.api.post("/v1/events", json=arrival).status_code == 200
    page.evaluate("() => { window.notReloaded = true; }")
    page.locator("#live").get_by_text("retro").wait_for(timeout=15_000)
    assert page.evaluate("() => window.notReloaded") is True
    shoot(page, "overview")

    page.get_by_role("link", name="Sessions", exact=True).click()
    page.wait_for_url("**/sessions")
    listed = site.api.get("/v1/meetings").json()
    assert page.locator("table.sessions tbody tr").count() == listed["total_count"]
    # Times are New York's, to the second, with how long ago.
    newest = page.locator("table.sessions tbody tr").first
    assert newest.locator("time").inner_text() == shown(listed["data"][0]["start_time"])
    assert "ago" in newest.inner_text()
    page.fill("#q", "SIG")  # part of the name, in any case
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/sessions?q=SIG**")
    rows = page.locator("table.sessions tbody tr")
    assert rows.count() == 2
    shoot(page, "sessions")

    # Oldest last: the first design session, the one that split. One row per person.
    first, second = design_sessions(site)
    rows.nth(1).get_by_role("link").click()
    page.wait_for_url(f"**/sessions/{first['id']}")
    people = site.api.get(f"/v1/meetings/{first['id']}/attendance").json()["data"]
    assert {p["person"] for p in people} == {"ana", "ben"}
    assert page.locator(".track").count() == 2
    ana = page.locator('.track[data-person="ana"] .bar')
    assert ana.count() == 2 and page.locator('.track[data-person="ana"] .bar.again').count() == 1
    assert page.locator('.track[data-person="ben"] .bar').count() == 2
    assert page.locator('.track[data-person="ben"] .bar.again').count() == 0  # one at a time
    assert "alone for 10 min" in page.locator("#ended").inner_text()
    bar = ana.first
    bar.hover()
    tip = bar.get_attribute("data-tip")
    assert tip and "→" in tip and "ana-laptop" in tip
    assert bar.evaluate("bar => getComputedStyle(bar, '::after').content") == f'"{tip}"'
    bar.focus()  # keyboard users get the same
    assert bar.evaluate("bar => getComputedStyle(bar, '::after').content") == f'"{tip}"'
    lines = page.locator("table.attendance tbody tr")
    assert lines.count() == 2
    for person in people:
        line = page.locator("table.attendance tbody tr", has=page.get_by_text(person["user_name"]))
        attended = line.locator("td[data-label=Attended]").inner_text()
        assert attended == span(person["attended"] * MICROS)
        share = line.locator("td[data-label=Share]").inner_text()
        assert abs(float(share.rstrip("%")) - 100 * person["share"]) <= 0.1
    assert page.locator(".chat").get_by_text("Notes are in the doc").is_visible()
    assert page.locator(".legend").get_by_text("Another device at the same time").is_visible()
    shoot(page, "session")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download attendance (CSV)").click()
    exported = csv_rows(Path(download.value.path()).read_bytes().decode())
    assert [(r["person"], int(r["attended"])) for r in exported] == [
        (p["person"], p["attended"]) for p in people
    ]
    assert {r["participant_ids"] for r in exported} == {"ana-laptop ana-phone", "ben-1 ben-2"}
    with page.expect_download() as download:
        page.get_by_role("link", name="Download chat (CSV)").click()
    chat = csv_rows(Path(download.value.path()).read_bytes().decode())
    assert [(c["participant"], c["name"], c["text"]) for c in chat] == [
        ("ben-1", "Ben", "Notes are in the doc")
    ]

    # The two parts of the split link to each other.
    page.get_by_role("link", name="Later part →").click()
    page.wait_for_url(f"**/sessions/{second['id']}")
    page.get_by_role("link", name="← Earlier part").click()
    page.wait_for_url(f"**/sessions/{first['id']}")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/sign-in")
    page.goto(site.url + "/sessions")
    assert "/sign-in" in page.url
    context.close()


def test_times_switch_to_utc_and_back(site: Site, browser: Any) -> None:
    context, page = signed_in(browser, site)
    first, _ = design_sessions(site)
    page.goto(f"{site.url}/sessions/{first['id']}")
    start = page.locator(".facts time").first
    assert start.inner_text() == shown(first["start_time"])
    assert "." in (start.get_attribute("title") or "")  # the exact instant, to the millisecond
    page.get_by_role("button", name="Show UTC").click()
    page.wait_for_load_state("load")
    page.locator("#zone-note", has_text="Times are UTC").wait_for()
    assert page.locator(".facts time").first.inner_text() == shown(first["start_time"], UTC)
    page.get_by_role("button", name="Show my time zone").click()
    page.locator("#zone-note", has_text=ZONE).wait_for()
    assert page.locator(".facts time").first.inner_text() == shown(first["start_time"])
    context.close()


def test_date_filters_count_the_viewers_days(site: Site, browser: Any) -> None:
    context, page = signed_in(browser, site)
    day = site.late_night
    page.goto(f"{site.url}/sessions?start={day}&end={day}")
    rooms = page.locator("table.sessions tbody tr td[data-label=Room]").all_inner_texts()
    assert rooms == ["late-night"]  # 04:30 UTC the next day, 23:30 in New York
    page.get_by_role("button", name="Show UTC").click()
    page.locator("#zone-note", has_text="Times are UTC").wait_for()
    rooms = page.locator("table.sessions tbody tr td[data-label=Room]").all_inner_texts()
    assert "late-night" not in rooms
    page.get_by_role("button", name="Show my time zone").click()
    page.locator("#zone-note", has_text=ZONE).wait_for()
    # Quick ranges: the last 7 days hold every session here.
    with page.expect_navigation():
        page.get_by_role("link", name="Last 7 days").click()
    total = site.api.get("/v1/meetings").json()["total_count"]
    assert page.locator("table.sessions tbody tr").count() == total
    context.close()


def test_people_are_found_by_part_of_a_name_and_their_sessions_add_up(
    site: Site, browser: Any
) -> None:
    context, page = signed_in(browser, site)
    page.get_by_role("link", name="People", exact=True).click()
    page.fill("#q", "an")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**q=an**")
    names = page.locator("tbody td[data-label=Person] a").all_inner_texts()
    assert names == ["Ana"]
    shoot(page, "people")
    page.get_by_role("link", name="Ana").click()
    page.wait_for_url("**/person?person=ana**")
    [ana] = site.api.get("/v1/attendance", params={"person": "ana"}).json()["data"]
    assert page.locator("#person-sessions").inner_text() == str(ana["sessions"]) == "2"
    assert page.locator("tbody tr").count() == 2
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    rows = csv_rows(Path(download.value.path()).read_bytes().decode())
    assert sum(int(r["attended"]) for r in rows) == ana["attended"]
    shoot(page, "person")
    context.close()


def test_rooms_and_webhooks_pages_show_what_the_api_does(site: Site, browser: Any) -> None:
    context, page = signed_in(browser, site)
    page.get_by_role("link", name="Rooms", exact=True).click()
    page.wait_for_url("**/rooms")
    design = page.locator("tbody tr", has=page.get_by_role("link", name="design", exact=True))
    assert design.locator("td[data-label=Sessions]").inner_text() == "2"
    assert design.locator("td[data-label=People]").inner_text() == "2"
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    rows = {r["room"]: r for r in csv_rows(Path(download.value.path()).read_bytes().decode())}
    assert rows["design"]["sessions"] == "2" and rows["late-night"]["people"] == "2"
    shoot(page, "rooms")

    [hook] = site.api.get("/v1/webhooks").json()
    for _ in range(100):  # the sessions' webhooks go out in the background
        deliveries = site.api.get(f"/v1/webhooks/{hook['uuid']}/deliveries").json()
        if deliveries["total_count"]:
            break
        time.sleep(0.1)
    assert deliveries["total_count"] > 0
    page.get_by_role("link", name="Webhooks", exact=True).click()
    page.wait_for_url("**/webhooks")
    assert page.get_by_text(hook["url"]).first.is_visible()
    assert page.locator("#deliveries-title").is_visible()
    assert page.locator("section tbody tr").count() >= 1
    sent = {
        d["type"] for d in site.api.get(f"/v1/webhooks/{hook['uuid']}/deliveries").json()["data"]
    }
    kinds = page.locator("section tbody td[data-label=Event]").all_inner_texts()
    assert kinds and set(kinds) <= sent
    shoot(page, "webhooks")
    context.close()


def test_an_ongoing_sessions_page_updates_itself(site: Site, browser: Any) -> None:
    context, page = signed_in(browser, site)
    [standup] = site.api.get("/v1/meetings", params={"room": "standup"}).json()["data"]
    page.goto(f"{site.url}/sessions/{standup['id']}")
    assert page.locator(".track").count() == 2
    page.evaluate("() => { window.notReloaded = true; }")
    # 15 s ago: a presence shows once it has lasted `min_presence` (10 s).
    joining = event("joined", "standup", "hal-1", time.time() - 15, "Hal")
    assert site.api.post("/v1/events", json=joining).status_code == 200
    page.locator('.track[data-person="hal"]').wait_for(timeout=25_000)
    assert page.evaluate("() => window.notReloaded") is True
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_no_page_is_wider_than_the_screen(site: Site, browser: Any, width: int) -> None:
    context, page = signed_in(browser, site, width)
    first, _ = design_sessions(site)
    pages = {
        "overview": "/",
        "sessions": "/sessions",
        "session": f"/sessions/{first['id']}",
        "people": "/people",
        "person": "/person?person=ana",
        "rooms": "/rooms",
        "webhooks": "/webhooks",
    }
    for name, path in pages.items():
        page.goto(site.url + path)
        page.wait_for_load_state("load")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width, name
        shoot(page, f"{name}-{width}")
    # On a phone the sessions list keeps duration, people and status in view, stacked.
    page.goto(site.url + "/sessions")
    row = page.locator("table.sessions tbody tr").first
    for label in ("Duration", "People", "Status"):
        assert row.locator(f"td[data-label='{label}']").is_visible()
    context.close()
