"""Object storage through ``obstore`` (Rust ``object_store``): one API for a local directory and S3/MinIO.

* ``local`` (default): files under ``CLARIN_DATA_DIR/media``. Writes are atomic (temp file + rename, done
  by obstore); the media proxy serves files zero-copy from disk by path. Every path is resolved and checked
  to stay inside the media root (defence in depth on top of ``keys.check_key``/``build_key``, and obstore's
  own refusal of ``..``/``.``/empty segments). No presigned uploads (``presign_put`` → None).
* ``s3``: selected when ``MINIO_ENDPOINT`` (or ``S3_ENDPOINT``) is set. Path-style requests to the endpoint;
  the bucket is created (private) at start-up when missing. Presigned PUT URLs are signed directly for the
  browser-facing ``MINIO_PUBLIC_URL`` host (the original rewrote the host of a URL signed for the internal
  endpoint, which breaks the signature unless the server ignores the Host). The original also attached an
  anonymous public-read policy to a bucket it created; we don't (obstore has no bucket-policy API): media
  is read through the proxy, and ``public_url`` only works directly if the operator grants public read.

If the backend cannot be reached at start-up the media routes answer ``503 Storage not configured`` and the
backend is probed again at most every 30 seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterable, AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import obstore
from obstore.store import LocalStore, S3Store

from clarin.config import Settings
from clarin.storage.keys import proxy_url

log = logging.getLogger("clarin.storage")

PROBE_TIMEOUT = 5.0
REPROBE_EVERY = 30.0
STREAM_CHUNK = 256 * 1024

Data = bytes | AsyncIterable[bytes]


class _Counting:
    """Wraps the upload source: counts bytes and remembers an error the source raised (for example the
    413 of a size limit), so it reaches the caller unchanged even after passing through obstore."""

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self._it = source.__aiter__()
        self.size = 0
        self.error: BaseException | None = None

    def __aiter__(self) -> _Counting:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._it.__anext__()
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            self.error = exc
            raise
        self.size += len(chunk)
        return chunk


class MediaStorage:
    backend = "abstract"
    store: Any  # the obstore store (LocalStore / S3Store)

    def __init__(self) -> None:
        self._ready = False
        self._probed_at = 0.0

    async def start(self) -> None:
        await self._probe()

    async def close(self) -> None:
        return None

    async def available(self) -> bool:
        if not self._ready and time.monotonic() - self._probed_at >= REPROBE_EVERY:
            await self._probe()
        return self._ready

    async def _probe(self) -> None:
        self._probed_at = time.monotonic()
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await self._check()
        except Exception as exc:
            log.warning("media storage (%s) unavailable: %s", self.backend, exc)
            self._ready = False
        else:
            self._ready = True

    async def _check(self) -> None:
        raise NotImplementedError

    # -- object operations ---------------------------------------------------------------------
    async def put(self, key: str, data: Data, content_type: str) -> int:
        """Store ``data`` (bytes or an async iterator of chunks) at ``key`` atomically; return its size.
        An exception raised by the source iterator aborts the write and is re-raised as is."""
        if isinstance(data, bytes | bytearray | memoryview):
            await self._put(key, bytes(data), content_type)
            return len(data)
        counting = _Counting(data)
        try:
            await self._put(key, counting, content_type)
        except BaseException as exc:
            if counting.error is not None and counting.error is not exc:
                raise counting.error from None
            raise
        return counting.size

    async def _put(self, key: str, data: bytes | _Counting, content_type: str) -> None:
        raise NotImplementedError

    async def size(self, key: str) -> int | None:
        """Object size in bytes, None when there is no such object."""
        raise NotImplementedError

    def local_path(self, key: str) -> str | None:
        """A file path for zero-copy serving (local backend only)."""
        return None

    async def open_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes ``start``..``end`` (inclusive) as a stream; the read is issued before this returns."""
        result = await obstore.get_async(self.store, key, options={"range": (start, end + 1)})
        return result.stream(min_chunk_size=STREAM_CHUNK).__aiter__()

    async def read(self, key: str) -> bytes | None:
        """The whole object (for sending media on WhatsApp), None when missing."""
        try:
            result = await obstore.get_async(self.store, key)
            return bytes(await result.bytes_async())
        except FileNotFoundError:
            return None

    async def presign_put(self, key: str, ttl: timedelta) -> str | None:
        return None

    async def delete(self, key: str) -> bool:
        try:
            await obstore.delete_async(self.store, key)
        except FileNotFoundError:
            return False
        return True

    async def rename(self, src: str, dst: str) -> None:
        await obstore.rename_async(self.store, src, dst)

    def public_url(self, key: str) -> str:
        return proxy_url(key)


