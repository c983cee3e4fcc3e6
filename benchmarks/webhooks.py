"""Webhooks in and out, measured against their floors in one run.

1. In: wrk posts single events for `--seconds` to one `roomlog serve` (SQLite), first as native
   events (`POST /v1/events`), then as LiveKit webhooks signed as a LiveKit server signs them
   (a JWT over the body's hash, made beforehand with LiveKit's package), then native again.
   Target: LiveKit webhooks at 60% or more of the native single-event rate.
2. Out: a webhook subscribed to roomlog's four events points at a local receiver (the
   hello-world endpoint); 1,000 events/s are posted for `--seconds` in batches of 100, and the
   outbox's pending rows are sampled each second. Target: deliveries keep up, the outbox does
   not grow.

Needs wrk (`apt-get install wrk`). The server runs on core 0, wrk and the receiver on core 1.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from google.protobuf.json_format import MessageToJson
from livekit import api
from livekit.protocol import models, webhook
from sqlalchemy import func, select

from benchmarks.ingest import WRK_SCRIPT, make_key, run_wrk, serve, stop
from roomlog.store.db import open_database
from roomlog.store.projects import find_project
from roomlog.store.providers import set_credentials
from roomlog.store.schema import outbox

KEY, SECRET = "APIbench", "a-livekit-secret-for-the-benchmark-0123"

# Cycles through pre-signed LiveKit requests, read from FILE (token TAB body per line).
SIGNED_SCRIPT = """
local requests = {}
local i = 0
init = function(args)
  for line in io.lines(FILE) do
    local tab = line:find("\\t")
    requests[#requests + 1] = {line:sub(1, tab - 1), line:sub(tab + 1)}
  end
end
request = function()
  i = i + 1
  local r = requests[(i - 1) % #requests + 1]
  local headers = {["Authorization"] = r[1], ["Content-Type"] = "application/webhook+json"}
  return wrk.format("POST", nil, headers, r[2])
end
"""


def signed_requests(count: int, path: Path) -> None:
    """`count` LiveKit webhooks with fresh ids, joins and leaves cycling through 200 rooms."""
    now = int(time.time())
    with path.open("w") as out:
        for n in range(count):
            joining = n // 200 % 2 == 0
            event = webhook.WebhookEvent(
                event="participant_joined" if joining else "participant_left",
                id=f"EV_{n}",
                created_at=now,
                room=models.Room(name=f"lk-room-{n % 200}"),
                participant=models.ParticipantInfo(
                    sid=f"PA_{n % 1000}", identity=f"user-{n % 1000}", joined_at=now
                ),
            )
            body = json.dumps(json.loads(MessageToJson(event)), separators=(",", ":"))
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            token = api.AccessToken(KEY, SECRET).with_sha256(digest).to_jwt()
            out.write(f"{token}\t{body}\n")


def native_script(key: str, run: str) -> str:
    """wrk's native single-event posts; `run` keeps each run's event ids apart."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    lua = "\n".join(
        f'HEADERS = HEADERS or {{}}; HEADERS["{k}"] = "{v}"' for k, v in headers.items()
    )
    return f'RUN = "{run}"\n' + lua + "\n" + WRK_SCRIPT


def webhooks_in(python: str, folder: Path, seconds: int) -> tuple[float, float]:
    url = f"sqlite:///{folder / 'in.db'}"
    key = make_key(url)
    database = open_database(url)
    with database.engine.begin() as connection:
        project = find_project(connection, "default")
        assert project is not None
        set_credentials(connection, project.id, "livekit", {"api_key": KEY, "api_secret": SECRET})
    database.dispose()
    signed = folder / "signed.tsv"
    signed_requests(4000 * seconds, signed)
    server = serve(
        [python, "-m", "roomlog", "serve", "--database-url", url, "--port", "8721"],
        "http://127.0.0.1:8721/health",
        folder / "server.log",
    )
    try:
        natives = []
        native, bad = run_wrk(
            "http://127.0.0.1:8721/v1/events", native_script(key, "a"), seconds, folder
        )
        natives.append(native)
        livekit, bad_lk = run_wrk(
            "http://127.0.0.1:8721/v1/ingest/livekit",
            f'FILE = "{signed}"\n' + SIGNED_SCRIPT,
            seconds,
            folder,
        )
        native, bad2 = run_wrk(
            "http://127.0.0.1:8721/v1/events", native_script(key, "b"), seconds, folder
        )
        natives.append(native)
    finally:
        stop(server)
    if bad or bad2 or bad_lk:
        sys.exit(f"failed posts: native {bad + bad2}, livekit {bad_lk}; see {folder}/server.log")
    return sum(natives) / len(natives), livekit


def webhooks_out(python: str, folder: Path, seconds: int, rate: int) -> None:
    receiver = serve(
        [python, "-m", "uvicorn", "benchmarks.hello:app", "--port", "8722", "--loop", "uvloop",
         "--http", "httptools", "--log-level", "warning"],
        "http://127.0.0.1:8722/hello",
        folder / "receiver.log",
    )  # fmt: skip
    receiver_pid = receiver.pid
    subprocess.run(
        ["taskset", "-p", "-c", "1", str(receiver_pid)], capture_output=True, check=False
    )
    url = f"sqlite:///{folder / 'out.db'}"
    key = make_key(url)
    server = serve(
        [python, "-m", "roomlog", "serve", "--database-url", url, "--port", "8723"],
        "http://127.0.0.1:8723/health",
        folder / "server.log",
    )
    headers = {"Authorization": f"Bearer {key}"}
    database = open_database(url)
    try:
        made = httpx.post(
            "http://127.0.0.1:8723/v1/webhooks",
            json={"url": "http://127.0.0.1:8722/hello"},
            headers=headers,
        )
        made.raise_for_status()
        batch = rate // 10
        samples: list[int] = []
        posted = 0
        started = time.perf_counter()
        with httpx.Client(base_url="http://127.0.0.1:8723", headers=headers, timeout=30) as client:
            tick = 0
            while time.perf_counter() - started < seconds:
                now = time.time()
                bodies = []
                for i in range(batch):
                    n = posted + i
                    bodies.append(
                        {
                            "id": f"o-{n}",
                            "type": "participant.joined"
                            if n // 500 % 2 == 0
                            else "participant.left",
                            "room": f"out-room-{n % 500}",
                            "participant_id": f"p-{n % 500}-{n // 1000}",
                            "at": now - 1,
                        }
                    )
                client.post("/v1/events", json=bodies).raise_for_status()
                posted += batch
                tick += 1
                if tick % 10 == 0:
                    with database.engine.connect() as connection:
                        samples.append(
                            connection.execute(
                                select(func.count()).where(outbox.c.status == "pending")
                            ).scalar_one()
                        )
                pause = started + tick / 10 - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
        elapsed = time.perf_counter() - started
        drained_at = time.perf_counter()
        while True:
            with database.engine.connect() as connection:
                pending = connection.execute(
                    select(func.count()).where(outbox.c.status == "pending")
                ).scalar_one()
                delivered = connection.execute(
                    select(func.count()).where(outbox.c.status == "delivered")
                ).scalar_one()
            if pending == 0 or time.perf_counter() - drained_at > 60:
                break
            time.sleep(0.2)
        drain = time.perf_counter() - drained_at
    finally:
        database.dispose()
        stop(server)
        stop(receiver)
    print(f"webhooks out: posted {posted:,} events in {elapsed:.1f} s ({posted / elapsed:,.0f}/s)")
    print(f"  outbox pending, sampled each second: {samples}")
    print(f"  delivered {delivered:,}; pending {pending} after a {drain:.1f} s drain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=1000)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        native, livekit = webhooks_in(sys.executable, folder, args.seconds)
        print(
            f"native single events:    {native:8,.0f} events/s (mean of the runs before and after)"
        )
        print(
            f"signed LiveKit webhooks: {livekit:8,.0f} events/s "
            f"({livekit / native:.0%} of native; target 60%)"
        )
        webhooks_out(sys.executable, folder, args.seconds * 2, args.rate)


if __name__ == "__main__":
    main()
