"""Where webhooks may go. By default anywhere: self-hosted users deliver to their own private
addresses. With `serve --webhook-deny-private` (for deployments whose tenants must not reach
the server's network), loopback, link-local, private, reserved and multicast addresses are
refused, both when a webhook is set up and at every delivery, whatever a name resolves to then
(a name that resolved to a public address when checked cannot be re-pointed inside).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

ENV: Final = "ROOMLOG_WEBHOOK_DENY_PRIVATE"


class PrivateTarget(ValueError):
    """A webhook target on an address the server refuses to deliver to."""


def deny_private() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_url(url: str) -> None:
    """`PrivateTarget` if `url` names a refused address literally (names are checked as they
    resolve, by `PublicResolver`)."""
    if not deny_private():
        return
    host = urlsplit(url).hostname or ""
    try:
        literal = is_private(host)
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            raise PrivateTarget(f"{host} is this machine") from None
        return
    if literal:
        raise PrivateTarget("the address is not a public one")


class PublicResolver(ThreadedResolver):
    """Name resolution that drops every refused address, and fails if none is left."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await super().resolve(host, port, family)
        public = [entry for entry in found if not is_private(entry["host"])]
        if not public:
            raise OSError(f"{host} resolves to no public address")
        return public


def connector(**options: Any) -> aiohttp.TCPConnector:
    """A connector for webhook requests, refusing private addresses if the server does."""
    if deny_private():
        options["resolver"] = PublicResolver()
    return aiohttp.TCPConnector(**options)
