"""Where the bytes of an outgoing media message come from (integrations.md B.13 step 1, with its flaws fixed).

``media_url`` forms, in order:

1. **Our own storage, proxy form** — ``/api/media/file/<key>`` (also as an absolute URL whose path is the
   proxy path: the host is ignored, the object is read from storage, never fetched over HTTP).
2. **Our own storage, S3 public form** — ``<MINIO_PUBLIC_URL>/<bucket>/<key>`` with the S3 backend.
   For 1 and 2 the key must start with ``<account_id>/`` (the caller's tenant): a key of another account,
   a malformed key or a missing object is ``404 Media not found``. MIME type from the extension (the proxy's
   table, then Python's ``mimetypes``), else ``application/octet-stream``. Stored ``media_url`` = proxy form.
3. **Any other http(s) URL** — downloaded with a timeout (``DOWNLOAD_TIMEOUT``), a size cap
   (``MAX_MEDIA_BYTES``, checked on Content-Length and while streaming), at most ``MAX_REDIRECTS``
   redirects (each hop re-checked) and a 2xx status check. MIME type from the response's Content-Type.
   Stored ``media_url`` = the URL as given.

SSRF protection (3): the host must resolve to public (globally routable) addresses only — loopback,
private (RFC 1918 / ULA), link-local (incl. cloud metadata 169.254.169.254), CGNAT, multicast, reserved and
unspecified addresses are refused, before connecting and again on the connected socket's peer address (so
DNS rebinding between the check and the connect does not help). The single exception is the host of
``MINIO_PUBLIC_URL`` (the operator's own object store, typically on a private network): URLs on that exact
host are fetched without the address check. Environment proxies are not used (``trust_env=False``), so the
peer check sees the real destination. Refused, unreachable or failing URLs are ``400 failed to download
media: <reason>``.

Document file names are the URL's last path segment without the ``<uuid4>_`` prefix uploads carry.
"""

from __future__ import annotations

import asyncio
import ipaddress
import mimetypes
import posixpath
import re
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from clarin.http.errors import HTTPError
from clarin.storage.keys import (
    DEFAULT_CONTENT_TYPE,
    PROXY_PREFIX,
    check_key,
    content_type_for,
    key_from_proxy_url,
    proxy_url,
)

if TYPE_CHECKING:
    from clarin.state import AppState

MAX_MEDIA_BYTES = 64 * 1024 * 1024
DOWNLOAD_TIMEOUT = 30.0
MAX_REDIRECTS = 3
MEDIA_NOT_FOUND = "Media not found"
STORAGE_UNAVAILABLE = "Storage not configured"
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}_", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class MediaBlob:
    data: bytes
    mimetype: str
    file_name: str  # last path segment, upload prefix removed ("" when none)
    stored_url: str  # what messages.media_url keeps


class DownloadError(Exception):
    """A remote media URL could not be used; the text is safe to show."""


def _fail(reason: str) -> HTTPError:
    return HTTPError(400, f"failed to download media: {reason}")


def too_large(limit: int) -> str:
    mib = 1024 * 1024
    return f"larger than {limit // mib} MiB" if limit % mib == 0 else f"larger than {limit} bytes"


def file_name_of(url: str) -> str:
    """``/api/media/file/<acct>/uploads/<uuid>_report.pdf`` → ``report.pdf``."""
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    name = unquote(posixpath.basename(path.rstrip("/")))
    return _UPLOAD_PREFIX.sub("", name)


def mimetype_of_key(key: str) -> str:
    mimetype = content_type_for(key)
    if mimetype == DEFAULT_CONTENT_TYPE:
        mimetype = mimetypes.guess_type(key)[0] or DEFAULT_CONTENT_TYPE
    return mimetype


def _s3_key(state: AppState, url: str) -> str | None:
    """The key of a ``<MINIO_PUBLIC_URL>/<bucket>/<key>`` URL with the S3 backend, else None."""
    base = getattr(state.storage, "public_base", None)
    bucket = getattr(state.storage, "bucket", None)
    if not base or not bucket:
        return None
    prefix = f"{base}/{bucket}/"
    if not url.startswith(prefix):
        return None
    try:
        return check_key(unquote(url[len(prefix):].split("?", 1)[0]))
    except HTTPError:
        return ""


def storage_key(state: AppState, url: str) -> str | None:
    """The object key when ``url`` points at our own storage ("" = ours but malformed), else None."""
    if url.startswith(PROXY_PREFIX) or (
        "://" in url and urlsplit(url).path.startswith(PROXY_PREFIX)
    ):
        return key_from_proxy_url(url) or ""
    return _s3_key(state, url)


