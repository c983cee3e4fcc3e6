"""schemathesis over roomlog's own OpenAPI, against a real server: no input gets a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok

from roomlog.store.db import migrate, open_database
from tests.fixtures import make_project
from tests.servers import Server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{folder / 'roomlog.db'}"
    database = open_database(url)
    migrate(database)
    _, key = make_project(database, "default")
    database.dispose()
    server = Server(url, folder / "server.log")
    try:
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
