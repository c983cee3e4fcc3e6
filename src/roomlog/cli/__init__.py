"""The `roomlog` command line."""

from __future__ import annotations

import argparse
import atexit
import gc
import glob
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import IO, NoReturn

from roomlog import __version__
from roomlog.cli.arguments import SERVICE_COMMANDS, add_commands, instant
from roomlog.domain.rules import Rules
from roomlog.offline import MB, sessionize_lines

EXIT_INVALID = 2


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value < 10**9:
        raise argparse.ArgumentTypeError(f"expected 0 or more seconds, got {text!r}")
    return value


def _megabytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole megabytes, got {text!r}") from None
    if not 128 <= value <= 1 << 30:
        raise argparse.ArgumentTypeError(f"expected 128 MB or more, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roomlog",
        description="Meeting sessions from video-room join/leave events.",
    )
    parser.add_argument("--version", action="version", version=f"roomlog {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sessionize = commands.add_parser(
        "sessionize",
        help="compute meeting sessions from an NDJSON file of events",
        description=(
            "Read native presence events, one JSON object per line, and print every room's "
            "meeting sessions as Daily's meeting objects, newest first."
        ),
    )
    sessionize.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="NDJSON file, or - for stdin"
    )
    sessionize.add_argument(
        "--now",
        type=instant,
        metavar="UNIX",
        help="evaluate at this time (unix seconds or RFC 3339); default: the current time",
    )
    sessionize.add_argument("--min-presence", type=_seconds, default=10.0, metavar="S")
    sessionize.add_argument("--solo-start", type=_seconds, default=30.0, metavar="S")
    sessionize.add_argument("--solo-reset", type=_seconds, default=600.0, metavar="S")
    sessionize.add_argument(
        "--project",
        default="default",
        metavar="NAME",
        help="the project session ids are derived from (default: default)",
    )
    sessionize.add_argument(
        "--memory",
        type=_megabytes,
        default=512,
        metavar="MB",
        help="the memory to stay within, in MB (default: 512); a longer input is spilled to "
        "temporary files by room",
    )
    sessionize.add_argument(
        "--skip-invalid",
        action="store_true",
        help="report invalid lines on stderr and go on without them",
    )
    add_commands(commands)
    return parser


def _sessionize(
    args: argparse.Namespace, parser: argparse.ArgumentParser, exit_when_done: bool
) -> int:
    try:
        rules = Rules.seconds(args.min_presence, args.solo_start, args.solo_reset)
    except ValueError as exc:
        parser.error(str(exc))
    now: int = args.now if args.now is not None else time.time_ns() // 1000
    try:
        source: IO[bytes] = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"roomlog sessionize: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID

    name = "<stdin>" if args.file == "-" else args.file
    suffix = " (skipped)" if args.skip_invalid else ""

    def report(line: int, message: str) -> None:
        print(f"{name}:{line}: {message}{suffix}", file=sys.stderr)

    # A one-shot batch that builds millions of small acyclic objects: cyclic garbage
    # collection finds nothing to free and costs a third of the run time.
    gc.disable()
    with source:
        progress = _progress(source)
        outcome = sessionize_lines(
            source,
            now,
            report,
            rules,
            args.project,
            args.memory * MB,
            progress,
            file=source if progress is not None else None,
        )
    if outcome.invalid and not args.skip_invalid:
        print(
            f"roomlog sessionize: {outcome.invalid} invalid line(s), nothing written; "
            "fix them or pass --skip-invalid",
            file=sys.stderr,
        )
        return EXIT_INVALID
    if outcome.future:
        print(
            f"roomlog sessionize: {outcome.future} event(s) stamped after --now were left out",
            file=sys.stderr,
        )
    outcome.write(sys.stdout.buffer)
    if exit_when_done:  # while `outcome` still holds everything
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _progress(source: IO[bytes]) -> Callable[[], float] | None:
    """The part of a regular file read so far; None for a pipe, whose length is unknown."""
    if not source.seekable():
        return None
    size = os.fstat(source.fileno()).st_size
    if not size:
        return None
    return lambda: min(1.0, max(source.tell(), 1) / size)


def _metrics_directory() -> None:
    """Set up prometheus-client's multiprocess mode for `roomlog serve`, whose workers and
    applier processes each count their own metrics: a directory they all write to, emptied of
    an earlier run's files (or a new one, removed at exit). It must be in the environment
    before prometheus-client is first imported, here and in every process started after."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
        return
    path = tempfile.mkdtemp(prefix="roomlog-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)


def command() -> NoReturn:
    """The `roomlog` program. After `sessionize` it exits at once, leaving the millions of
    objects it made to the operating system instead of freeing them one by one."""
    code = main(exit_when_done=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None, *, exit_when_done: bool = False) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "sessionize":
        return _sessionize(args, parser, exit_when_done)
    if args.command == "serve":
        _metrics_directory()
    if args.command in SERVICE_COMMANDS:
        # Imported here, not at the top: SQLAlchemy, Alembic and Litestar take a quarter of a
        # second to import, which `roomlog sessionize` should not pay.
        from roomlog.cli.commands import run  # noqa: PLC0415

        return run(args)
    parser.error(f"unknown command {args.command}")
