"""The dashboard's pages over HTTP: sign-in, tenancy, filters and paging, the timeline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from roomlog.api.app import create_app
from roomlog.api.dashboard.render import when
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
    app = create_app(database, Settings(rules=RULES), clock=clock, tick=3600)
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
    for path in ("/", "/sessions", "/sessions?room=secret-room", "/live"):
        page = browser.client.get(path)
        assert page.status_code == 200
        assert "secret-person" not in page.text
        assert meeting["id"] not in page.text
        assert path == "/sessions?room=secret-room" or "secret-room" not in page.text
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
    assert 'data-participant="A"' in html and 'data-participant="B"' in html
    for record in first["participants"]:
        assert when(record["join_time"] * MICROS)[:19] in html
    assert "one participant was present for 30 s" in html
    assert "one participant was alone for 10 min" in html
    later = browser.client.get(f"/sessions/{second['id']}").text
    assert "split from the previous session" in later
    assert "the last participant left" in later
    assert browser.client.get("/sessions/not-a-session").status_code == 404
    csv_text = browser.client.get(f"/sessions/{first['id']}/attendance.csv").text
    api_csv = browser.client.get(
        f"/v1/meetings/{first['id']}/attendance.csv", headers=browser.headers
    ).text
    assert csv_text == api_csv


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