async def load_media(state: AppState, account_id: uuid.UUID, url: str) -> MediaBlob:
    url = url.strip()
    key = storage_key(state, url)
    if key is not None:
        return await _from_storage(state, account_id, key, url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HTTPError(400, "invalid media URL")
    exempt = _exempt_host(state)
    try:
        data, mimetype = await download(url, exempt_host=exempt)
    except DownloadError as exc:
        raise _fail(str(exc)) from None
    return MediaBlob(data, mimetype, file_name_of(url), url)


def refuse_foreign_media(state: AppState, account_id: uuid.UUID, url: str | None) -> None:
    """404 ``Media not found`` for a URL into our own storage under ANOTHER account's key (keys start with
    ``<account_id>/``), so a tenant never stores a reference to another tenant's media (campaigns, saved
    stickers). Anything else is checked when it is sent (:func:`load_media`)."""
    key = storage_key(state, (url or "").strip())
    if not key:
        return
    try:
        owner = uuid.UUID(key.split("/", 1)[0])
    except ValueError:
        return
    if owner != account_id:
        raise HTTPError(404, MEDIA_NOT_FOUND)


async def _from_storage(state: AppState, account_id: uuid.UUID, key: str, url: str) -> MediaBlob:
    if not key or not key.startswith(f"{account_id}/"):
        raise HTTPError(404, MEDIA_NOT_FOUND)
    if not await state.storage.available():
        raise HTTPError(503, STORAGE_UNAVAILABLE)
    data = await state.storage.read(key)
    if data is None:
        raise HTTPError(404, MEDIA_NOT_FOUND)
    if len(data) > MAX_MEDIA_BYTES:
        raise _fail(too_large(MAX_MEDIA_BYTES))
    return MediaBlob(data, mimetype_of_key(key), file_name_of(key), proxy_url(key))


def _exempt_host(state: AppState) -> str | None:
    public = state.settings.minio_public_url
    if not public:
        return None
    host = urlsplit(public if "://" in public else f"http://{public}").hostname
    return host.lower() if host else None


# -- remote download -----------------------------------------------------------------------------------
def address_allowed(address: str) -> bool:
    """Only globally routable unicast addresses (IPv4-mapped IPv6 judged as its IPv4 address)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def _check_host(host: str, port: int) -> None:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise DownloadError(f"cannot resolve host {host}") from None
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(address_allowed(str(a)) for a in addresses):
        raise DownloadError(f"address not allowed: {host}")


def _peer_address(response: httpx.Response) -> str | None:
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    try:
        peer: Any = stream.get_extra_info("server_addr")
    except Exception:
        return None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None


async def download(
    url: str, *, exempt_host: str | None = None, max_bytes: int = MAX_MEDIA_BYTES,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> tuple[bytes, str]:
    """GET ``url`` under the rules of the module docstring; returns (bytes, mimetype).
    Raises :class:`DownloadError` with a short, user-safe reason."""
    current = url
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            parts = urlsplit(current)
            host = (parts.hostname or "").lower()
            if parts.scheme not in ("http", "https") or not host:
                raise DownloadError("invalid URL")
            exempt = exempt_host is not None and host == exempt_host
            if not exempt:
                await _check_host(host, parts.port or (443 if parts.scheme == "https" else 80))
            try:
                async with client.stream("GET", current) as response:
                    if not exempt:
                        peer = _peer_address(response)
                        if peer is not None and not address_allowed(peer):
                            raise DownloadError(f"address not allowed: {host}")
                    if response.is_redirect:
                        location = response.headers.get("location", "")
                        if not location:
                            raise DownloadError(f"HTTP {response.status_code} without Location")
                        current = urljoin(current, location)
                        continue
                    if not 200 <= response.status_code < 300:
                        raise DownloadError(f"HTTP {response.status_code}")
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise DownloadError(too_large(max_bytes))
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise DownloadError(too_large(max_bytes))
                        chunks.append(chunk)
                    mimetype = response.headers.get("content-type", "").strip() or DEFAULT_CONTENT_TYPE
                    return b"".join(chunks), mimetype[:100]
            except httpx.TimeoutException:
                raise DownloadError("timed out") from None
            except httpx.HTTPError as exc:
                raise DownloadError(type(exc).__name__) from None
    raise DownloadError("too many redirects")
