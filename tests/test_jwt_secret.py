"""Issue 12 item 3: the signing secret. Production refuses to start without a real one; development
generates one once under CLARIN_DATA_DIR (0600) that every worker and every restart shares.

Real `clarin serve` processes (the CLI parent, its spawned prep process, granian workers)."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests import support

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

PUBLIC_DEFAULT = "clarin_jwt_secret_change_in_production_2026"
STRONG = "s3cret-" + "x" * 40


def _serve(env: dict[str, str], timeout: float = 60) -> tuple[int | None, str, float]:
    """Run `clarin serve`; (exit code or None if it was still running at the timeout, output, seconds)."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "clarin", "serve"], cwd=support.ROOT, text=True,
                            env={**env, "PORT": str(support.free_port()), "HOST": "127.0.0.1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = proc.communicate(timeout=timeout)
        return proc.returncode, output, time.monotonic() - started
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        return None, output, time.monotonic() - started


def _production_env(database: str, **overrides: str) -> dict[str, str]:
    env = support.base_env(database, ENV="production", WORKERS="2", LOG_LEVEL="INFO")
    env.pop("JWT_SECRET")
    env.update(overrides)
    return env


@pytest.mark.parametrize(("secret", "message"), [
    (None, "JWT_SECRET is not set: ENV=production refuses to start without it"),
    ("", "JWT_SECRET is not set: ENV=production refuses to start without it"),
    ("short-secret-31-bytes-xxxxxxxxx", "JWT_SECRET is too short for production: 31 bytes, at least 32 needed"),
    (PUBLIC_DEFAULT, "JWT_SECRET is the publicly documented default"),
])
def test_production_refuses_to_start_without_a_real_secret(
    database: str, secret: str | None, message: str
) -> None:
    env = _production_env(database, **({} if secret is None else {"JWT_SECRET": secret}))
    code, output, seconds = _serve(env)
    print(f"\nproduction start, JWT_SECRET={secret!r}: exit code {code} after {seconds:.1f}s: {output.strip()}")
    assert code == 2, output  # refused, and the process ended (not a hanging parent)
    assert f"clarin: configuration error: {message}" in output
    assert "Traceback" not in output


def test_production_starts_with_a_strong_secret(database: str, log_dir: Path) -> None:
    env = _production_env(database, JWT_SECRET=STRONG, WORKERS="1")
    with support.running_server(env, log_dir, "prod-secret") as server:
        token = support.login(server.url, "admin", "admin-pass-123")
        jwt.decode(token, STRONG, algorithms=["HS256"])  # signed with the configured secret
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, PUBLIC_DEFAULT, algorithms=["HS256"])


def test_development_generates_a_persistent_secret_shared_by_every_worker(database: str, log_dir: Path) -> None:
    env = support.base_env(database, WORKERS="2")
    env.pop("JWT_SECRET")
    secret_file = Path(env["CLARIN_DATA_DIR"]) / "jwt-secret"
    with support.running_server(env, log_dir, "dev-secret-1") as server:
        assert secret_file.is_file()
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        secret = secret_file.read_text().strip()
        assert len(secret.encode()) >= 32 and secret != PUBLIC_DEFAULT
        token = support.login(server.url, "admin", "admin-pass-123")
        jwt.decode(token, secret, algorithms=["HS256"])
        # Two workers: many requests land on both; each accepts the token the other signed.
        with httpx.Client(base_url=server.url, timeout=15) as client:
            tokens = [support.login(server.url, "admin", "admin-pass-123") for _ in range(4)]
            for _ in range(10):
                for t in (token, *tokens):
                    assert client.get("/api/me", headers=support.auth(t)).status_code == 200
    # A restart reads the same file: the session survives.
    with support.running_server(env, log_dir, "dev-secret-2") as server:
        assert secret_file.read_text().strip() == secret
        assert httpx.get(server.url + "/api/me", headers=support.auth(token), timeout=15).status_code == 200