class LocalMediaStorage(MediaStorage):
    backend = "local"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = Path(os.path.abspath(root))
        self._real_root = self.root
        self.store = None  # created by start() (which also creates the directory)

    async def _check(self) -> None:
        if self.store is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._real_root = self.root.resolve()
            self.store = LocalStore(self._real_root)
        if not os.access(self._real_root, os.W_OK):
            raise PermissionError(f"{self._real_root} is not writable")

    def _resolve(self, key: str) -> Path | None:
        path = (self._real_root / key).resolve()
        return path if path.is_relative_to(self._real_root) and path != self._real_root else None

    async def _put(self, key: str, data: bytes | _Counting, content_type: str) -> None:
        if self._resolve(key) is None:
            raise ValueError(f"key escapes the media root: {key!r}")
        await obstore.put_async(self.store, key, data)

    async def size(self, key: str) -> int | None:
        path = self._resolve(key)
        if path is None:
            return None
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st.st_size if path.is_file() else None

    def local_path(self, key: str) -> str | None:
        path = self._resolve(key)
        return str(path) if path is not None and path.is_file() else None

    async def open_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        if self._resolve(key) is None:
            raise FileNotFoundError(key)
        return await super().open_range(key, start, end)

    async def read(self, key: str) -> bytes | None:
        if self._resolve(key) is None:
            return None
        return await super().read(key)

    async def delete(self, key: str) -> bool:
        if self._resolve(key) is None:
            return False
        return await super().delete(key)


class S3MediaStorage(MediaStorage):
    backend = "s3"

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        endpoint = settings.minio_endpoint or ""
        if "://" not in endpoint:
            endpoint = ("https://" if settings.minio_use_ssl else "http://") + endpoint
        self.endpoint = endpoint.rstrip("/")
        self.bucket = settings.minio_bucket
        self.public_base = (settings.minio_public_url or self.endpoint).rstrip("/")
        common = {
            "access_key_id": settings.minio_access_key,
            "secret_access_key": settings.minio_secret_key,
            "region": settings.minio_region,
            "virtual_hosted_style_request": False,
        }
        self.store = S3Store(
            self.bucket, endpoint=self.endpoint, client_options={"allow_http": self.endpoint.startswith("http:")},
            **common,  # type: ignore[arg-type]
        )
        # Signing is local computation: a second store bound to the browser-facing host signs upload URLs.
        self._signer = S3Store(
            self.bucket, endpoint=self.public_base,
            client_options={"allow_http": self.public_base.startswith("http:")}, **common,  # type: ignore[arg-type]
        )

    async def _check(self) -> None:
        try:
            await self._list_one()
        except Exception as exc:
            if "NoSuchBucket" not in str(exc):
                raise
            await self._create_bucket()
            await self._list_one()

    async def _list_one(self) -> None:
        async for _batch in obstore.list(self.store, chunk_size=1, return_arrow=False):
            break

    async def _create_bucket(self) -> None:
        # obstore has no bucket API; a SigV4-presigned PUT on the bucket root is a CreateBucket call.
        url = await obstore.sign_async(self.store, "PUT", "", timedelta(minutes=1))
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
            response = await client.put(url)
        if response.status_code not in (200, 409):
            raise RuntimeError(f"creating bucket {self.bucket!r} failed: HTTP {response.status_code}")
        log.info("created media bucket %s", self.bucket)

    async def _put(self, key: str, data: bytes | _Counting, content_type: str) -> None:
        await obstore.put_async(self.store, key, data, attributes={"Content-Type": content_type})

    async def size(self, key: str) -> int | None:
        try:
            meta = await obstore.head_async(self.store, key)
        except FileNotFoundError:
            return None
        return int(meta["size"])

    async def presign_put(self, key: str, ttl: timedelta) -> str | None:
        return await obstore.sign_async(self._signer, "PUT", key, ttl)

    def public_url(self, key: str) -> str:
        return f"{self.public_base}/{self.bucket}/{quote(key, safe='/')}"


def build_storage(settings: Settings) -> MediaStorage:
    if settings.storage_backend == "s3":
        return S3MediaStorage(settings)
    return LocalMediaStorage(settings.data_dir / "media")
