"""The service commands' arguments. Only the standard library, the pure domain and the store's
defaults here: `roomlog sessionize` must not pay for importing the service."""

from __future__ import annotations

import argparse
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from roomlog.domain.events import InvalidTime, micros_from_at
from roomlog.store.defaults import DEFAULT_PROJECT, ENV_URL

SERVICE_COMMANDS: Final = (
    "serve",
    "keys",
    "projects",
    "providers",
    "import",
    "rebuild",
    "export",
    "prune",
    "backup",
)
# Each provider's credential options (`api_key` is `--api-key`); `roomlog.store.providers`
# has the same fields, and `public_key_file` stores the file's content as `public_key`.
PROVIDER_OPTIONS: Final = {
    "livekit": ("api_key", "api_secret"),
    "daily": ("hmac",),
    "twilio": ("auth_token",),
    "videosdk": ("public_key_file",),
    "jitsi": ("secret",),
}
_OPTION_HELP: Final = {
    "api_key": "the LiveKit API key (the JWT issuer)",
    "api_secret": "the LiveKit API secret",
    "hmac": "the webhook's base64 HMAC secret, as Daily shows it",
    "auth_token": "the Twilio account's auth token",
    "public_key_file": "a PEM file with VideoSDK's RSA public key for webhooks",
    "secret": "the secret event_sync sends as `Authorization: Bearer <secret>`",
}


