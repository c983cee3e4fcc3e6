"""The service commands' arguments. Only the standard library here: `roomlog sessionize`
must not pay for importing the service."""

from __future__ import annotations

import argparse
from typing import Final

ENV_URL: Final = "ROOMLOG_DATABASE_URL"
DEFAULT_PROJECT: Final = "default"
SERVICE_COMMANDS: Final = ("serve", "keys", "projects", "import", "rebuild")


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

    projects = commands.add_parser("projects", help="show a project's VideoSDK credentials")
    project_commands = projects.add_subparsers(
        dest="projects_command", required=True, metavar="ACTION"
    )
    show = project_commands.add_parser("show", help="public id (JWT `apikey`) and secret")
    show.add_argument("--project", default=DEFAULT_PROJECT, metavar="NAME")
    database_option(show)

    load = commands.add_parser("import", help="store NDJSON events as the API would")
    load.add_argument("file", metavar="FILE", help="NDJSON file, or - for stdin")
    load.add_argument("--project", default=DEFAULT_PROJECT, metavar="NAME")
    database_option(load)

    rebuild = commands.add_parser("rebuild", help="recompute sessions from the event log")
    rebuild.add_argument("--project", default=DEFAULT_PROJECT, metavar="NAME")
    database_option(rebuild)
