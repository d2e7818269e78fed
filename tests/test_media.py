"""Media storage, upload and proxy (R2, R35, R36) against real servers with local storage (and S3 via moto)."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest

from clarin.storage.keys import (
    INVALID_FILENAME,
    INVALID_FOLDER,
    build_key,
    check_key,
    key_from_proxy_url,
    proxy_url,
    sanitize_filename,
)
from clarin.storage.routes import PRESIGN_UNSUPPORTED, Unsatisfiable, parse_range
from tests import support

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media-data")


@pytest.fixture(scope="module")
def media_server(database: str, log_dir: Path, data_dir: Path) -> Iterator[support.ServerProcess]:
    env = support.base_env(database, CLARIN_DATA_DIR=str(data_dir))
    with support.running_server(env, log_dir, "media") as srv:
        yield srv


@pytest.fixture
def mc(media_server: support.ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=media_server.url, timeout=30) as c:
        yield c


def _upload(client: httpx.Client, tenant, name: str, data: bytes, folder: str | None = None,  # type: ignore[no-untyped-def]
            content_type: str = "application/octet-stream") -> httpx.Response:
    form = {"folder": folder} if folder is not None else None
    return client.post("/api/media/upload", headers=tenant.headers, data=form,
                       files={"file": (name, data, content_type)})


def _raw_get(url: str, raw_path: str) -> tuple[int, bytes]:
    """A GET whose path goes on the wire exactly as given (no client-side normalisation)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest("GET", raw_path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _files_under(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, files in os.walk(root) for f in files]


# -- pure helpers --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-99", 1000, (0, 99)),
        ("bytes=10-10", 1000, (10, 10)),
        ("bytes=900-5000", 1000, (900, 999)),
        ("bytes=-100", 1000, (900, 999)),
        ("bytes=-5000", 1000, (0, 999)),
        ("bytes=100-", 10 * MiB, (100, 100 + MiB - 1)),
        ("bytes=990-", 1000, (990, 999)),
        ("bytes=0-9, 20-29", 1000, (0, 9)),
        ("BYTES=1-2", 1000, (1, 2)),
        ("bytes=5-2", 1000, None),
        ("items=0-5", 1000, None),
        ("bytes=abc", 1000, None),
        ("bytes=-", 1000, None),
        ("bytes=²-3", 1000, None),
    ],
)
def test_parse_range(header: str, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=1000-", 1000), ("bytes=1000-2000", 1000), ("bytes=-0", 1000),
                                              ("bytes=0-0", 0), ("bytes=-5", 0)])
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


def test_key_helpers() -> None:
    account = uuid.uuid4()
    assert build_key(account, "chats/51999@s.whatsapp.net", "x.jpg") == f"{account}/chats/51999@s.whatsapp.net/x.jpg"
    for folder in ("../x", "a/../b", "/abs", "a//b", "a/", ".", "a\\b", "a\x00b", ""):
        with pytest.raises(Exception, match=INVALID_FOLDER):
            build_key(account, folder, "x.jpg")
    for name in ("..", ".", "", "a/b", "a\\b", "a\x00b"):
        with pytest.raises(Exception, match=INVALID_FILENAME):
            build_key(account, "uploads", name)
    assert sanitize_filename("C:\\Users\\me\\pic.png") == "pic.png"
    assert sanitize_filename("../../etc/passwd") == "passwd"
    long = sanitize_filename("a" * 500 + ".webp")
    assert long.endswith(".webp") and len(long.encode()) <= 200
    key = f"{account}/uploads/x y%.png"
    assert key_from_proxy_url(proxy_url(key)) == key
    assert key_from_proxy_url("http://api.example" + proxy_url(key) + "?v=1") == key
    assert key_from_proxy_url("/api/media/file/a/%2e%2e/b") is None
    assert key_from_proxy_url("https://cdn.example/x.png") is None
    for key in ("../x", "a/../b", "/a", "a//b", "a/", "a\x00b", "a\\b", ""):
        with pytest.raises(Exception, match="Invalid path"):
            check_key(key)


