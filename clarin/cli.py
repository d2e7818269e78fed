"""``clarin serve | migrate | create-admin | bench-seed``."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import getpass
import logging
import os
import sys
from typing import NoReturn

from clarin.config import Settings, load_settings
from clarin.observability.logging import configure_logging, granian_log_config
from clarin.observability.multiprocess import prepare_multiprocess_dir, remove_multiprocess_dir

log = logging.getLogger("clarin")


def resolve_database_url(settings: Settings) -> str:
    """The configured DATABASE_URL, or an embedded PostgreSQL started under CLARIN_DATA_DIR."""
    if settings.database_url:
        return settings.database_url
    from clarin.db.embedded import start_embedded_postgres

    log.info("DATABASE_URL not set: starting embedded PostgreSQL under %s", settings.data_dir)
    return start_embedded_postgres(settings.data_dir)


async def _prepare_database(settings: Settings, dsn: str, *, seed_admin: bool) -> None:
    from clarin.db.migrate import migrate
    from clarin.db.pool import Database
    from clarin.db.seed import seed

    db = Database(dsn, pool_size=2)
    try:
        applied = await migrate(db)
        log.info("migrations applied: %s", ", ".join(applied) if applied else "none pending")
        if seed_admin:
            await seed(db, settings)
    finally:
        db.close()


def cmd_migrate(settings: Settings) -> int:
    asyncio.run(_prepare_database(settings, resolve_database_url(settings), seed_admin=False))
    return 0


def cmd_create_admin(settings: Settings, args: argparse.Namespace) -> int:
    overrides = {
        "admin_user": args.username or settings.admin_user,
        "admin_email": args.email or settings.admin_email,
        "admin_password": args.password or os.environ.get("ADMIN_PASSWORD") or getpass.getpass("Password: "),
    }
    import msgspec

    from clarin.auth.secret import MAX_PASSWORD_BYTES

    if len(str(overrides["admin_password"]).encode()) > MAX_PASSWORD_BYTES:  # bcrypt would ignore the rest
        print(f"clarin: the password must be at most {MAX_PASSWORD_BYTES} bytes (UTF-8)", file=sys.stderr)
        return 2
    settings = msgspec.structs.replace(settings, **overrides)
    asyncio.run(_prepare_database(settings, resolve_database_url(settings), seed_admin=True))
    print(f"admin {settings.admin_user!r} is ready")
    return 0


def _prepare_for_serving(settings: Settings) -> str:
    configure_logging(settings.log_level, settings.log_format)
    if settings.whatsapp_driver == "neonize":  # here, not in the parent: neonize loads a Go runtime (fork)
        from clarin.neonize_check import check_neonize

        check_neonize()
    dsn = resolve_database_url(settings)
    asyncio.run(_prepare_database(settings, dsn, seed_admin=True))
    return dsn


def cmd_serve(settings: Settings) -> int:
    embedded = not settings.database_url
    try:
        return _serve(settings)
    finally:
        # Here, in the serving parent, once granian has stopped every worker (or start-up failed): the
        # embedded server was started by the prep process, which is long gone, and pgserver never stops it.
        if embedded:
            _stop_or_keep_embedded(settings)


def _stop_or_keep_embedded(settings: Settings) -> None:
    from clarin.db.embedded import pgdata_dir, running_postmaster, stop_embedded_postgres

    if settings.keep_db:
        if running_postmaster(pgdata_dir(settings.data_dir)) is not None:
            log.info("embedded PostgreSQL left running (CLARIN_KEEP_DB=1); `make stop` stops it")
        return
    try:
        stop_embedded_postgres(settings.data_dir)
    except (OSError, RuntimeError) as exc:
        log.error("could not stop the embedded PostgreSQL: %s (try `make stop`)", exc)


def _embedded_running(settings: Settings) -> bool:
    from clarin.db.embedded import pgdata_dir, running_postmaster

    return not settings.database_url and running_postmaster(pgdata_dir(settings.data_dir)) is not None


def _serve(settings: Settings) -> int:
    # First, before granian is imported: importing it raises the soft limit too, silently.
    open_files = raise_open_files_limit()
    # Also before the import: granian's jemalloc reads its options once, when it first allocates.
    os.environ.setdefault(GRANIAN_MALLOC_ENV, GRANIAN_MALLOC_CONF)
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings

    from clarin.http.parent_watch import mark_serving_process
    from clarin.neonize_check import NeonizeUnsupported
    from clarin.preload import preload, worker_modules

    # The database driver runs a Rust (tokio) runtime whose threads do not survive fork(); granian
    # forks its workers, so the start-up work that touches the database runs in a spawned process
    # and the serving parent never loads the driver.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        try:
            dsn = pool.submit(_prepare_for_serving, settings).result()
        except NeonizeUnsupported as exc:  # refuse to serve rather than run with devices that cannot work
            log.error("%s", exc)
            return 2
        modules = pool.submit(worker_modules).result()
    # Workers are separate processes that read settings from the environment.
    os.environ["DATABASE_URL"] = dsn
    mark_serving_process()  # a worker whose parent is gone stops (clarin.http.parent_watch)
    # Prometheus multi-process mode: every worker writes its samples there (set before the fork).
    metrics_dir, remove_metrics_dir = prepare_multiprocess_dir()
    if remove_metrics_dir:
        atexit.register(remove_multiprocess_dir, metrics_dir)
    max_connections = connection_limit(settings, open_files)
    ws_cap = websocket_limit(settings, max_connections)
    os.environ["WS_MAX_CONNECTIONS"] = str(ws_cap)  # the workers read it (0 would mean uncapped)
    log.info("serving on http://%s:%d (workers=%d threads=%d, up to %d connections per worker, of them up to "
             "%d WebSockets, %s per account)", settings.host, settings.port, settings.workers, settings.threads,
             max_connections, ws_cap, settings.ws_max_per_account or "any number")
    _log_first_steps(settings)
    # Last, once the environment is final: some modules read it on import (prometheus_client picks its
    # multi-process value class from PROMETHEUS_MULTIPROC_DIR). A replacement worker then starts in ~0.4 s of
    # CPU instead of ~1.5 s (clarin/preload.py).
    log.debug("preloaded %d modules for the workers", preload(modules))
    Granian(
        "clarin.app:app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        workers=settings.workers,
        runtime_threads=settings.threads,
        loop=Loops.uvloop,
        # HTTP/1.1 only: in granian's "auto" mode hyper-util first sniffs each new connection for an HTTP/2
        # preface with no time limit, so a client that connects and sends nothing held its connection (and a
        # slot of the limit below) forever. Plain HTTP/2 (h2c) has no clients here: browsers speak h2 over TLS
        # only, which a front proxy terminates. HTTP/1.1 applies the header timeout from the first byte on.
        http=HTTPModes.http1,
        # The one timer hyper has: a complete request head within this long, counted from accept or from the
        # previous response, else the connection is closed (slowloris, idle and idle keep-alive sockets).
        http1_settings=HTTP1Settings(header_read_timeout=round(settings.http_header_timeout * 1000)),
        websockets=True,
        log_access=False,
        log_dictconfig=granian_log_config(settings.log_format),
        # granian's backpressure is a cap on open *connections* per worker, held for a connection's life:
        # small, a few dozen idle sockets starved everyone else. What protects PostgreSQL is the FIFO gate
        # in front of each worker's pool (clarin/db/pool.py: DB_POOL_SIZE statements at a time, 503 after
        # its acquire timeout), which counts requests, not sockets.
        backpressure=max_connections,
        # A worker that dies (OOM kill, segfault in a native library) is replaced at once and the others keep
        # serving; its devices are taken over by the survivors (docs/WHATSAPP.md). granian still exits when
        # the same worker dies again within ~5 s of its respawn (a crash loop): the container restarts then.
        respawn_failed_workers=True,
    ).serve()
    return 0


def _log_first_steps(settings: Settings) -> None:
    """Where to go next. The password is shown only while it is the documented default (README): one set
    through ADMIN_PASSWORD is a secret and stays out of the logs."""
    host = "localhost" if settings.host in ("0.0.0.0", "::", "") else settings.host
    password = settings.admin_password if settings.admin_password == Settings().admin_password else "ADMIN_PASSWORD"
    log.info("open http://%s:%d; log in as %s / %s (POST /api/auth/login); Ctrl-C stops%s", host, settings.port,
             settings.admin_user, password,
             "" if settings.database_url or settings.keep_db else " the server and its embedded PostgreSQL")


# File descriptors kept for what is not a client connection: database pool, Redis, media files, pipes.
RESERVED_FDS = 512
# granian's wheels bring their own jemalloc (options from this variable, not MALLOC_CONF). By default it keeps
# freed pages for reuse and only returns them as it allocates again (its decay needs activity; no background
# thread survives the fork into the workers): after 10k WebSockets closed, a worker kept ~1.6 GB. Purging at
# free returns it at once (bench/ws_scale.py; docs/OPERATIONS.md). An operator's own value is kept.
GRANIAN_MALLOC_ENV = "_RJEM_MALLOC_CONF"
GRANIAN_MALLOC_CONF = "dirty_decay_ms:0,muzzy_decay_ms:0"


def raise_open_files_limit() -> int:
    """Raise this process's open-files soft limit to its hard limit (workers inherit it); the new soft limit.

    Each open client connection is a file descriptor: the common default soft limit of 1024 would cap a
    worker at about a thousand sockets. The hard limit is the operator's (docker-compose ``ulimits``)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft >= hard:
        log.info("open files: soft limit %s, hard limit %s", soft, hard)
        return soft if soft != resource.RLIM_INFINITY else 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, hard, exc)
        return soft
    log.info("open files: soft limit raised from %d to the hard limit %d", soft, hard)
    return hard


