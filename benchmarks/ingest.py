"""Ingest throughput of `roomlog serve`, against a hello-world floor, in one run.

1. Single events: wrk posts one event per request (32 connections) for `--seconds`, first to
   two hello-world endpoints served the same way (benchmarks/hello.py: a Litestar route and
   a bare ASGI callable, since roomlog answers this route ahead of Litestar; the bare one
   also on roomlog's own HTTP protocol, which writes an answer in one piece), then to
   `POST /v1/events` on SQLite, each event committed before its answer, then to the floors
   again: each share is of a floor's faster run, since the machine's speed drifts. The
   server runs on core 0 with its applier in a thread (and, for the 200-room history once
   more, in a process of its own, on core 0 too), wrk on core 1. Then both histories once
   more with the applier's process moved to core 1, beside wrk, as on a machine with a core
   to spare. Each run prints where the server's CPU went per event (Linux's /proc): its
   event loop (the main thread), its other threads (the writer, the applier's threads) and
   its child processes (the applier's process).
2. Batches of 1,000 events, on SQLite and on PostgreSQL, from 4 concurrent clients; the
   history is split among them by room, each posting its rooms' events in order. Each
   workload runs with the applier in a thread, in a process, and in a process paused for the
   run (SIGSTOP): the acknowledgement path alone, what ingest reaches with applying free, and
   so the most any change to applying could bring. The append floors (benchmarks/floors.py)
   run before and after them, since the machine's speed drifts; each ratio is to the fastest
   method's faster run.

Two workloads: `history`, a realistic history (benchmarks/sessionize.py's generator: meetings
of 1 to 12 people in many rooms, reconnects, late and repeated deliveries) replayed in
delivery order with its times moved to end now; and `churn`, 200 rooms (500 for batches)
whose participants join and leave too quickly for a visit to count (no session forms), far
busier than any real room.

Needs wrk (`apt-get install wrk`) and, for PostgreSQL, $ROOMLOG_BENCH_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test; a fresh schema is made and dropped).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Final

import httpx
import psycopg

from benchmarks.floors import best, floors
from benchmarks.sessionize import generate
from roomlog.store.db import migrate, open_database
from roomlog.store.projects import create_key, ensure_project

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENTS = 4  # concurrent clients posting batches
# Where the server applies events (`--appliers`); "paused": in a process of its own, stopped
# (SIGSTOP) for the run, so that nothing is applied: what the acknowledgement path reaches
# on its own, with applying free. Last, since its events are left pending.
PLACEMENTS = ("thread", "process", "paused")
POSTGRES = os.environ.get("ROOMLOG_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Each request posts one event with a fresh id; rooms and participants cycle so rooms see
# joins and leaves in time order, like a live deployment.
WRK_SCRIPT = """
local counter = 0
local thread_id = 0
setup = function(thread) thread:set("tid", (RUN or "") .. thread_id); thread_id = thread_id + 1 end
init = function(args) counter = 0 end
request = function()
  counter = counter + 1
  local room = "room-" .. (counter % 200)
  local kind = (math.floor(counter / 200) % 2 == 0) and "participant.joined" or "participant.left"
  local body = string.format(
    '{"id":"w%s-%d","type":"%s","room":"%s","participant_id":"p-%s-%d","at":%d}',
    tid, counter, kind, room, tid, counter % 1000, os.time())
  return wrk.format("POST", nil, HEADERS, body)
