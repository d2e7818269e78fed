"""Media routes: the proxy R2, direct upload R36 and presigned upload URL R35 (spec §4.6, B.16).

Decisions
---------
* **The proxy stays public** (``GET /api/media/file/<key>``, no auth, not rate limited, as the spec): the
  dashboard renders media with plain ``<img>``/``<video>``/``<audio src>`` tags, which cannot send a bearer
  token, and stored ``media_url`` values are bare proxy paths. What protects a tenant's media is that keys
  are unguessable (every writer puts 128 random bits in the file name, see ``keys``; the legacy guessable
  avatar form ``<account>/avatars/<phone>.jpg`` answers 404 whether or not the object exists) and that the
  proxy serves only normalised keys: any key with ``..``/``.`` segments, a leading ``/``, ``//``, a
  backslash or NUL/control characters is refused with ``400 Invalid path`` before storage is touched, and
  the local backend additionally resolves the path and checks it stays under the media root.
* **Keys are built, never normalised.** ``folder``/file names with ``..``, absolute paths, backslashes,
  NUL or empty segments are rejected (400 ``Invalid folder`` / ``Invalid filename``) instead of being
  path-joined as in the original (whose ``folder=../<other account>`` escaped the tenant prefix). File
  names keep only their base name (``C:\\x\\a.png`` → ``a.png``). Every key starts with ``<account_id>/``.
* **Uploads stream.** The multipart body is parsed while it arrives and the file part is piped into storage;
  the limit (50 MiB per file, and ``BODY_LIMIT`` for the whole body, whichever is hit first) is enforced while
  streaming → ``413``; nothing partial is left behind (obstore writes atomically). If the ``folder`` field
  comes after the file part, the file is written under ``<account>/.incoming/`` and renamed once the
  folder is known.
* **Presigned uploads (R35) need S3/MinIO.** With the local backend R35 answers ``501`` and clients use
  R36. With S3 the URL is signed for the ``MINIO_PUBLIC_URL`` host directly (valid 15 minutes).
* ``public_url``: ``<MINIO_PUBLIC_URL>/<bucket>/<key>`` with S3; with local storage it is the proxy URL.
  Proxy URLs percent-encode characters that are not URL-safe (space, ``%``, ``?``, ``#``, non-ASCII).
* Ranges: one ``bytes=S-E`` range (the first if several) → 206; ``bytes=S-`` serves at most 1 MiB from S;
  ``bytes=-N`` is the last N bytes (the original mis-read it as ``0-N``); ``S >= size`` → ``416`` with
  ``Content-Range: bytes */<size>``; a syntactically invalid Range header is ignored (200, RFC 9110).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta

from clarin.http.errors import HTTPError
from clarin.http.multipart import MultipartStream, boundary_of
from clarin.http.request import TOO_LARGE, Request
from clarin.http.response import FileResponse, Response, StreamResponse
from clarin.http.router import Auth
from clarin.http.routes import RouteGroup
from clarin.storage.backend import MediaStorage
from clarin.storage.keys import (
    INVALID_FOLDER,
    MAX_FOLDER_LENGTH,
    PROXY_PREFIX,
    build_key,
    check_key,
    clean_folder,
    content_type_for,
    is_legacy_avatar_key,
    proxy_url,
    unique_filename,
)
from clarin.wire.media import UploadResponse, UploadURLResponse
from clarin.wire.queries import UploadURLQuery

log = logging.getLogger("clarin.storage")

routes = RouteGroup(tags=("media",))

MiB = 1024 * 1024
MAX_UPLOAD = 50 * MiB
OPEN_RANGE_SPAN = 1 * MiB
PRESIGN_TTL = timedelta(minutes=15)
DEFAULT_FOLDER = "uploads"
INCOMING_FOLDER = ".incoming"
STORAGE_UNAVAILABLE = "Storage not configured"
FILE_NOT_FOUND = "File not found"
NO_FILE = "No file provided"
FILE_TOO_LARGE = "File too large (max 50MB)"
FILENAME_REQUIRED = "Filename is required"
PRESIGN_UNSUPPORTED = (
    "Presigned uploads are not supported by the local storage backend; use POST /api/media/upload"
)
CACHE_CONTROL = ("cache-control", "public, max-age=31536000")
ACCEPT_RANGES = ("accept-ranges", "bytes")
_DIGITS = re.compile(r"[0-9]+")


async def _storage(req: Request) -> MediaStorage:
    storage: MediaStorage = req.app.storage
    if not await storage.available():
        raise HTTPError(503, STORAGE_UNAVAILABLE)
    return storage


# -- R2: the media proxy -------------------------------------------------------------------------
class Unsatisfiable(Exception):
    pass


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte range asked for by a ``Range`` header, None to serve the whole object.
    Raises ``Unsatisfiable`` for a well-formed range outside the object."""
    unit, eq, spec = header.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return None
    first, dash, last = spec.split(",", 1)[0].strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash:
        return None
    if not first:  # suffix range: the last N bytes
        if not _DIGITS.fullmatch(last):
            return None
        length = int(last)
        if length == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - length), size - 1
    if not _DIGITS.fullmatch(first) or (last and not _DIGITS.fullmatch(last)):
        return None
    start = int(first)
    end = int(last) if last else start + OPEN_RANGE_SPAN - 1
    if end < start:
        return None
    if start >= size:
        raise Unsatisfiable
    return start, min(end, size - 1)


