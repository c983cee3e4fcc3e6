"""The service's commands: serve, keys, projects, providers, import, rebuild."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from roomlog.cli import main
from roomlog.cli.arguments import PROVIDER_OPTIONS
from roomlog.store.providers import PROVIDERS
from tests.bodies import joined, left
from tests.servers import free_port


def roomlog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roomlog", *args], capture_output=True, text=True, check=False
    )


def test_keys_create_list_and_revoke(database_url: str) -> None:
    created = roomlog("keys", "create", "--project", "acme", "--database-url", database_url)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("rl_")
    key_id = key.split("_")[1]
    listing = roomlog("keys", "list", "--database-url", database_url)
    assert key_id in listing.stdout
    assert key.split("_", 2)[2] not in listing.stdout  # never the secret
    assert roomlog("keys", "revoke", key_id, "--database-url", database_url).returncode == 0
    listing = roomlog("keys", "list", "--project", "acme", "--database-url", database_url)
    [row] = [line for line in listing.stdout.splitlines() if key_id in line]
    assert not row.rstrip().endswith("-")  # the REVOKED column has a date
    missing = roomlog("keys", "revoke", "nope", "--database-url", database_url)
    assert missing.returncode == 1
    assert "no key 'nope'" in missing.stderr


def test_projects_show_gives_the_videosdk_credentials(database_url: str) -> None:
    roomlog("keys", "create", "--database-url", database_url)
    shown = roomlog("projects", "show", "--database-url", database_url)
    assert shown.returncode == 0
    assert "apikey" in shown.stdout and "pk_" in shown.stdout
    unknown = roomlog("projects", "show", "--project", "nope", "--database-url", database_url)
    assert unknown.returncode == 1


def test_import_stores_through_the_api_path_and_reports_bad_lines(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = [joined("a", 0), joined("b", 5), left("b", 100), left("a", 120)]
    lines = [json.dumps(b) for b in bodies]
    lines.insert(2, '{"id": "x", "type": "participant.waved"}')
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n")
    assert main(["import", str(path), "--database-url", database_url]) == 2
    out, err = capsys.readouterr()
    assert "4 event(s) stored, 0 already there, 1 rejected" in out
    assert f"{path}:3: Invalid enum value 'participant.waved'" in err
    # Again: everything is already there.
    assert main(["import", str(path), "--database-url", database_url]) == 2
    assert "0 event(s) stored, 4 already there" in capsys.readouterr().out
    assert main(["rebuild", "--database-url", database_url]) == 0
    assert "Rebuilt 1 room(s)" in capsys.readouterr().out


def test_a_bad_database_url_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "list", "--database-url", "mysql://x/y"]) == 2
    assert "sqlite:/// or postgresql://" in capsys.readouterr().err


def test_serve_creates_a_project_prints_its_key_and_loads_the_demo(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "roomlog",
            "serve",
            "--demo",
            "--port",
            str(port),
            "--database-url",
            f"sqlite:///{tmp_path / 'roomlog.db'}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert "API key" in lines[0]
        key = lines[1].strip()
        assert "Demo history:" in lines[2]
        for _ in range(200):
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/v1/meetings",
                    headers={"Authorization": f"Bearer {key}"},
                )
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert answer.status_code == 200
        assert answer.json()["total_count"] > 10
        assert any(m["ongoing"] for m in answer.json()["data"])
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_providers_set_and_list_with_secrets_masked(database_url: str, tmp_path: Path) -> None:
    secret = "a-livekit-secret-that-must-not-show"
    done = roomlog(
        "providers", "set", "livekit", "--api-key", "APIabc", "--api-secret", secret,
        "--project", "acme", "--database-url", database_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    jitsi = roomlog(
        "providers", "set", "jitsi", "--secret", "s3cr3t-value", "--database-url", database_url
    )
    assert jitsi.returncode == 0, jitsi.stderr
    listing = roomlog("providers", "list", "--database-url", database_url)
    assert listing.returncode == 0
    assert "APIabc" in listing.stdout and "****show" in listing.stdout
    assert secret not in listing.stdout and "s3cr3t-value" not in listing.stdout
    only = roomlog("providers", "list", "--project", "acme", "--database-url", database_url)
    assert "jitsi" not in only.stdout and "livekit" in only.stdout
    missing = roomlog("providers", "set", "daily", "--database-url", database_url)
    assert missing.returncode == 2 and "--hmac" in missing.stderr
    not_pem = tmp_path / "key.pem"
    not_pem.write_text("not a key")
    refused = roomlog(
        "providers", "set", "videosdk", "--public-key-file", str(not_pem),
        "--database-url", database_url,
    )  # fmt: skip
    assert refused.returncode == 2 and "key.pem" in refused.stderr


def test_the_cli_options_match_the_providers() -> None:
    assert set(PROVIDER_OPTIONS) == set(PROVIDERS)
    for name, options in PROVIDER_OPTIONS.items():
        stored = tuple(o.removesuffix("_file") for o in options)
        assert stored == PROVIDERS[name].fields