def connection_limit(settings: Settings, open_files: int) -> int:
    """Open connections per worker: HTTP_MAX_CONNECTIONS, else what the open-files limit leaves.

    Staying under the limit matters: at it, accept() fails with EMFILE while the connection stays queued,
    and granian's accept loop would retry it at once, over and over."""
    if settings.http_max_connections:
        return settings.http_max_connections
    return max(64, open_files - RESERVED_FDS)


def websocket_limit(settings: Settings, max_connections: int) -> int:
    """WebSockets per worker: WS_MAX_CONNECTIONS, else the connection limit minus a reserve (an eighth, at
    least 32) so that with every dashboard slot taken, /health and ordinary API requests still get in."""
    if settings.ws_max_connections:
        return min(settings.ws_max_connections, max_connections)
    return max(1, max_connections - max(32, max_connections // 8))


def cmd_bench_seed(argv: list[str]) -> int:
    """The benchmark data set (bench/seed.py, in the source tree only): ``clarin bench-seed --help``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(root, "bench", "seed.py")):
        print("bench-seed needs the source tree (bench/seed.py is not installed with the package)", file=sys.stderr)
        return 2
    if root not in sys.path:
        sys.path.insert(0, root)
    from bench.seed import main as bench_seed_main

    return bench_seed_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench-seed"]:
        _exit_without_finalizing(cmd_bench_seed(argv[1:]))
    parser = argparse.ArgumentParser(prog="clarin", description="Clarin CRM backend")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="migrate, seed the first admin and serve HTTP + WebSocket")
    sub.add_parser("migrate", help="apply pending migrations and exit")
    admin = sub.add_parser("create-admin", help="create the super admin (idempotent)")
    admin.add_argument("--username")
    admin.add_argument("--email")
    admin.add_argument("--password")
    sub.add_parser("bench-seed", help="seed the benchmark data set (bench/seed.py; see bench-seed --help)")
    args = parser.parse_args(argv)
    try:
        # In the parent, before any prep process or granian worker exists: a bad configuration (e.g. no
        # JWT_SECRET in production) ends `clarin serve` here with one clear line instead of a hang.
        settings = load_settings()
    except ValueError as exc:
        print(f"clarin: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        return cmd_serve(settings)
    # A one-shot command leaves the embedded PostgreSQL as it found it: still up if a server (or
    # CLARIN_KEEP_DB) had it running, stopped if this command had to start it.
    found_running = _embedded_running(settings)
    try:
        code = cmd_migrate(settings) if args.command == "migrate" else cmd_create_admin(settings, args)
    finally:
        if not settings.database_url and not found_running:
            _stop_or_keep_embedded(settings)
    _exit_without_finalizing(code)


def _exit_without_finalizing(code: int) -> NoReturn:
    """End a one-shot command without interpreter finalization.

    psqlpy's runtime threads may still be finishing the closed pool's work when the interpreter
    finalizes, which aborts the process now and then (SIGABRT, "PyGILState_Release: thread state ...
    must be current when releasing") although the command succeeded. The work is done: run the exit
    handlers (logging flush, pgserver bookkeeping), flush stdio and leave.
    """
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
