"""`roomlog sessionize` as a user runs it: files, stdin, flags, and what bad input gets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from roomlog.cli import main
from roomlog.domain.events import MICROS
from roomlog.domain.sessions import session_id

EVENTS: list[dict[str, object]] = [
    {"id": "1", "type": "participant.joined", "room": "demo", "participant_id": "A", "at": 0},
    {
        "id": "2",
        "type": "participant.joined",
        "room": "demo",
        "participant_id": "B",
        "user_id": "u-b",
        "user_name": "Bea",
        "at": "1970-01-01T00:00:20.500Z",
    },
    {"id": "3", "type": "participant.left", "room": "demo", "participant_id": "B", "at": 200},
    {"id": "3", "type": "participant.left", "room": "demo", "participant_id": "B", "at": 200},
    {"id": "4", "type": "participant.left", "room": "demo", "participant_id": "A", "at": 300.9},
    {"id": "5", "type": "participant.joined", "room": "lobby", "participant_id": "C", "at": 900},
]
EXPECTED: dict[str, object] = {
    "total_count": 2,
    "data": [
        {
            "id": session_id("default", "lobby", 900 * MICROS),
            "room": "lobby",
            "start_time": 900,
            "duration": 100,
            "ongoing": True,
            "max_participants": 1,
            "participants": [
                {
                    "user_id": None,
                    "user_name": None,
                    "participant_id": "C",
                    "join_time": 900,
                    "duration": 100,
                }
            ],
        },
        {
            "id": session_id("default", "demo", 0),
            "room": "demo",
            "start_time": 0,
            "duration": 300,
            "ongoing": False,
            "max_participants": 2,
            "participants": [
                {
                    "user_id": None,
                    "user_name": None,
                    "participant_id": "A",
                    "join_time": 0,
                    "duration": 300,
                },
                {
                    "user_id": "u-b",
                    "user_name": "Bea",
                    "participant_id": "B",
                    "join_time": 20,
                    "duration": 179,
                },
            ],
        },
    ],
}


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    return write(tmp_path / "events.ndjson", [json.dumps(e) for e in EVENTS])


def without_ids(body: dict[str, object]) -> dict[str, object]:
    data = body["data"]
    assert isinstance(data, list)
    return {**body, "data": [{k: v for k, v in m.items() if k != "id"} for m in data]}


def test_a_valid_file_prints_daily_meeting_objects_newest_first(
    events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sessionize", str(events_file), "--now", "1000"]) == 0
    out, err = capsys.readouterr()
    # Times are floored, durations are floors of the exact differences (300.9 - 0, 200 - 20.5).
    assert json.loads(out) == EXPECTED
    assert err == ""
    assert main(["sessionize", str(events_file), "--now", "1000", "--project", "acme"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert [m["id"] for m in other["data"]] == [
        session_id("acme", "lobby", 900 * MICROS),
        session_id("acme", "demo", 0),
    ]


def test_chat_lines_take_no_part_in_the_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chat = {"type": "chat.message", "room": "demo", "participant_id": "A", "text": "hi", "at": 5}
    path = tmp_path / "with-chat.ndjson"
    path.write_text("\n".join(json.dumps(e) for e in [chat, *EVENTS, {**chat, "text": ""}]))
    assert main(["sessionize", str(path), "--now", "1000"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == EXPECTED
    assert err == ""


def test_now_accepts_rfc3339(events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessionize", str(events_file), "--now", "1970-01-01T00:16:40Z"]) == 0
    assert without_ids(json.loads(capsys.readouterr().out)) == without_ids(EXPECTED)


def test_invalid_lines_exit_2_with_line_numbers_and_nothing_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [json.dumps(e) for e in EVENTS]
    lines.insert(1, "{not json")
    lines.insert(3, json.dumps({**EVENTS[0], "at": "yesterday"}))
    path = write(tmp_path / "bad.ndjson", lines)
    assert main(["sessionize", str(path), "--now", "1000"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}:2: JSON is malformed" in err
    assert f"{path}:4: 'yesterday' is not an RFC 3339 timestamp - at `$.at`" in err
    assert "2 invalid line(s), nothing written" in err


def test_skip_invalid_reports_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [json.dumps(e) for e in EVENTS]
    lines.insert(2, json.dumps({**EVENTS[0], "type": "participant.waved"}))
    path = write(tmp_path / "bad.ndjson", lines)
    assert main(["sessionize", str(path), "--now", "1000", "--skip-invalid"]) == 0
    out, err = capsys.readouterr()
    assert without_ids(json.loads(out)) == without_ids(EXPECTED)
    assert f"{path}:3: Invalid enum value 'participant.waved' - at `$.type` (skipped)" in err


def test_rule_parameters_change_the_sessions(
    events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sessionize", str(events_file), "--now", "1000", "--solo-reset", "60"]) == 0
    starts = [m["start_time"] for m in json.loads(capsys.readouterr().out)["data"]]
    assert starts == [900, 260, 0]


def test_a_bad_parameter_is_a_usage_error(
    events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["sessionize", str(events_file), "--solo-start", "0"])
    assert exited.value.code == 2
    assert "solo_start must be more than 0 seconds" in capsys.readouterr().err


def test_a_missing_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessionize", str(tmp_path / "nope.ndjson")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_future_events_are_left_out_with_a_note(
    events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sessionize", str(events_file), "--now", "250"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["data"][0]["ongoing"] is True
    assert "2 event(s) stamped after --now were left out" in err


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "roomlog"],
        [str(Path(sys.executable).parent / "roomlog")],
    ],
    ids=["python -m roomlog", "venv script"],
)
def test_runs_from_stdin_as_an_installed_command(command: list[str], events_file: Path) -> None:
    done = subprocess.run(
        [*command, "sessionize", "-", "--now", "1000"],
        input=events_file.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert without_ids(json.loads(done.stdout)) == without_ids(EXPECTED)


def test_an_input_past_the_memory_budget_gives_the_same_body_from_a_file_and_from_stdin(
    tmp_path: Path,
) -> None:
    # `--memory 128` holds about 167,000 events at once: 240,000 are spilled by room.
    path = tmp_path / "long.ndjson"
    with path.open("w") as out:
        for n in range(60_000):
            room, at = f"room-{n % 997}", n * 3
            for kind, pid, when in (
                ("joined", f"a{n}", at),
                ("joined", f"b{n}", at + 1),
                ("left", f"a{n}", at + 40),
                ("left", f"b{n}", at + 45),
            ):
                event = {
                    "id": f"{kind}-{pid}",
                    "type": f"participant.{kind}",
                    "room": room,
                    "participant_id": pid,
                    "at": when,
                }
                out.write(json.dumps(event) + "\n")
    command = [sys.executable, "-m", "roomlog", "sessionize", "--now", "200000"]
    spilled = subprocess.run(
        [*command, "--memory", "128", str(path)], capture_output=True, check=True
    )
    piped = subprocess.run(
        [*command, "--memory", "128", "-"], input=path.read_bytes(), capture_output=True, check=True
    )
    whole = subprocess.run([*command, str(path)], capture_output=True, check=True)
    assert spilled.stdout == piped.stdout == whole.stdout
    assert json.loads(whole.stdout)["total_count"] == 60_000


def test_a_memory_budget_below_the_least_is_a_usage_error(
    events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["sessionize", str(events_file), "--memory", "64"])
    assert exited.value.code == 2
    assert "expected 128 MB or more" in capsys.readouterr().err


def test_milliseconds_are_recognised_and_the_fix_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stamped = {**EVENTS[0], "at": 1_700_000_000_000}
    path = write(tmp_path / "millis.ndjson", [json.dumps(stamped)])
    assert main(["sessionize", str(path)]) == 2
    _, err = capsys.readouterr()
    assert f"{path}:1: 1700000000000 looks like milliseconds" in err
    assert "divide it by 1,000" in err
    assert main(["import", str(path), "--database-url", f"sqlite:///{tmp_path / 'db'}"]) == 2
    _, err = capsys.readouterr()
    assert "looks like milliseconds" in err
