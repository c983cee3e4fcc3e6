"""`roomlog sessionize` at every size: time against the `json.loads` floor, and peak memory
against the `--memory` budget, each size measured in one run.

For each size it writes (once, into benchmarks/data/) a realistic history made by the
generator of `benchmarks/sessionize.py`, streamed so that ten million events need no more
memory than a hundred thousand, then times, as separate processes, best of `--repeat`:
  - the floor: a process that only runs `json.loads` on each line;
  - `roomlog sessionize FILE --memory MB`, output to /dev/null, with the peak of its memory
    and its workers' together (their proportional set sizes summed,
    sampled every 100 ms);
  - the same from stdin (`roomlog sessionize - < FILE`).

    python benchmarks/sessionize_sizes.py [--sizes 0.1,1,1.01,2,5,10] [--memory 512]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.sessionize import DATA, EPOCH, deliveries, meeting

FLOOR = "import json,sys\nfor line in open(sys.argv[1], 'rb'): json.loads(line)"
# Events generated, sorted by delivery and written at a time.
SLICE = 200_000


def write_history(path: Path, count: int, seed: int) -> int:
    """Write `count` events to `path` as NDJSON; the `now` (unix seconds) to read them at.

    Rooms (one per 400 events) hold meetings one after another; each slice of events is
    delivered in time order, 5% of them up to two minutes late and 2% twice.
    """
    rnd = random.Random(seed)
    rooms = [f"room-{i:05d}" for i in range(max(count // 400, 1))]
    clock = {room: EPOCH + rnd.uniform(0, 3600) for room in rooms}
    serial = [0]
    written, latest = 0, 0.0
    with path.open("w") as out:
        while written < count:
            events: list[dict[str, object]] = []
            while len(events) < min(SLICE, count - written):
                room = rnd.choice(rooms)
                events += meeting(rnd, room, clock[room], serial)
                clock[room] += rnd.expovariate(1 / 5400) + 3600
            events = events[: count - written]
            delivered = deliveries(rnd, events, written)[: count - written]
            out.writelines(json.dumps(b, separators=(",", ":")) + "\n" for _, b in delivered)
            written += len(delivered)
            latest = max(latest, delivered[-1][0])
    return int(latest) + 60


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    found = [pid]
    for parent in found:
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found += [int(c) for c in children]
    return found


def _pss(pids: list[int]) -> int:
    """The proportional set size (bytes) of `pids` together: shared pages counted once."""
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
    return total


def run(argv: list[str], stdin: Path | None = None) -> tuple[float, int]:
    """Seconds, and the peak memory (bytes) of the process with its workers: their summed
    proportional set size, sampled every 100 ms by a thread while this one waits."""
    source = stdin.open("rb") if stdin is not None else None
    peak = [0]
    try:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdin=source, stdout=subprocess.DEVNULL)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.1):
                peak[0] = max(peak[0], _pss(_tree(process.pid)))

        sampler = threading.Thread(target=sample)
        sampler.start()
        process.wait()
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    finally:
        if source is not None:
            source.close()
    if process.returncode:
        raise SystemExit(f"{argv} failed with {process.returncode}")
    return seconds, peak[0]


def best(repeat: int, argv: list[str], stdin: Path | None = None) -> tuple[float, int]:
    runs = [run(argv, stdin) for _ in range(repeat)]
    return min(s for s, _ in runs), max(m for _, m in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.1,1,1.01,2,5,10", help="millions of events")
    parser.add_argument("--memory", type=int, default=512, help="--memory, in MB")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"budget: --memory {args.memory} (MB); best of {args.repeat}")
    print(
        f"{'events':>11} {'MB':>6} {'floor s':>8} {'file s':>8} {'ratio':>6} {'peak MB':>8}"
        f" {'stdin s':>8} {'ratio':>6} {'peak MB':>8}"
    )
    DATA.mkdir(exist_ok=True)
    roomlog = [sys.executable, "-m", "roomlog", "sessionize"]
    worst = 0.0
    for size in args.sizes.split(","):
        count = round(float(size) * 1_000_000)
        path = DATA / f"history-{count}-{args.seed}.ndjson"
        now_file = path.with_suffix(".now")
        if not path.exists() or not now_file.exists():
            now_file.write_text(str(write_history(path, count, args.seed)))
        now = now_file.read_text()
        options = ["--now", now, "--memory", str(args.memory)]
        floor, _ = best(args.repeat, [sys.executable, "-c", FLOOR, str(path)])
        on_file, file_peak = best(args.repeat, [*roomlog, str(path), *options])
        on_stdin, stdin_peak = best(args.repeat, [*roomlog, "-", *options], stdin=path)
        worst = max(worst, on_file / floor, on_stdin / floor)
        print(
            f"{count:>11,} {path.stat().st_size / 1e6:>6.0f} {floor:>8.2f} {on_file:>8.2f}"
            f" {on_file / floor:>6.2f} {file_peak / 2**20:>8.0f} {on_stdin:>8.2f}"
            f" {on_stdin / floor:>6.2f} {stdin_peak / 2**20:>8.0f}"
        )
    print(f"worst ratio to the floor: {worst:.2f} (target: 1.3 or less)")
    print(f"peak memory target: {args.memory + 100} MB or less")


if __name__ == "__main__":
    main()
