"""`python -m roomlog`: the same as the `roomlog` command."""

from roomlog.cli import command

command()