end
"""


HISTORY_SCRIPT = """
local bodies = {}
local counter = 0
init = function(args)
  for line in io.lines(BODIES) do bodies[#bodies + 1] = line end
end
request = function()
  counter = counter % #bodies + 1
  return wrk.format("POST", nil, HEADERS, bodies[counter])
end
"""


def history(count: int, tag: str, rooms: int = 0) -> list[dict[str, object]]:
    """`count` events of a realistic history in `rooms` rooms (default: one per 400 events) in
    delivery order, its times moved to end now, its ids and rooms made this run's own with
    `tag` (a repeated delivery keeps its id)."""
    lines, end = generate(count, 7, rooms)
    shift = time.time() - end
    events = []
    for line in lines:
        event = json.loads(line)
        event["at"] = round(float(event["at"]) + shift, 3)
        event["id"] = f"{tag}-{event['id']}"
        event["room"] = f"{tag}-{event['room']}"  # rooms of their own, apart from other runs
        events.append(event)
    return events


def taskset(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") else []


def wait_up(url: str) -> None:
    for _ in range(300):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def run_wrk(url: str, script: str, seconds: int, folder: Path) -> tuple[float, int]:
    """wrk with a Lua `script` (1 thread, 32 connections) on core 1: requests/s, non-2xx."""
    path = folder / "bench.lua"
    path.write_text(script)
    out = subprocess.run(
        [*taskset(1), "wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(path), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, int(bad.group(1)) if bad else 0


def wrk(
    url: str, headers: dict[str, str], seconds: int, folder: Path, bodies: Path | None = None
) -> tuple[float, int]:
    """wrk posting single events: `bodies` (one JSON event per line) in turn, else churn."""
    lua = "\n".join(
        f'HEADERS = HEADERS or {{}}; HEADERS["{k}"] = "{v}"' for k, v in headers.items()
    )
    if bodies is not None:
        return run_wrk(url, f'{lua}\nBODIES = "{bodies}"\n{HISTORY_SCRIPT}', seconds, folder)
    run = f'RUN = "{uuid.uuid4().hex[:8]}"'
    return run_wrk(url, f"{lua}\n{run}\n{WRK_SCRIPT}", seconds, folder)


def serve(argv: list[str], url: str, log: Path, pin: bool = True) -> subprocess.Popen[bytes]:
    """Run `argv` (on core 0 if `pin`, else on any) until `url` answers."""
    process = subprocess.Popen(
        [*(taskset(0) if pin else []), *argv],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    wait_up(url)
    return process


def serve_roomlog(
    database_url: str,
    port: int,
    log: Path,
    appliers: str = "thread",
    pin: bool = True,
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """`roomlog serve` on `database_url` (on core 0 if `pin`), once it answers."""
    argv = [sys.executable, "-m", "roomlog", "serve", "--database-url", database_url]
    argv += ["--appliers", appliers, "--port", str(port), *extra]
    return serve(argv, f"http://127.0.0.1:{port}/health", log, pin)


def stop(process: subprocess.Popen[bytes]) -> None:
    for child in children(process.pid):  # a paused applier (`serve_placed`) must hear it
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGCONT)
    process.terminate()
    process.wait(timeout=30)


def serve_placed(
    database_url: str, port: int, log: Path, placement: str
) -> subprocess.Popen[bytes]:
    """`roomlog serve` with its applier placed as `placement` (one of `PLACEMENTS`), not
    pinned. "paused": the applier's process is stopped once it has claimed its partitions
    (a second after the server answers; it renews its leases every second, in transactions
    of about a millisecond, so it is all but never stopped inside one). `stop` resumes it."""
    appliers = "process" if placement == "paused" else placement
    server = serve_roomlog(database_url, port, log, appliers, pin=False)
    if placement == "paused":
        time.sleep(1.0)
        for child in children(server.pid):
            os.kill(child, signal.SIGSTOP)
    return server


def make_key(database_url: str) -> str:
    database = open_database(database_url)
    migrate(database)
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "default")
        key = create_key(connection, project)
    database.dispose()
    return key


def history_batches(
    count: int, size: int, tag: str, clients: int = CLIENTS, rooms: int = 0
) -> list[list[bytes]]:
    """The history as `clients` streams of batches, each room's events all in one stream and
    in delivery order, as relays split by room would post them. (Dealt out batch by batch
    instead, a client running a few batches behind would deliver events hours of history
    late, and every room they touch would be rebuilt.)"""
    streams: list[list[dict[str, object]]] = [[] for _ in range(clients)]
    for event in history(count * size, tag, rooms):
        streams[zlib.crc32(str(event["room"]).encode()) % clients].append(event)
    return [
        [json.dumps(events[i : i + size]).encode() for i in range(0, len(events), size)]
        for events in streams
    ]


def churn_batches(count: int, size: int, tag: str, clients: int = CLIENTS) -> list[list[bytes]]:
    """Churn in `clients` streams, dealt out batch by batch (its times all lie within the
    late window, so the order they arrive in costs nothing)."""
    bodies = churn_bodies(count, size, tag)
    return [bodies[i::clients] for i in range(clients)]


def churn_bodies(count: int, size: int, tag: str) -> list[bytes]:
    now = time.time()
    bodies = []
    for b in range(count):
        events = []
        for i in range(size):
            n = b * size + i
            room = f"room-{n % 500}"
            turn = n // 500
            events.append(
                {
                    "id": f"{tag}-{n}",
                    "type": "participant.joined" if turn % 2 == 0 else "participant.left",
                    "room": room,
                    "participant_id": f"p-{room}-{turn // 2 % 4}",
                    "at": now - 120 + n * 1e-5,
                }
            )
        bodies.append(json.dumps(events).encode())
    return bodies


def post_batches(url: str, key: str, shares: list[list[bytes]]) -> float:
    """Events/s for posting each of `shares` in order, all of them at once."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    clients = len(shares)
    errors: list[str] = []
    posted = [0] * clients

    def run(n: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            for body in shares[n]:
                answer = client.post("/v1/events", content=body, headers=headers)
                if answer.status_code != 200 or answer.json()["rejected"]:
                    errors.append(answer.text[:200])
                else:
                    report = answer.json()
                    posted[n] += report["accepted"] + report["duplicates"]

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(errors[0])
    return sum(posted) / elapsed


def placed_batches(
    label: str,
    database_url: str,
    port: int,
    log: Path,
    placement: str,
    workloads: dict[str, list[list[bytes]]],
) -> dict[str, float]:
    """Events/s of each workload posted to one `roomlog serve` on `database_url` with its
    applier placed as `placement`, by figure name ("<label> <workload> <placement>")."""
    key = make_key(database_url)
    server = serve_placed(database_url, port, log, placement)
    try:
        return {
            f"{label} {name} {placement}": post_batches(f"http://127.0.0.1:{port}", key, posts)
            for name, posts in workloads.items()
        }
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    # 200 batches a workload: runs of 60 moved by a third from one to the next.
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument(
        "--only", choices=("all", "batches", "singles"), default="all", help="run one half"
    )
    args = parser.parse_args()
    singles_too = args.only in ("all", "singles")
    batches_too = args.only in ("all", "batches")
    if singles_too and shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    tag = uuid.uuid4().hex[:8]
    figures: dict[str, float] = {}
    workloads = {
        "history, 200 rooms": history_batches(args.batches, 1000, f"b{tag}", rooms=200),
        "history, 3,000 rooms": history_batches(args.batches, 1000, f"m{tag}", rooms=3000),
        "churn": churn_batches(args.batches, 1000, f"c{tag}"),
    }
    # The floors append the 200-room history's batches: every method, the same rows.
    floor_bodies = [body for stream in workloads["history, 200 rooms"] for body in stream]
    if not batches_too:
        workloads = {}
    # The floors run before and after roomlog's batches: the machine's speed drifts, and the
    # ratios are to the faster of the two.
    earlier = floors(floor_bodies) if batches_too else {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        log = folder / "server.log"
        if singles_too:
            singles(figures, folder, log, args.seconds, tag)
        for appliers in PLACEMENTS if batches_too else ():
            sqlite_url = f"sqlite:///{folder / f'{appliers}.db'}"
            figures |= placed_batches("SQLite", sqlite_url, 8711, log, appliers, workloads)

        # Each placement on a schema of its own, as each has a SQLite file of its own: none
        # runs on the tables another filled.
        for appliers in PLACEMENTS if batches_too else ():
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            try:
                with psycopg.connect(POSTGRES, autocommit=True) as connection:
                    connection.execute(f"CREATE SCHEMA {schema}")
            except psycopg.Error as exc:
                print(f"PostgreSQL skipped: {exc}")
                break
            pg_url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
            try:
                figures |= placed_batches("PostgreSQL", pg_url, 8712, log, appliers, workloads)
            finally:
                with psycopg.connect(POSTGRES, autocommit=True) as connection:
                    connection.execute(f"DROP SCHEMA {schema} CASCADE")
    later = floors(floor_bodies) if batches_too else {}
    appends = {method: max(rate, later.get(method, 0.0)) for method, rate in earlier.items()}

    if singles_too:
        for figure, _, _, label in HELLO_FLOORS:
            before, after = figures[figure], figures[f"{figure}, after"]
            print(f"hello-world POST, {label} (floor): {before:,.0f} req/s, after: {after:,.0f}")
        # Each share is of the floor's faster run.
        floor, bare, joined = (max(figures[f], figures[f"{f}, after"]) for f, *_ in HELLO_FLOORS)
        names = ("history, 200 rooms", "history, 2,000 rooms", "churn")
        extra = ("no access log", "applier in a process")
        spared = tuple(f"{n}, applier in a process on core 1" for n in names[:2])
        for name in (*names, *(f"history, 200 rooms, {e}" for e in extra), *spared):
            single = figures[f"single {name}"]
            print(
                f"POST /v1/events, 1 event, SQLite, {name}: {single:10,.0f} events/s"
                f" ({single / floor:.0%} of Litestar's floor, {single / bare:.0%} of the bare one,"
                f" {single / joined:.0%} of the bare one on roomlog's protocol;"
                " targets 5,000/s and 30% of the bare one)"
            )
    for method, rate in earlier.items():
        print(f"floor: {method}: {rate:,.0f} events/s before, {later.get(method, 0.0):,.0f} after")
    for database, target in (("SQLite", 0.4), ("PostgreSQL", 0.6)):
        if not any(name.startswith(database) for name in appends):
            continue
        method, append = best(appends, database)
        print(f"{database}: fastest floor: {method} ({append:,.0f}/s)")
        for name in workloads:
            for appliers in PLACEMENTS:
                rate = figures[f"{database} {name} {appliers}"]
                placed = (
                    "applier paused (the acknowledgement path alone)"
                    if appliers == "paused"
                    else f"applier in a {appliers}"
                )
                print(
                    f"POST /v1/events, 1,000/batch, 4 clients, {database}, {name}, {placed}:"
                    f" {rate:,.0f} events/s ({rate / append:.2f} of the fastest floor;"
                    f" target {target})"
                )


def singles(figures: dict[str, float], folder: Path, log: Path, seconds: int, tag: str) -> None:
    """Single events, by wrk: the hello-world floors, then roomlog on SQLite."""
    histories: dict[str, Path] = {}
    for rooms in (200, 2000):
        histories[f"history, {rooms:,} rooms"] = path = folder / f"singles-{rooms}.ndjson"
        events = history(seconds * 10_000, f"w{rooms}{tag}", rooms)
        path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    hello_floors(figures, folder, log, seconds, "")
    runs: list[tuple[str, Path | None]] = [*histories.items(), ("churn", None)]
    for (name, _), rate in zip(runs, posted(folder, log, seconds, "singles.db", runs), strict=True):
        figures[f"single {name}"] = rate
    # The first workload again without the request log (what a line per request costs), and
    # with the applier in a process of its own (`serve`'s default), which inherits the
    # server's core: both placements on one core.
    first = runs[:1]
    name = first[0][0]
    (figures[f"single {name}, no access log"],) = posted(
        folder, log, seconds, "singles-quiet.db", first, extra=("--no-access-log",)
    )
    (figures[f"single {name}, applier in a process"],) = posted(
        folder, log, seconds, "singles-process.db", first, appliers="process"
    )
    # The applier's process moved to core 1, beside wrk: the server's core left to the event
    # loop and the writer, as on a machine with a core to spare.
    for n, (spared_name, spared) in enumerate(runs[:2]):
        (figures[f"single {spared_name}, applier in a process on core 1"],) = posted(
            folder,
            log,
            seconds,
            f"singles-spared-{n}.db",
            [(spared_name, spared)],
            appliers="process",
            applier_core=1,
        )
    # The floors again: the machine's speed drifts, and the shares are of the faster run.
    hello_floors(figures, folder, log, seconds, ", after")


# The bare floor also on roomlog's own HTTP protocol (`roomlog.api.server`), which writes each
# answer in one piece: what the same nothing costs on the server roomlog runs.
HELLO_FLOORS: Final = (
    ("floor", "app", "httptools", "Litestar"),
    ("bare floor", "bare", "httptools", "bare ASGI"),
    (
        "bare floor, roomlog's protocol",
        "bare",
        "roomlog.api.server:GuardedProtocol",
        "bare ASGI on roomlog's protocol",
    ),
)


def hello_floors(
    figures: dict[str, float], folder: Path, log: Path, seconds: int, suffix: str
) -> None:
    """The hello-world floors by wrk, each figure's name followed by `suffix`."""
    for figure, app, http, _ in HELLO_FLOORS:
        argv = [sys.executable, "-m", "uvicorn", f"benchmarks.hello:{app}", "--port", "8710"]
        argv += ["--loop", "uvloop", "--http", http, "--log-level", "warning"]
        hello = serve(argv, "http://127.0.0.1:8710/hello", log)
        try:
            figures[figure + suffix], _ = wrk(
                "http://127.0.0.1:8710/hello", {"Content-Type": "application/json"}, seconds, folder
            )
        finally:
            stop(hello)


def posted(
    folder: Path,
    log: Path,
    seconds: int,
    database: str,
    runs: list[tuple[str, Path | None]],
    appliers: str = "thread",
    extra: tuple[str, ...] = (),
    applier_core: int | None = None,
) -> list[float]:
    """Events/s of wrk posting each of `runs` (its single events, or churn for None) in turn
    to one `roomlog serve` on a new SQLite file `database`; exits if any post failed. Prints
    where the server's CPU went, per event. `applier_core`: move the applier's process there."""
    sqlite_url = f"sqlite:///{folder / database}"
    key = make_key(sqlite_url)
    server = serve_roomlog(sqlite_url, 8711, log, appliers, extra=extra)
    try:
        if applier_core is not None and shutil.which("taskset"):
            for child in children(server.pid):  # all its threads (-a)
                command = ["taskset", "-a", "-cp", str(applier_core), str(child)]
                subprocess.run(command, check=True, capture_output=True)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        url = "http://127.0.0.1:8711/v1/events"
        rates = []
        for name, given in runs:
            before = cpu_split(server.pid)
            rate, bad = wrk(url, headers, seconds, folder, given)
            after = cpu_split(server.pid)
            if bad:
                ends = log.read_text()[-3000:]
                sys.exit(f"{bad} single-event posts failed; the server's log ends:\n{ends}")
            rates.append(rate)
            if before and after:
                spent = [
                    (a - b) / (rate * seconds) * 1e6 for a, b in zip(after, before, strict=True)
                ]
                print(
                    f"  CPU an event, {name}, applier in a {appliers}"
                    f"{'' if applier_core is None else f' on core {applier_core}'}: event loop"
                    f" {spent[0]:.0f} µs, the server's other threads (writer, applier)"
                    f" {spent[1]:.0f} µs, its child processes (applier) {spent[2]:.0f} µs",
                    flush=True,
                )
        return rates
    finally:
        stop(server)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux's /proc; none elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def cpu_split(pid: int) -> tuple[float, float, float] | None:
    """CPU seconds of process `pid`'s main thread (the event loop), of its other threads, and
    of its child processes, from Linux's /proc; None elsewhere."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def spent(path: Path) -> float:
        fields = path.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime

    try:
        threads = {int(t.name): spent(t / "stat") for t in Path(f"/proc/{pid}/task").iterdir()}
        others = sum(spent(Path(f"/proc/{child}/stat")) for child in children(pid))
    except (OSError, ValueError):
        return None
    main = threads.pop(pid, 0.0)
    return main, sum(threads.values()), others


if __name__ == "__main__":
    main()
