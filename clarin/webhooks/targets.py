"""Where a webhook may point: the media fetcher's public-address rule (clarin.messaging.media_source).

A target URL must be ``https`` (``http`` too outside production), carry no credentials, and its host must
resolve to globally routable addresses only. Checked when a subscription is created or its URL changed, again
before every connection, and once more on the connected socket's peer address (DNS rebinding between the check
and the connect does not help). ``WEBHOOK_ALLOW_PRIVATE=true`` (development and tests; refused with
``ENV=production``) lifts the address rule so loopback receivers work.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx

from clarin.messaging.media_source import address_allowed

RESOLVE_TIMEOUT = 3.0
URL_MAX = 2048


class TargetRefused(Exception):
    """The URL may not be used; the text is safe to show."""


def check_url_shape(url: str, *, production: bool) -> str:
    url = url.strip()
    if not url or len(url) > URL_MAX:
        raise TargetRefused("url is required (at most 2048 characters)")
    parts = urlsplit(url)
    allowed = ("https",) if production else ("https", "http")
    if parts.scheme not in allowed:
        raise TargetRefused("url must be https" if production else "url must be http or https")
    if not parts.hostname:
        raise TargetRefused("url has no host")
    if parts.username or parts.password:
        raise TargetRefused("url must not carry credentials")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise TargetRefused("url has an invalid port") from None
    return url


async def check_host(url: str, *, allow_private: bool) -> None:
    """Resolve the URL's host; every address must be public unless ``allow_private``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        raise TargetRefused(f"cannot resolve host {host}") from None
    addresses = {str(info[4][0]) for info in infos}
    if not addresses:
        raise TargetRefused(f"cannot resolve host {host}")
    if not allow_private and not all(address_allowed(a) for a in addresses):
        raise TargetRefused(f"address not allowed: {host} (only public addresses)")


def peer_allowed(response: httpx.Response, allow_private: bool) -> bool:
    """The connected socket's peer address passes the rule (unknown peer: the pre-connect check stands)."""
    if allow_private:
        return True
    stream = response.extensions.get("network_stream")
    if stream is None:
        return True
    try:
        peer: Any = stream.get_extra_info("server_addr")
    except Exception:
        return True
    if isinstance(peer, tuple) and peer:
        return address_allowed(str(peer[0]))
    return True