# -- upload → proxy ------------------------------------------------------------------------------
def test_upload_and_download_byte_identical(mc: httpx.Client, tenant, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(3 * MiB + 12345)
    response = _upload(mc, tenant, "holiday photo.png", payload, content_type="image/png")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    filename = body["filename"]
    assert filename.endswith("_holiday photo.png")
    uuid.UUID(filename.split("_", 1)[0])
    key = f"{tenant.account_id}/uploads/{filename}"
    assert body["proxy_url"] == "/api/media/file/" + quote(key)
    assert body["public_url"] == body["proxy_url"]  # local storage: the proxy is the public URL
    assert (data_dir / "media" / key).read_bytes() == payload

    full = mc.get(body["proxy_url"])
    assert full.status_code == 200
    assert full.content == payload
    assert full.headers["content-type"] == "image/png"
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["cache-control"] == "public, max-age=31536000"
    assert full.headers["content-length"] == str(len(payload))
    assert "content-range" not in full.headers

    size = len(payload)
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=1048576-2097151": (MiB, 2 * MiB - 1),
        "bytes=-1000": (size - 1000, size - 1),
        "bytes=5-": (5, 5 + MiB - 1),
        f"bytes={size - 10}-": (size - 10, size - 1),
        f"bytes=100-{size + 5000}": (100, size - 1),
        "bytes=7-7": (7, 7),
    }
    for header, (start, end) in cases.items():
        part = mc.get(body["proxy_url"], headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == payload[start : end + 1], header
        assert part.headers["content-range"] == f"bytes {start}-{end}/{size}", header
        assert part.headers["content-length"] == str(end - start + 1), header
        assert part.headers["content-type"] == "image/png"
        assert part.headers["accept-ranges"] == "bytes"

    unsatisfiable = mc.get(body["proxy_url"], headers={"Range": f"bytes={size}-"})
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == f"bytes */{size}"
    invalid = mc.get(body["proxy_url"], headers={"Range": "bytes=9-3"})
    assert invalid.status_code == 200 and invalid.content == payload

    # the proxy is public (img tags cannot send a token) and works with any path casing of the prefix
    assert httpx.get(mc.base_url.join(body["proxy_url"].replace("/api/media/file/", "/API/Media/File/"))).content == payload


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("a.jpg", "image/jpeg"), ("a.JPEG", "image/jpeg"), ("a.png", "image/png"), ("a.gif", "image/gif"),
     ("a.webp", "image/webp"), ("a.mp4", "video/mp4"), ("a.webm", "video/webm"), ("a.mp3", "audio/mpeg"),
     ("a.ogg", "audio/ogg"), ("a.pdf", "application/pdf"), ("a.txt", "application/octet-stream"),
     ("noext", "application/octet-stream"), ("a.html", "application/octet-stream")],
)
def test_proxy_content_type_by_extension(mc: httpx.Client, tenant, name: str, content_type: str) -> None:  # type: ignore[no-untyped-def]
    # the part's declared type is stored but the proxy answers by extension (spec table)
    response = _upload(mc, tenant, name, b"data-" + name.encode(), content_type="text/html")
    assert response.status_code == 200, response.text
    got = mc.get(response.json()["proxy_url"])
    assert got.status_code == 200
    assert got.headers["content-type"] == content_type
    assert got.content == b"data-" + name.encode()


def test_empty_file_and_missing_file(mc: httpx.Client, tenant) -> None:  # type: ignore[no-untyped-def]
    empty = _upload(mc, tenant, "empty.bin", b"")
    assert empty.status_code == 200, empty.text
    got = mc.get(empty.json()["proxy_url"])
    assert got.status_code == 200 and got.content == b""
    assert mc.get(empty.json()["proxy_url"], headers={"Range": "bytes=0-10"}).status_code == 416

    missing = mc.get(f"/api/media/file/{tenant.account_id}/uploads/{uuid.uuid4()}_nope.png")
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "error": "File not found"}
    assert mc.get(f"/api/media/file/{tenant.account_id}/uploads").status_code == 404  # a directory is no file


