"""Object keys: the one place that builds and validates them.

Layout (spec B.16.2): ``<account_id>/<folder>/<filename>``. Every key this service writes is built by
``build_key``, which refuses anything that could leave the tenant prefix (``..``, ``.``, absolute paths,
backslashes, NUL/control characters, empty segments) instead of normalising it as the original did.
Keys that arrive from outside (the media proxy path) go through ``check_key``: only already-normalised
keys are served.

Unguessable names. The proxy is public (``<img src>`` sends no token), so a key must not be derivable from
what an outsider may know (account id, a contact's phone, a WhatsApp stanza id). Every writer puts 128
random bits in the file name: uploads ``<uuid4>_<name>``, chat media ``<stanza id>-<token>.<ext>``, avatars
``<phone>-<token>.jpg`` (``secret_filename``). Avatars were once stored as ``avatars/<phone>.jpg``; that
legacy form is refused by the proxy (``is_legacy_avatar_key`` → 404, as if absent) and migration 0005 clears
the contacts that pointed at it, so their picture is fetched again under a random name.
"""

from __future__ import annotations

import posixpath
import re
import secrets
import uuid
from urllib.parse import quote, unquote, urlsplit

from clarin.http.errors import HTTPError

PROXY_PREFIX = "/api/media/file/"
INVALID_FOLDER = "Invalid folder"
INVALID_FILENAME = "Invalid filename"
INVALID_PATH = "Invalid path"
MAX_FOLDER_LENGTH = 512
MAX_FILENAME_BYTES = 200  # + "<uuid4>_" stays under the usual 255-byte file name limit
MAX_KEY_LENGTH = 1024

CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".pdf": "application/pdf",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
SECRET_BYTES = 16  # 128 bits: not enumerable through the public proxy
AVATARS_FOLDER = "avatars"
# What the old avatar writer produced: <account>/avatars/<JID user part>.jpg (a phone, LID or group id).
_LEGACY_AVATAR = re.compile(r"[0-9a-f-]{36}/avatars/[0-9]+(?:-[0-9]+)?\.jpg")
# Characters kept literal in proxy URLs; everything else (space, %, ?, #, non-ASCII...) is percent-encoded.
_URL_SAFE = "/@:+!$&'()*,;=~-._"


def _bad_segment(segment: str) -> bool:
    return (
        not segment
        or segment in (".", "..")
        or "\\" in segment
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in segment)
    )


def clean_folder(folder: str) -> str:
    """A relative folder of one or more plain segments (``uploads``, ``chats/<jid>``) or 400."""
    if not folder or len(folder) > MAX_FOLDER_LENGTH or any(_bad_segment(s) for s in folder.split("/")):
        raise HTTPError(400, INVALID_FOLDER)
    return folder


def sanitize_filename(name: str) -> str:
    """The base name of a client-supplied file name (``C:\\x\\a.png`` → ``a.png``), length-capped, or 400."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if _bad_segment(base):
        raise HTTPError(400, INVALID_FILENAME)
    if len(base.encode()) > MAX_FILENAME_BYTES:
        stem, ext = posixpath.splitext(base)
        ext = ext if len(ext.encode()) <= 16 else ""
        budget = MAX_FILENAME_BYTES - len(ext.encode())
        stem = stem.encode()[:budget].decode(errors="ignore")
        base = stem + ext
    return base


def unique_filename(name: str) -> str:
    return f"{uuid.uuid4()}_{sanitize_filename(name)}"


def secret_filename(stem: str, ext: str) -> str:
    """``<stem>-<128-bit hex token><ext>``: a name nobody can derive from the stem."""
    return f"{stem}-{secrets.token_hex(SECRET_BYTES)}{ext}"


def is_legacy_avatar_key(key: str) -> bool:
    """An avatar key of the old, guessable ``<account>/avatars/<phone>.jpg`` form."""
    return _LEGACY_AVATAR.fullmatch(key) is not None


def build_key(account_id: uuid.UUID | str, folder: str, filename: str) -> str:
    """``<account_id>/<folder>/<filename>`` with every part validated (never normalised)."""
    account = str(uuid.UUID(str(account_id)))
    folder = clean_folder(folder)
    if "/" in filename or _bad_segment(filename):
        raise HTTPError(400, INVALID_FILENAME)
    return f"{account}/{folder}/{filename}"


def check_key(key: str) -> str:
    """A key taken from a request path: served only when already normalised, else 400 ``Invalid path``."""
    if not key or len(key) > MAX_KEY_LENGTH or key.startswith("/") or any(_bad_segment(s) for s in key.split("/")):
        raise HTTPError(400, INVALID_PATH)
    return key


def proxy_url(key: str) -> str:
    return PROXY_PREFIX + quote(key, safe=_URL_SAFE)


def key_from_proxy_url(url: str) -> str | None:
    """The object key of a stored ``/api/media/file/<key>`` URL (absolute URLs to this API accepted);
    None when it is not a proxy URL or its key is not normalised."""
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    if not path.startswith(PROXY_PREFIX):
        return None
    try:
        return check_key(unquote(path[len(PROXY_PREFIX):]))
    except HTTPError:
        return None


def content_type_for(key: str) -> str:
    return CONTENT_TYPES.get(posixpath.splitext(key)[1].lower(), DEFAULT_CONTENT_TYPE)