def instant(text: str) -> int:
    """A time on the command line: unix seconds or RFC 3339, to microseconds."""
    try:
        value: float | str = float(text)
    except ValueError:
        value = text
    try:
        return micros_from_at(value)
    except InvalidTime as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def public_url(text: str) -> str:
    """`serve --public-url`: an http(s) URL with a host, and a path prefix at most."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(
            f"expected the URL clients use, such as https://roomlog.example.com, got {text!r}"
        )
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{text!r}: give no query string or fragment")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected days, got {text!r}") from None
    if not 0 < value <= 100_000:
        raise argparse.ArgumentTypeError(f"expected more than 0 days, got {text!r}")
    return value


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of threads, got {text!r}") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"expected 1 to 64 threads, got {text!r}")
    return value


def operations(serve: argparse.ArgumentParser) -> None:
    """`serve`'s options for running it in production (docs/OPERATIONS.md)."""
    serve.add_argument(
        "--public-url",
        type=public_url,
        metavar="URL",
        help="the address clients reach this server at, when a proxy stands in front "
        "(https://roomlog.example.com): Twilio's signatures and VideoSDK's chatLink use it "
        "instead of the forwarded headers",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="comma-separated proxy addresses whose X-Forwarded-For and X-Forwarded-Proto "
        "are believed, or * (default: 127.0.0.1, or $FORWARDED_ALLOW_IPS)",
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text (default) or one JSON object per line",
    )
    serve.add_argument(
        "--no-access-log",
        action="store_true",
        help="do not log a line per request (errors are still logged)",
    )
    serve.add_argument(
        "--metrics-token",
        metavar="TOKEN",
        help="require `Authorization: Bearer TOKEN` to read /metrics (default: open; or "
        "$ROOMLOG_METRICS_TOKEN)",
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="on SIGTERM, wait at most SECONDS for the requests under way before closing "
        "their connections (default 20); the server exits within about SECONDS + 5",
    )
    serve.add_argument(
        "--retention-days",
        type=_days,
        metavar="N",
        help="remove events, sessions and chat older than N days (default: keep everything); "
        "delivered webhook events and the delivery log are removed after 30 days regardless",
    )


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def database_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--database-url",
            metavar="URL",
            help=f"sqlite:///FILE or postgresql://... (default: ${ENV_URL}, else ./roomlog.db)",
        )

    serve = commands.add_parser("serve", help="run the HTTP API")
    database_option(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    serve.add_argument("--demo", action="store_true", help="load a generated demo history")
    serve.add_argument(
        "--late-window",
        type=float,
        default=600.0,
        metavar="S",
        help="events up to this late are applied incrementally (default 600 s)",
    )
    serve.add_argument(
        "--max-skew",
        type=float,
        default=60.0,
        metavar="S",
        help="how far in the future an event may be stamped (default 60 s)",
    )
    serve.add_argument(
        "--stale-after",
        type=float,
        default=0.0,
        metavar="S",
        help="close a presence with no event or snapshot for this long (default 0: never)",
    )
    serve.add_argument(
        "--webhook-deny-private",
        action="store_true",
        help="refuse webhook targets on loopback, link-local, private and reserved addresses "
        "(for deployments shared by tenants who must not reach the server's network)",
    )
    serve.add_argument(
        "--webhook-retry-base",
        type=float,
        default=60.0,
        metavar="S",
        help="first retry of a failed webhook delivery after this long, doubling (default 60 s)",
    )
    serve.add_argument(
        "--chat-link-ttl",
        type=int,
        default=3600,
        metavar="S",
        help="how long a session's chatLink works (default 3600 s)",
    )
    serve.add_argument(
        "--wait",
        choices=("logged", "applied"),
        default="logged",
        help="answer writes once their events are in the log (default), or once they are "
        "applied to the sessions; a request's ?wait= chooses for itself",
    )
    serve.add_argument(
        "--partitions",
        type=int,
        default=16,
        metavar="P",
        help="partitions of rooms, each applied by one process at a time (default 16; fixed "
        "for a database by its first server)",
    )
    serve.add_argument(
        "--writers",
        type=_threads,
        default=2,
        metavar="N",
        help="PostgreSQL: threads appending events to the log side by side, each on a "
        "connection of its own (default 2); SQLite has one writer at a time",
    )
    serve.add_argument(
        "--apply-threads",
        type=_threads,
        default=2,
        metavar="N",
        help="threads of the applier, each applying some of its partitions, so that while "
        "one waits for the database another computes (default 2)",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="close a connection whose request headers are not complete within SECONDS of "
        "connecting or of the previous answer (default 10)",
    )
    serve.add_argument(
        "--keep-alive",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="close a kept-alive connection idle for SECONDS (default 5)",
    )
    serve.add_argument(
        "--max-header-bytes",
        type=int,
        default=65_536,
        metavar="BYTES",
        help="answer 431 to request headers larger than BYTES (default 65536); bodies are "
        "limited to 5 MiB",
    )
    serve.add_argument(
        "--appliers",
        choices=("process", "thread"),
        default="process",
        help="apply events in a process of their own (default: ingest and applying use two "
        "cores, and on PostgreSQL one project's costly work does not hold up another's "
        "requests) or in a thread of the server",
    )

    operations(serve)

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser("create", help="print a new key (last line of stdout)")
    create.add_argument("--project", default=DEFAULT_PROJECT, metavar="NAME")
    database_option(create)
    listing = key_commands.add_parser("list", help="list keys (ids only, never secrets)")
    listing.add_argument("--project", metavar="NAME")
    database_option(listing)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id or the key itself")
    revoke.add_argument("key_id", metavar="KEY_ID")
    database_option(revoke)

    projects = commands.add_parser(
        "projects", help="show a project's VideoSDK credentials, or change its settings"
    )
    project_commands = projects.add_subparsers(
        dest="projects_command", required=True, metavar="ACTION"
    )
    show = project_commands.add_parser("show", help="public id (JWT `apikey`) and secret")
    show.add_argument("--project", default=DEFAULT_PROJECT, metavar="NAME")
    database_option(show)
    change = project_commands.add_parser("set", help="change a project's settings")
    change.add_argument("--project", default=DEFAULT_PROJECT, metavar="NAME")
    change.add_argument(
        "--person-key",
        required=True,
        choices=("user_id", "user_name"),
        help="who a person is in attendance reports: the joins' user_id (the default), or "
        "their user_name for providers that send no user id; else the participant_id",
    )
    database_option(change)

    providers = commands.add_parser("providers", help="set and list media-server credentials")
    provider_commands = providers.add_subparsers(
        dest="providers_command", required=True, metavar="ACTION"
    )
    setting = provider_commands.add_parser("set", help="set a provider's credentials")
    each = setting.add_subparsers(dest="provider", required=True, metavar="PROVIDER")
    for name, options in PROVIDER_OPTIONS.items():
        one = each.add_parser(name, help=f"{name} webhooks")
        one.add_argument("--project", default=DEFAULT_PROJECT, metavar="NAME")
        for option in options:
            one.add_argument(
                "--" + option.replace("_", "-"), required=True, help=_OPTION_HELP[option]
            )
        database_option(one)
    shown = provider_commands.add_parser("list", help="list credentials, secrets masked")
    shown.add_argument("--project", metavar="NAME")
    database_option(shown)

    load = commands.add_parser("import", help="store NDJSON events as the API would")
    load.add_argument("file", metavar="FILE", help="NDJSON file, or - for stdin")
    load.add_argument("--project", default=DEFAULT_PROJECT, metavar="NAME")
    database_option(load)

    rebuild = commands.add_parser("rebuild", help="recompute sessions from the event log")
    rebuild.add_argument("--project", default=DEFAULT_PROJECT, metavar="NAME")
    database_option(rebuild)

    pruning = commands.add_parser(
        "prune",
        help="remove what is older than kept, as a server does every hour",
        description="Remove delivered webhook events and the delivery log older than 30 days "
        "and, with --retention-days, events, sessions and chat older than N days (each room "
        "from its last settled instant before then). Small transactions: safe beside "
        "running servers.",
    )
    pruning.add_argument("--retention-days", type=_days, metavar="N", help="as `serve` takes it")
    pruning.add_argument(
        "--dry-run", action="store_true", help="say what would be removed, and remove nothing"
    )
    database_option(pruning)

    backup = commands.add_parser(
        "backup",
        help="copy a SQLite database while servers run (PostgreSQL: pg_dump)",
        description="Write a consistent copy of the SQLite database to FILE with SQLite's "
        "online backup, while servers keep writing. Restore by stopping the servers and "
        "putting FILE in the database's place. For PostgreSQL use pg_dump "
        "(docs/OPERATIONS.md).",
    )
    backup.add_argument("file", metavar="FILE", help="where to write the copy (must not exist)")
    database_option(backup)

    export = commands.add_parser(
        "export",
        help="write sessions, attendance or people as CSV, as the API's downloads do",
    )
    export.add_argument("what", choices=("sessions", "attendance", "people"))
    export.add_argument("--project", default=DEFAULT_PROJECT, metavar="NAME")
    export.add_argument("--room", metavar="NAME", help="only this room's sessions")
    export.add_argument(
        "--timeframe-start",
        type=instant,
        metavar="TIME",
        help="sessions that started at or after TIME (unix seconds or RFC 3339)",
    )
    export.add_argument(
        "--timeframe-end", type=instant, metavar="TIME", help="sessions that started before TIME"
    )
    export.add_argument(
        "--ongoing", choices=("true", "false"), help="only ongoing, or only ended, sessions"
    )
    export.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    database_option(export)