def test_folder_field_and_order(mc: httpx.Client, tenant, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    nested = _upload(mc, tenant, "s.webp", b"sticker", folder="chats/51999888777@s.whatsapp.net")
    assert nested.status_code == 200, nested.text
    assert nested.json()["proxy_url"].startswith(f"/api/media/file/{tenant.account_id}/chats/51999888777@s.whatsapp.net/")

    # the folder field AFTER the file part: written to a staging key, then moved
    boundary = "clarinboundary42"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"late.pdf\"\r\n"
        f"Content-Type: application/pdf\r\n\r\n%PDF-late\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"folder\"\r\n\r\ndocs/2026\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    late = mc.post("/api/media/upload", content=body,
                   headers={**tenant.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert late.status_code == 200, late.text
    key = f"{tenant.account_id}/docs/2026/{late.json()['filename']}"
    assert late.json()["proxy_url"] == "/api/media/file/" + quote(key)
    assert (data_dir / "media" / key).read_bytes() == b"%PDF-late"
    assert mc.get(late.json()["proxy_url"]).headers["content-type"] == "application/pdf"
    staging = data_dir / "media" / tenant.account_id / ".incoming"
    assert not staging.exists() or not any(staging.iterdir())

    # an invalid folder after the file: 400 and the staged file is removed
    bad = body.replace(b"docs/2026", b"../escape")
    rejected = mc.post("/api/media/upload", content=bad,
                       headers={**tenant.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert rejected.status_code == 400
    assert rejected.json()["error"] == INVALID_FOLDER
    assert not staging.exists() or not any(staging.iterdir())


def test_upload_bad_requests(mc: httpx.Client, tenant, media_server) -> None:  # type: ignore[no-untyped-def]
    no_file = mc.post("/api/media/upload", headers=tenant.headers, data={"folder": "uploads"},
                      files={"other": ("x.png", b"1", "image/png")})
    assert no_file.status_code == 400 and no_file.json()["error"] == "No file provided"
    not_multipart = mc.post("/api/media/upload", headers=tenant.headers, json={"file": "x"})
    assert not_multipart.status_code == 400 and not_multipart.json()["error"] == "No file provided"
    truncated = mc.post(
        "/api/media/upload", content=b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\nabc",
        headers={**tenant.headers, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert truncated.status_code == 400 and truncated.json()["error"] == "Invalid multipart body"
    assert httpx.post(media_server.url + "/api/media/upload", files={"file": ("a.png", b"1")}).status_code == 401
    assert httpx.get(media_server.url + "/api/media/upload-url?filename=a.png").status_code == 401


# -- traversal -----------------------------------------------------------------------------------
def test_upload_traversal_rejected(mc: httpx.Client, tenant, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    before = set(_files_under(data_dir))
    for folder in ("../x", "../../etc", "uploads/../../x", "/etc", "/", "a//b", "a\\..\\b", "uploads\x00x", ".", "a/./b"):
        response = _upload(mc, tenant, "evil.png", b"evil", folder=folder)
        assert response.status_code == 400, (folder, response.text)
        assert response.json()["error"] == INVALID_FOLDER, folder
    for name in ("..", ".", "../"):
        response = _upload(mc, tenant, name, b"evil")
        assert response.status_code == 400, (name, response.text)
        assert response.json()["error"] == INVALID_FILENAME, name
    # raw NUL / control bytes in the part's file name (httpx would percent-encode them)
    for raw_name in (b"a\x00b.png", b"a\x01b.png"):
        body = (b'--nb\r\nContent-Disposition: form-data; name="file"; filename="' + raw_name
                + b'"\r\n\r\nevil\r\n--nb--\r\n')
        response = mc.post("/api/media/upload", content=body,
                           headers={**tenant.headers, "Content-Type": "multipart/form-data; boundary=nb"})
        assert response.status_code == 400, (raw_name, response.text)
    # a path in the file name is reduced to its base name, inside the tenant's folder
    stripped = _upload(mc, tenant, "../../../etc/evil.png", b"evil")
    assert stripped.status_code == 200
    assert stripped.json()["filename"].endswith("_evil.png")
    # a percent-encoded folder is a literal name (never decoded into "..") and stays downloadable
    literal = _upload(mc, tenant, "lit.png", b"literal", folder="%2e%2e")
    assert literal.status_code == 200, literal.text
    assert literal.json()["proxy_url"].startswith(f"/api/media/file/{tenant.account_id}/%252e%252e/")
    assert mc.get(literal.json()["proxy_url"]).content == b"literal"

    media_root = (data_dir / "media").resolve()
    for path in set(_files_under(data_dir)) - before:
        assert path.resolve().is_relative_to(media_root / tenant.account_id), path


def test_proxy_traversal_rejected(mc: httpx.Client, tenant, media_server, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    secret = data_dir / "secret.txt"
    secret.write_text("top secret")
    uploaded = _upload(mc, tenant, "ok.png", b"fine").json()
    base = f"/api/media/file/{tenant.account_id}/uploads"
    raw_paths = [
        "/api/media/file/../secret.txt",
        "/api/media/file/%2e%2e/secret.txt",
        "/api/media/file/%2E%2E%2Fsecret.txt",
        f"{base}/../../../secret.txt",
        f"{base}/..%2F..%2F..%2Fsecret.txt",
        f"{base}/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        f"/api/media/file/{secret}",  # absolute: /api/media/file//tmp/...
        "/api/media/file/%2Fetc%2Fpasswd",
        f"{base}//{uploaded['filename']}",
        f"{base}%2F%2F{uploaded['filename']}",
        f"{base}/./{uploaded['filename']}",
        f"{base}/%00{uploaded['filename']}",
        f"{base}/a%5C..%5C..%5Csecret.txt",
        "/api/media/file/",
        "/api/media/file",
    ]
    for raw in raw_paths:
        status, body = _raw_get(media_server.url, raw)
        assert status == 400, (raw, status, body)
        assert b"Invalid path" in body, raw
        assert b"top secret" not in body
    # an encoded slash inside a normalised key is just a separator
    status, body = _raw_get(media_server.url, uploaded["proxy_url"].replace("/uploads/", "%2Fuploads%2F"))
    assert (status, body) == (200, b"fine")

    # defence in depth: a symlink inside the media root that points outside it is not followed
    link = data_dir / "media" / tenant.account_id / "uploads" / "link.txt"
    link.symlink_to(secret)
    status, body = _raw_get(media_server.url, f"{base}/link.txt")
    assert status == 404 and b"top secret" not in body


# -- presigned URL (local backend) ------------------------------------------------------------------
def test_upload_url_local_backend(mc: httpx.Client, tenant) -> None:  # type: ignore[no-untyped-def]
    missing = mc.get("/api/media/upload-url", headers=tenant.headers)
    assert missing.status_code == 400 and missing.json()["error"] == "Filename is required"
    bad_folder = mc.get("/api/media/upload-url", params={"filename": "a.png", "folder": "../x"}, headers=tenant.headers)
    assert bad_folder.status_code == 400 and bad_folder.json()["error"] == INVALID_FOLDER
    local = mc.get("/api/media/upload-url", params={"filename": "a.png"}, headers=tenant.headers)
    assert local.status_code == 501
    assert local.json() == {"success": False, "error": PRESIGN_UNSUPPORTED}


# -- size limits -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_server(database: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[support.ServerProcess, Path]]:
    data = tmp_path_factory.mktemp("media-small")
    env = support.base_env(database, CLARIN_DATA_DIR=str(data), BODY_LIMIT=str(64 * 1024))
    with support.running_server(env, log_dir, "media-small") as srv:
        yield srv, data


def test_oversized_upload_rejected_while_streaming(small_server, tenant) -> None:  # type: ignore[no-untyped-def]
    srv, data = small_server
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        ok = _upload(c, tenant, "small.png", b"s" * 1000)
        assert ok.status_code == 200, ok.text
        files_before = set(_files_under(data))

        declared = _upload(c, tenant, "big.png", os.urandom(200 * 1024))
        assert declared.status_code == 413
        assert declared.json() == {"success": False, "error": "Request Entity Too Large"}

        # no Content-Length (chunked): the limit trips while the body streams into storage
        boundary = "bigboundary"

        def chunks() -> Iterator[bytes]:
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
                   "Content-Type: application/octet-stream\r\n\r\n").encode()
            for _ in range(40):
                yield os.urandom(8 * 1024)
            yield f"\r\n--{boundary}--\r\n".encode()

        try:
            streamed = c.post("/api/media/upload", content=chunks(),
                              headers={**tenant.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        except httpx.TransportError:
            streamed = None  # the server may answer 413 and close before the client finished sending
        if streamed is not None:
            assert streamed.status_code == 413
            assert "content-length" not in streamed.request.headers
        time.sleep(0.3)
        assert set(_files_under(data)) == files_before  # nothing partial left behind
        assert c.get("/health").status_code == 200


@pytest.mark.slow
def test_file_over_50_mib_rejected(database: str, log_dir: Path, tmp_path: Path, tenant) -> None:  # type: ignore[no-untyped-def]
    env = support.base_env(database, CLARIN_DATA_DIR=str(tmp_path), BODY_LIMIT=str(80 * MiB))
    with support.running_server(env, log_dir, "media-50") as srv:
        block = os.urandom(MiB)

        def chunks() -> Iterator[bytes]:
            yield b'--fb\r\nContent-Disposition: form-data; name="file"; filename="huge.mp4"\r\n\r\n'
            for _ in range(51):
                yield block
            yield b"\r\n--fb--\r\n"

        try:
            response = httpx.post(srv.url + "/api/media/upload", content=chunks(), timeout=60,
                                  headers={**tenant.headers, "Content-Type": "multipart/form-data; boundary=fb"})
        except httpx.TransportError:
            response = None
        if response is not None:
            assert response.status_code == 413
            assert response.json()["error"] == "File too large (max 50MB)"
        assert _files_under(tmp_path / "media") == []


# -- S3 (moto_server as a real S3-compatible HTTP server) -------------------------------------------
@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(binary).exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = support.free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("moto_server did not start")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def s3_server(database: str, log_dir: Path, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.ServerProcess]:
    env = support.base_env(
        database, CLARIN_DATA_DIR=str(tmp_path_factory.mktemp("media-s3")), MINIO_ENDPOINT=moto_endpoint,
        MINIO_ACCESS_KEY="testkey", MINIO_SECRET_KEY="testsecret", MINIO_BUCKET="clarin-test-media",
        MINIO_PUBLIC_URL=f"http://{moto_endpoint}",
    )
    with support.running_server(env, log_dir, "media-s3") as srv:
        yield srv


def test_s3_backend_upload_range_and_presign(s3_server, moto_endpoint: str, tenant) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(2 * MiB + 777)
    with httpx.Client(base_url=s3_server.url, timeout=30) as c:
        uploaded = _upload(c, tenant, "clip.mp4", payload, content_type="video/mp4")
        assert uploaded.status_code == 200, uploaded.text
        body = uploaded.json()
        key = f"{tenant.account_id}/uploads/{body['filename']}"
        assert body["proxy_url"] == "/api/media/file/" + quote(key)
        assert body["public_url"] == f"http://{moto_endpoint}/clarin-test-media/{quote(key)}"
        # the bucket was created at start-up, private: anonymous reads go through the proxy only
        assert httpx.get(body["public_url"]).status_code == 403

        full = c.get(body["proxy_url"])
        assert full.status_code == 200 and full.content == payload
        assert full.headers["content-type"] == "video/mp4"
        size = len(payload)
        for header, (start, end) in {"bytes=0-99": (0, 99), "bytes=-4096": (size - 4096, size - 1),
                                     "bytes=1000-": (1000, 1000 + MiB - 1), "bytes=2097000-2097200": (2097000, 2097200)}.items():
            part = c.get(body["proxy_url"], headers={"Range": header})
            assert part.status_code == 206, header
            assert part.headers["content-range"] == f"bytes {start}-{end}/{size}"
            assert part.content == payload[start : end + 1], header
        assert c.get(body["proxy_url"], headers={"Range": f"bytes={size}-"}).status_code == 416
        assert c.get(f"/api/media/file/{tenant.account_id}/uploads/nope.png").status_code == 404
        assert c.get(f"/api/media/file/{tenant.account_id}/../x").status_code in (400, 404)

        presigned = c.get("/api/media/upload-url", params={"filename": "direct.webp", "folder": "stickers"},
                          headers=tenant.headers)
        assert presigned.status_code == 200, presigned.text
        info = presigned.json()
        assert info["success"] is True and info["filename"].endswith("_direct.webp")
        assert info["upload_url"].startswith(f"http://{moto_endpoint}/clarin-test-media/{tenant.account_id}/stickers/")
        assert "X-Amz-Signature=" in info["upload_url"] and "X-Amz-Expires=900" in info["upload_url"]
        put = httpx.put(info["upload_url"], content=b"RIFF-webp")
        assert put.status_code == 200, put.text
        via_proxy = c.get(f"/api/media/file/{tenant.account_id}/stickers/{quote(info['filename'])}")
        assert via_proxy.status_code == 200 and via_proxy.content == b"RIFF-webp"
        assert via_proxy.headers["content-type"] == "image/webp"


def test_unreachable_storage_answers_503(database: str, log_dir: Path, tmp_path: Path, tenant) -> None:  # type: ignore[no-untyped-def]
    env = support.base_env(database, CLARIN_DATA_DIR=str(tmp_path), MINIO_ENDPOINT=f"127.0.0.1:{support.free_port()}")
    with support.running_server(env, log_dir, "media-down") as srv:
        upload = httpx.post(srv.url + "/api/media/upload", headers=tenant.headers, files={"file": ("a.png", b"1")})
        assert upload.status_code == 503
        assert upload.json() == {"success": False, "error": "Storage not configured"}
        assert httpx.get(srv.url + "/api/media/file/x/y.png").status_code == 503
        assert httpx.get(srv.url + "/health").status_code == 200


def test_local_storage_api(tmp_path: Path) -> None:
    """The storage API other features use (WhatsApp media), on a real directory."""
    import asyncio

    from clarin.storage.backend import LocalMediaStorage

    async def scenario() -> None:
        storage = LocalMediaStorage(tmp_path / "media")
        await storage.start()
        assert await storage.available()
        key = build_key(uuid.uuid4(), "chats/51999@s.whatsapp.net", "ABC123.ogg")

        async def chunks() -> AsyncIterator[bytes]:
            for part in (b"Ogg", b"S-", b"voice"):
                yield part

        assert await storage.put(key, chunks(), "audio/ogg") == 10
        assert await storage.size(key) == 10
        assert await storage.read(key) == b"OggS-voice"
        assert storage.local_path(key) == str((tmp_path / "media" / key).resolve())
        assert b"".join([c async for c in await storage.open_range(key, 3, 4)]) == b"S-"
        assert await storage.presign_put(key, timedelta(minutes=1)) is None
        moved = key.replace("ABC123", "DEF456")
        await storage.rename(key, moved)
        assert await storage.read(key) is None and await storage.size(moved) == 10
        assert await storage.delete(moved) is True
        assert await storage.delete(moved) is False
        assert await storage.read("../outside") is None and storage.local_path("../outside") is None
        await storage.close()

    asyncio.run(scenario())
