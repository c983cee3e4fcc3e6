"""The README's quick start, as a newcomer follows it: its events, posted to a server holding
the demo history, list the session it shows, the same as `roomlog sessionize` computes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from roomlog.cli import demo
from roomlog.domain.events import MICROS
from roomlog.ingest.native import parse_event
from roomlog.store.writes import Submission
from tests.fixtures import Api

README = Path(__file__).resolve().parents[1] / "README.md"


def _quick_start() -> tuple[str, str, str]:
    """The quick start's NDJSON file, the room its meeting list asks for, and what that list
    is shown to answer."""
    text = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    ndjson = re.search(r"<<'EOF'\n(.*?)\nEOF\n", text, re.DOTALL)
    room = re.search(r"/v1/meetings\?room=([\w-]+)", text)
    shown = re.search(r"/v1/meetings\?room=.*\n((?:#.*\n)+)", text)
    assert ndjson and room and shown, "the quick start no longer has its three parts"
    answer = "".join(line.lstrip("# ") for line in shown.group(1).splitlines())
    return ndjson.group(1) + "\n", room.group(1), answer


def test_the_quick_start_shows_what_the_readme_says(api: Api, tmp_path: Path) -> None:
    ndjson, room, shown = _quick_start()
    lines = ndjson.splitlines()
    latest = max(parse_event(line).at for line in lines)
    api.clock.set(latest / MICROS + 86_400)  # the quick start is run the next day
    # `make run DEMO=1`: the demo history, as `roomlog serve --demo` loads it.
    history = demo.history(api.clock())
    api.store.ingest([Submission(api.project, list(enumerate(history)))], api.clock())

    posted = api.client.post(
        "/v1/events",
        content=ndjson,
        headers={**api.headers, "Content-Type": "application/x-ndjson"},
    )
    assert posted.json() == {"accepted": len(lines), "duplicates": 0, "rejected": []}
    listed = api.client.get("/v1/meetings", params={"room": room}, headers=api.headers).json()

    path = tmp_path / "events.ndjson"
    path.write_text(ndjson)
    computed = subprocess.run(
        [sys.executable, "-m", "roomlog", "sessionize", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert listed == json.loads(computed)
    # What the README shows of the answer (it elides the id and the participants).
    expected = {k: v for k, v in listed["data"][0].items() if k not in ("id", "participants")}
    assert shown.startswith(f'{{"total_count":{listed["total_count"]},')
    for key, value in expected.items():
        assert f'"{key}":{json.dumps(value)}' in shown
