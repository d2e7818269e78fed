"""Which JWT secret the server signs with (README "Configuration", ``JWT_SECRET``).

Production refuses to start without a real secret: the old documented default is public, so anyone
could mint a super-admin token with it. Development without ``JWT_SECRET`` generates a random secret
once and keeps it in ``CLARIN_DATA_DIR/jwt-secret`` (mode 0600), so restarts keep sessions and every
worker process (each loads its settings after granian forks) reads the same one."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

MIN_PRODUCTION_SECRET_BYTES = 32
# bcrypt reads 72 bytes of a password (clarin.auth.passwords); here so that config can check ADMIN_PASSWORD
# without importing bcrypt.
MAX_PASSWORD_BYTES = 72
SECRET_FILE = "jwt-secret"
# The value this project used to document as the default: known to everyone, never accepted in production.
PUBLIC_DEFAULT_SECRET = "clarin_jwt_secret_change_in_production_2026"


class SecretError(ValueError):
    """The configuration cannot provide a usable signing secret (a start-up error, not a request error)."""


def resolve_jwt_secret(configured: str | None, *, production: bool, data_dir: Path) -> str:
    if production:
        if not configured:
            raise SecretError(
                "JWT_SECRET is not set: ENV=production refuses to start without it "
                f"(use a random value of at least {MIN_PRODUCTION_SECRET_BYTES} bytes, "
                "e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        if configured == PUBLIC_DEFAULT_SECRET:
            raise SecretError("JWT_SECRET is the publicly documented default: set a random secret in production")
        if len(configured.encode()) < MIN_PRODUCTION_SECRET_BYTES:
            raise SecretError(
                f"JWT_SECRET is too short for production: {len(configured.encode())} bytes, "
                f"at least {MIN_PRODUCTION_SECRET_BYTES} needed"
            )
        return configured
    return configured or development_secret(data_dir)


def development_secret(data_dir: Path) -> str:
    """Read ``data_dir/jwt-secret``, creating it first if needed. Safe when several processes race:
    the file appears complete or not at all (written aside, then hard-linked into place)."""
    path = data_dir / SECRET_FILE
    existing = _read(path)
    if existing:
        return existing
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_urlsafe(48).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process got there first: then theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise SecretError(f"JWT_SECRET is not set and {path} cannot be created ({exc}); set JWT_SECRET") from exc
    secret = _read(path)
    if not secret:
        raise SecretError(f"{path} is empty: delete it or set JWT_SECRET")
    return secret


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise SecretError(f"cannot read {path} ({exc}); set JWT_SECRET") from exc
