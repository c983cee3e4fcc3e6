"""The dashboard's pages over HTTP: sign-in, tenancy, filters and paging, the timeline."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar.testing import TestClient

from roomlog.api.app import create_app
from roomlog.api.dashboard.render import ZONE_COOKIE, when, zone_name
from roomlog.api.dashboard.signin import COOKIE
from roomlog.domain.events import MICROS
from roomlog.store.db import Database
from roomlog.store.projects import revoke_key
from roomlog.store.writes import Settings
from tests.api.test_meetings import history
from tests.bodies import joined, left
from tests.fixtures import RULES, T0, Clock, make_project

ORIGIN = "https://roomlog.example"


class Browser:
    """A client that keeps cookies, as a browser does, on an HTTPS origin."""

    def __init__(self, client: TestClient, key: str, clock: Clock) -> None:  # type: ignore[type-arg]
        self.client = client
        self.key = key
        self.clock = clock
        self.headers = {"Authorization": f"Bearer {key}"}

    def sign_in(self, key: str | None = None, next_path: str = "/") -> Any:
        return self.client.post(
            "/sign-in",
            data={"key": key or self.key, "next": next_path},
            headers={"Origin": ORIGIN},
            follow_redirects=False,
        )


@pytest.fixture
def browser(database: Database) -> Iterator[Browser]:
    clock = Clock(T0 + 200_000)
    _, key = make_project(database, "default")
    app = create_app(database, Settings(rules=RULES), clock=clock, tick=3600, wait="applied")
    with TestClient(app, base_url=ORIGIN) as client:
        yield Browser(client, key, clock)


def post(browser: Browser, bodies: list[dict[str, Any]], key: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else browser.headers
    answer = browser.client.post("/v1/events", json=bodies, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rejected"] == []


def test_pages_need_a_sign_in_and_send_the_browser_back_after_it(browser: Browser) -> None:
    for path in ("/", "/sessions?room=a", "/sessions/x", "/sessions/x/attendance.csv"):
        answer = browser.client.get(path, follow_redirects=False)
        assert answer.status_code in (302, 303, 307), path
        assert answer.headers["location"].startswith("/sign-in?next=")
    assert browser.client.get("/live").status_code == 401
    wrong = browser.sign_in("rl_nope_nope")
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    assert COOKIE not in wrong.cookies
    done = browser.sign_in(next_path="/sessions?room=a")
    assert done.status_code == 303
    assert done.headers["location"] == "/sessions?room=a"
    cookie = done.headers["set-cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert flag.lower() in cookie.lower()
    assert browser.key not in cookie  # the cookie holds a token, never the key
    assert browser.client.get("/").status_code == 200


def test_sign_in_goes_back_only_to_this_site(browser: Browser) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        assert browser.sign_in(next_path=target).headers["location"] == "/"


def test_a_post_from_another_site_is_refused(browser: Browser) -> None:
    answer = browser.client.post(
        "/sign-in", data={"key": browser.key}, headers={"Origin": "https://evil.example"}
    )
    assert answer.status_code == 403
    assert COOKIE not in answer.cookies


def test_sign_out_and_a_revoked_key_end_the_sign_in(browser: Browser, database: Database) -> None:
    browser.sign_in()
    assert browser.client.get("/").status_code == 200
    out = browser.client.post("/sign-out", headers={"Origin": ORIGIN}, follow_redirects=False)
    assert out.status_code == 303
    browser.client.cookies.clear()
    assert browser.client.get("/", follow_redirects=False).status_code in (302, 303, 307)
    browser.sign_in()
    assert browser.client.get("/").status_code == 200
    with database.engine.begin() as connection:
        revoke_key(connection, browser.key)
    assert browser.client.get("/", follow_redirects=False).status_code in (302, 303, 307)


def test_no_page_shows_another_projects_data(browser: Browser, database: Database) -> None:
    _, other_key = make_project(database, "other")
    post(
        browser,
        [joined("secret-person", 0, "secret-room"), left("secret-person", 100, "secret-room")],
        other_key,
    )
    theirs = browser.client.get("/v1/meetings", headers={"Authorization": f"Bearer {other_key}"})
    [meeting] = theirs.json()["data"]
    browser.sign_in()
    asked = ("/sessions?room=secret-room", "/sessions?q=secret", "/rooms?q=secret")
    for path in (
        "/",
        "/live",
        "/sessions",
        *asked,
        "/sessions.csv",
        "/people",
        "/people?q=secret&start=",
        "/people.csv?start=",
        "/rooms",
        "/rooms.csv?start=",
        "/webhooks",
    ):
        page = browser.client.get(path)
        assert page.status_code == 200, path
        assert "secret-person" not in page.text, path
        assert meeting["id"] not in page.text, path
        assert path in asked or "secret-room" not in page.text, path
    alone = browser.client.get("/person", params={"person": "secret-person", "start": ""})
    assert "attended no session" in alone.text and meeting["id"] not in alone.text
    assert browser.client.get(f"/sessions/{meeting['id']}").status_code == 404
    assert browser.client.get(f"/sessions/{meeting['id']}/attendance.csv").status_code == 404


def session_links(html: str) -> list[str]:
    return re.findall(r'href="/sessions/([0-9a-f-]{36})"', html)


def test_the_sessions_list_filters_and_pages_through_everything(browser: Browser) -> None:
    bodies = history(11, rooms=3, meetings=70)
    post(browser, bodies)
    browser.sign_in()
    for params, api in (
        ({}, {}),
        ({"room": "room-1"}, {"room": "room-1"}),
        ({"status": "ended"}, {"ongoing": "false"}),
        ({"start": "2023-11-15"}, {"timeframe_start": 1_700_006_400}),
    ):
        expected: list[str] = []
        cursor: dict[str, str] = {}
        while True:
            page = browser.client.get(
                "/v1/meetings", params={**api, **cursor}, headers=browser.headers
            ).json()["data"]
            expected += [m["id"] for m in page]
            if len(page) < 100:
                break
            cursor = {"starting_after": page[-1]["id"]}
        seen: list[str] = []
        url = "/sessions"
        query: dict[str, str] | None = params
        while True:
            html = browser.client.get(url, params=query).text
            seen += session_links(html)
            older = re.search(r'rel="next" href="([^"]+)"', html)
            if older is None:
                break
            url, query = older.group(1).replace("&amp;", "&"), None
        assert seen == expected, params
    # And back again from the last page.
    html = browser.client.get(url).text
    newer = re.search(r'rel="prev" href="([^"]+)"', html)
    assert newer is not None
    back = browser.client.get(newer.group(1).replace("&amp;", "&")).text
    assert len(session_links(back)) == 25
    bad = browser.client.get("/sessions", params={"start": "yesterday", "status": "odd"})
    assert bad.status_code == 200
    assert "is not a date" in bad.text and "is not one of" in bad.text


def test_a_sessions_page_has_one_bar_per_presence_and_says_why(browser: Browser) -> None:
    post(
        browser,
        [
            joined("A", 0, user="ana"),
            joined("B", 100, user="ben"),
            left("B", 200),
            joined("B", 230, user="ben"),
            left("B", 400),
            left("A", 2000),
        ],
    )
    browser.sign_in()
    second, first = browser.client.get("/v1/meetings", headers=browser.headers).json()["data"]
    html = browser.client.get(f"/sessions/{first['id']}").text
    assert html.count('class="bar') == len(first["participants"]) == 3
    assert html.count('class="track"') == 2  # one row per person
    assert 'data-person="ana"' in html and 'data-person="ben"' in html
    people = browser.client.get(
        f"/v1/meetings/{first['id']}/attendance", headers=browser.headers
    ).json()["data"]
    for person in people:
        assert when(person["first_join"] * MICROS) in html
    assert "one participant was present for 30 s" in html
    assert "one participant was alone for 10 min" in html
    later = browser.client.get(f"/sessions/{second['id']}").text
    assert "split from the previous session" in later
    assert "the last participant left" in later
    assert browser.client.get("/sessions/not-a-session").status_code == 404
    rows = list(
        csv.DictReader(
            io.StringIO(browser.client.get(f"/sessions/{first['id']}/attendance.csv").text)
        )
    )
    assert [(r["person"], int(r["attended"]), int(r["intervals"])) for r in rows] == [
        (p["person"], p["attended"], len(p["intervals"])) for p in people
    ]


def test_the_overview_counts_what_the_api_lists(browser: Browser) -> None:
    clock = browser.clock
    bodies = history(12, rooms=3, meetings=30)
    bodies.append(joined("here-now", 199_000, "room-live", "zoe"))
    post(browser, bodies)
    browser.sign_in()
    since = (clock() // MICROS // 86_400 - 29) * 86_400
    listed = browser.client.get(
        "/v1/meetings", params={"timeframe_start": since}, headers=browser.headers
    ).json()
    html = browser.client.get("/").text
    assert f"<strong>{listed['total_count']:,}</strong> sessions" in html
    minutes = sum(p["duration"] for m in listed["data"] for p in m["participants"]) // 60
    found = re.search(r"<strong>([\d,]+)</strong> participant-minutes", html)
    assert found is not None
    shown = int(found.group(1).replace(",", ""))
    assert abs(shown - minutes) <= len(listed["data"])  # per-record floors against one floor
    live = browser.client.get("/live").text
    assert "room-live" in live and "Zoe" in live


def test_the_overviews_figures_are_at_most_five_seconds_old(browser: Browser) -> None:
    browser.sign_in()
    assert "<strong>0</strong> sessions" in browser.client.get("/").text
    post(browser, [joined("A", 150_000), left("A", 150_100)])
    assert "<strong>0</strong> sessions" in browser.client.get("/").text
    browser.clock.set(browser.clock() / MICROS + 5)
    assert "<strong>1</strong> sessions" in browser.client.get("/").text


def test_pages_show_times_in_the_zone_the_browser_names(browser: Browser) -> None:
    post(
        browser,
        [joined("A", 0, user="ana"), joined("B", 5, user="ben"), left("B", 100), left("A", 150)],
    )
    browser.sign_in()
    [meeting] = browser.client.get("/v1/meetings", headers=browser.headers).json()["data"]
    start = meeting["start_time"] * MICROS
    new_york = ZoneInfo("America/New_York")
    for cookie, zone in (
        ("America/New_York", new_york),
        ("Etc/UTC", UTC),
        ("Not/AZone", UTC),
        ("", UTC),
    ):
        browser.client.cookies.set(ZONE_COOKIE, cookie)
        html = browser.client.get(f"/sessions/{meeting['id']}").text
        assert f">{when(start, zone)}</time>" in html, cookie
        assert f'data-zone="{zone_name(zone)}"' in html
    assert when(start, new_york) != when(start, UTC)


def test_the_overview_counts_the_viewers_days(browser: Browser) -> None:
    now = browser.clock()
    new_york = ZoneInfo("America/New_York")
    # Sessions that started at 01:00 UTC on each of the last five days: in New York, each
    # started the evening before.
    bodies = []
    for n in range(1, 6):
        at = (now // MICROS // 86_400 - n) * 86_400 + 3600 - T0
        bodies += [joined(f"p{n}", at), joined(f"q{n}", at + 1), left(f"q{n}", at + 120)]
        bodies.append(left(f"p{n}", at + 120))
    post(browser, bodies)
    browser.sign_in()
    started = [
        m["start_time"]
        for m in browser.client.get("/v1/meetings", headers=browser.headers).json()["data"]
    ]
    for cookie, zone in (("America/New_York", new_york), ("UTC", UTC)):
        browser.client.cookies.set(ZONE_COOKIE, cookie)
        browser.clock.set(browser.clock() / MICROS + 6)  # past the overview's 5 s figures
        html = browser.client.get("/").text
        days = dict(
            re.findall(
                r'<td data-label="Day">([\d-]+)</td><td class="num" data-label="Sessions">(\d+)',
                html,
            )
        )
        expected: dict[str, int] = {}
        for at in started:
            day = datetime.fromtimestamp(at, tz=UTC).astimezone(zone).date().isoformat()
            expected[day] = expected.get(day, 0) + 1
        assert {d: int(n) for d, n in days.items() if n != "0"} == expected, cookie


def test_lists_search_part_of_a_name_and_download_what_they_show(browser: Browser) -> None:
    post(browser, history(13, rooms=3, meetings=20))
    browser.sign_in()
    html = browser.client.get("/sessions", params={"q": "OOM-1"}).text
    api = browser.client.get(
        "/v1/meetings", params={"room": "room-1", "limit": 100}, headers=browser.headers
    ).json()
    assert session_links(html) == [m["id"] for m in api["data"]][:25]
    ours = browser.client.get("/sessions.csv", params={"q": "oom-1"}).text
    theirs = browser.client.get(
        "/v1/meetings.csv", params={"room": "room-1"}, headers=browser.headers
    ).text
    assert ours == theirs and ours.count("\n") == api["total_count"] + 1
    # People and rooms over all time equal the API's attendance.
    people = browser.client.get("/v1/attendance", headers=browser.headers).json()
    rows = list(csv.DictReader(io.StringIO(browser.client.get("/people.csv?start=").text)))
    assert [(r["person"], int(r["attended"]), int(r["sessions"])) for r in rows] == [
        (p["person"], p["attended"], p["sessions"]) for p in people["data"]
    ]
    rooms = list(csv.DictReader(io.StringIO(browser.client.get("/rooms.csv?start=").text)))
    for room in rooms:
        listed = browser.client.get(
            "/v1/meetings", params={"room": room["room"]}, headers=browser.headers
        ).json()
        assert int(room["sessions"]) == listed["total_count"]
    assert sum(int(r["attended"]) for r in rooms) >= sum(p["attended"] for p in people["data"])
    page = browser.client.get("/people", params={"q": "USER-1", "start": ""}).text
    assert "user-1" in page and "user-2" not in page
    # Quick ranges link to the viewer's last days.
    ranges = re.findall(r'<a href="(/sessions\?[^"]*)"[^>]*>(Today|Last 7 days)', html)
    assert [label for _, label in ranges] == ["Today", "Last 7 days"]


def test_the_favicon_and_the_webhooks_page(browser: Browser) -> None:
    icon = browser.client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert browser.client.get("/webhooks", follow_redirects=False).status_code in (302, 303, 307)
    browser.sign_in()
    assert "No webhooks yet" in browser.client.get("/webhooks").text