def _key_from_path(path: str) -> str:
    # granian hands us the path already percent-decoded once; the router's wildcard parameter would
    # decode it a second time (and collapse "//"), so the key is taken from the path itself.
    return path[len(PROXY_PREFIX):] if path.lower().startswith(PROXY_PREFIX) else ""


@routes.get("/api/media/file/*key", auth=Auth.PUBLIC)
async def media_file(req: Request) -> Response:
    key = check_key(_key_from_path(req.path))
    if is_legacy_avatar_key(key):
        raise HTTPError(404, FILE_NOT_FOUND)
    storage = await _storage(req)
    size = await storage.size(key)
    if size is None:
        raise HTTPError(404, FILE_NOT_FOUND)
    headers = [("content-type", content_type_for(key)), ACCEPT_RANGES, CACHE_CONTROL]
    range_header = req.header("range")
    try:
        byte_range = parse_range(range_header, size) if range_header else None
    except Unsatisfiable:
        raise HTTPError(416, "Range Not Satisfiable", headers=[("content-range", f"bytes */{size}"), ACCEPT_RANGES]) from None
    if byte_range is None:
        headers.append(("content-length", str(size)))
        if size == 0:
            return Response(b"", 200, headers)
        start, end, status = 0, size - 1, 200
    else:
        start, end = byte_range
        status = 206
        headers += [("content-range", f"bytes {start}-{end}/{size}"), ("content-length", str(end - start + 1))]
    local = storage.local_path(key)
    if local is not None:
        return FileResponse(local, status, headers, byte_range)
    try:
        chunks = await storage.open_range(key, start, end)
    except FileNotFoundError:
        raise HTTPError(404, FILE_NOT_FOUND) from None
    except Exception:
        log.exception("media read failed for %s", key)
        raise HTTPError(500, "Failed to read file") from None
    return StreamResponse(chunks, status, headers)


media_file.content_type = "*/*"  # type: ignore[attr-defined]  # for the OpenAPI document: the file's own type


# -- R36: multipart upload -----------------------------------------------------------------------
async def _capped(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise HTTPError(413, FILE_TOO_LARGE)
        yield chunk


def _decode_folder(raw: bytes) -> str:
    try:
        folder = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, INVALID_FOLDER) from None
    return clean_folder(folder) if folder else DEFAULT_FOLDER


@routes.post("/api/media/upload", response=UploadResponse)
async def upload(req: Request) -> UploadResponse:
    storage = await _storage(req)
    body_limit = req.app.settings.body_limit
    declared = req.header("content-length")
    if declared.isdigit() and int(declared) > body_limit:
        raise HTTPError(413, TOO_LARGE)
    boundary = boundary_of(req.header("content-type"))
    if boundary is None:
        raise HTTPError(400, NO_FILE)
    form = MultipartStream(boundary, req.stream(), body_limit, HTTPError(413, TOO_LARGE))
    account_id = req.account_id
    folder: str | None = None
    stored_key: str | None = None
    filename = ""
    try:
        while (part := await form.next_part()) is not None:
            if part.name == "folder" and folder is None:
                folder = _decode_folder(await form.read_part(MAX_FOLDER_LENGTH * 4, HTTPError(400, INVALID_FOLDER)))
            elif part.name == "file" and part.filename and stored_key is None:
                filename = unique_filename(part.filename)
                key = build_key(account_id, folder or INCOMING_FOLDER, filename)
                content_type = part.content_type or "application/octet-stream"
                try:
                    await storage.put(key, _capped(form.part_data(), MAX_UPLOAD), content_type)
                except HTTPError:
                    raise
                except Exception:
                    log.exception("media upload failed for %s", key)
                    raise HTTPError(500, "Failed to upload") from None
                stored_key = key
            else:
                await form.skip_part()
        if stored_key is None:
            raise HTTPError(400, NO_FILE)
        final_key = build_key(account_id, folder or DEFAULT_FOLDER, filename)
        if final_key != stored_key:
            await storage.rename(stored_key, final_key)
            stored_key = final_key
    except BaseException:
        if stored_key is not None:
            await _discard(storage, stored_key)
        raise
    return UploadResponse(public_url=storage.public_url(final_key), proxy_url=proxy_url(final_key), filename=filename)


async def _discard(storage: MediaStorage, key: str) -> None:
    try:
        await storage.delete(key)
    except Exception:
        log.warning("could not remove abandoned upload %s", key, exc_info=True)


# -- R35: presigned upload URL -------------------------------------------------------------------
@routes.get("/api/media/upload-url", query=UploadURLQuery, response=UploadURLResponse,
             responses={501: "Presigned uploads are not supported by the local storage backend"})
async def upload_url(req: Request) -> UploadURLResponse:
    raw_name = req.query_str("filename")
    if not raw_name:
        raise HTTPError(400, FILENAME_REQUIRED)
    storage = await _storage(req)
    filename = unique_filename(raw_name)
    key = build_key(req.account_id, req.query_str("folder") or DEFAULT_FOLDER, filename)
    url = await storage.presign_put(key, PRESIGN_TTL)
    if url is None:
        raise HTTPError(501, PRESIGN_UNSUPPORTED)
    return UploadURLResponse(upload_url=url, public_url=storage.public_url(key), filename=filename)
