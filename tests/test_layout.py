"""The package's shape, as docs/ARCHITECTURE.md draws it: imports run one way, from the edges
(api, workers, cli) to the middle (domain), and no module grows past 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "roomlog"
MAX_LINES = 500

# What each part of roomlog may import of roomlog's own parts.
# `metrics` (the counters) and `logs` (the log format) stand apart, for every part that runs
# in the service to use.
SERVICE = {"metrics", "logs"}
ALLOWED: dict[str, set[str]] = {
    "domain": {"domain"},
    "ingest": {"domain", "ingest"},
    "views": {"domain", "views"},
    "store": {"domain", "ingest", "store", "metrics"},
    "workers": {"domain", "ingest", "views", "store", "workers"} | SERVICE,
    "api": {"domain", "ingest", "views", "store", "workers", "api"} | SERVICE,
    "cli": {"domain", "ingest", "views", "store", "workers", "api", "cli", "offline"} | SERVICE,
    "offline": {"domain", "ingest", "views", "offline"},
    "metrics": {"metrics"},
    "logs": {"logs"},
}
# Libraries that only the edges may use: HTTP frameworks, servers and clients, and (for the
# pure middle) databases.
HTTP = {"litestar", "starlette", "uvicorn", "httpx", "aiohttp", "jinja2"}
DATABASE = {"sqlalchemy", "psycopg", "alembic", "sqlite3"}
FORBIDDEN: dict[str, set[str]] = {
    "domain": HTTP | DATABASE,
    "ingest": HTTP | DATABASE,
    "views": HTTP | DATABASE,
    "offline": HTTP | DATABASE,
    "store": HTTP,
    "metrics": HTTP | DATABASE,
    "logs": HTTP | DATABASE,
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _part(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at its top or inside a function, as dotted names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            assert node.level == 0, f"{path}: relative import of {node.module}"
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _violations(part: str, imported: set[str]) -> list[str]:
    """What in `imported` the rules refuse to a module of `part`."""
    found: list[str] = []
    allowed = ALLOWED.get(part)
    if allowed is not None:
        own = {
            name.split(".")[1]
            for name in imported
            if name.startswith("roomlog.") and name != "roomlog.__version__"
        }
        found += [f"roomlog.{name}" for name in sorted(own - allowed)]
    libraries = {name.split(".")[0] for name in imported}
    found += sorted(libraries & FORBIDDEN.get(part, set()))
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_from_the_edges_to_the_middle(path: Path) -> None:
    part = _part(path)
    assert _violations(part, _imports(path)) == [], f"{part} may not import these"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_500_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{lines} lines: split it by what its parts do"


def test_the_rules_know_every_part() -> None:
    parts = {_part(path) for path in _modules()}
    assert parts - set(ALLOWED) == {"__init__", "__main__"}


def test_the_rules_catch_imports_against_the_flow(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "import litestar\nfrom roomlog.domain.events import MICROS\n"
        "def late():\n    from roomlog.api.app import create_app\n"
    )
    imported = _imports(wrong)
    assert _violations("store", imported) == ["roomlog.api", "litestar"]
    assert _violations("domain", imported) == ["roomlog.api", "litestar"]
    assert _violations("api", imported) == []
    assert _violations("cli", imported) == []
