"""schemathesis over roomlog's own OpenAPI, against a real server: no input gets a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core import NotSet
from schemathesis.core.result import Ok

from roomlog.store.db import migrate, open_database
from tests.fixtures import make_project, scratch_database
from tests.servers import Server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    with scratch_database(request.param, folder) as url:
        database = open_database(url)
        migrate(database)
        _, key = make_project(database, "default")
        database.dispose()
        server = Server(url, folder / "server.log")
        try:
            server.wait_ready()  # `/ready` is among the operations called
            yield server, key
        finally:
            server.stop()


def test_no_input_gets_a_server_error(served: tuple[Server, str]) -> None:
    server, key = served
    schema = schemathesis.openapi.from_url(f"{server.url}/schema/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations() if isinstance(r, Ok)]
    assert len(operations) >= 10

    @given(st.sampled_from(operations).flatmap(lambda op: op.as_strategy()))
    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    def call(case: schemathesis.Case[Any]) -> None:
        for headers in ({"Authorization": f"Bearer {key}"}, {}):
            response = case.call(headers=headers)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {response.text}"
            if response.status_code >= 400:
                assert set(response.json()) >= {"error", "info"}, where

    call()


def _poisoned(value: Any, where: int) -> Any:
    """`value` with a U+0000 put into its strings (keys kept), `where` choosing the spot."""
    if isinstance(value, str):
        cut = where % (len(value) + 1)
        return value[:cut] + "\x00" + value[cut:]
    if isinstance(value, list):
        return [_poisoned(v, where + n) for n, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _poisoned(v, where + n) for n, (k, v) in enumerate(value.items())}
    return value


_HOSTILE = st.sampled_from(["nul", "utf8", "deep", "query"])


def test_nul_invalid_utf8_and_deep_documents_get_no_server_error(
    served: tuple[Server, str],
) -> None:
    """The same operations, their bodies and queries made hostile: NUL in every string,
    bytes that are not UTF-8, documents nested far deeper than any event."""
    server, key = served
    schema = schemathesis.openapi.from_url(f"{server.url}/schema/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations() if isinstance(r, Ok)]

    @given(
        st.sampled_from(operations).flatmap(lambda op: op.as_strategy()),
        _HOSTILE,
        st.integers(0, 1_000),
    )
    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    def call(case: schemathesis.Case[Any], how: str, where: int) -> None:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        body = json.dumps(case.body if not isinstance(case.body, NotSet) else {}).encode()
        query = urlencode(case.query or {}, doseq=True)
        if how == "nul":
            body = json.dumps(_poisoned(json.loads(body), where)).encode()
        elif how == "utf8":
            cut = where % (len(body) + 1)
            body = body[:cut] + b"\xff\xfe" + body[cut:]
        elif how == "deep":
            body = b"[" * 50_000 + body + b"]" * 50_000
        else:
            query = (query + "&" if query else "") + ("x=%00" if where % 2 else "room=%ff%00")
        response = httpx.request(
            case.method,
            f"{server.url}{case.formatted_path}" + (f"?{query}" if query else ""),
            content=body if case.method in ("POST", "PUT", "PATCH") else None,
            headers=headers,
            timeout=30,
        )
        where_ = f"{how}: {case.method} {case.formatted_path}"
        assert response.status_code < 500, f"{where_}: {response.text}"
        if response.status_code >= 400 and response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            assert set(response.json()) >= {"error", "info"}, where_

    call()
