"""Helpers shared by the leads, import and stats tests (real server, PostgreSQL, Redis)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis
from websockets.sync.client import ClientConnection, connect

from tests import support


@contextmanager
def socket(server: Any, tenant: Any) -> Iterator[ClientConnection]:
    # A short close_timeout keeps teardown quick whatever the close handshake does.
    with connect(f"{server.ws_url}?token={tenant.token}", close_timeout=0.5) as ws:
        ws.send('{"event":"ping"}')  # the pong proves the socket is registered before anything is triggered
        assert json.loads(ws.recv(timeout=5)) == {"event": "pong"}
        yield ws


def next_event(ws: ClientConnection, name: str, timeout: float = 5) -> dict[str, Any]:
    while True:
        message = json.loads(ws.recv(timeout=timeout))
        if message.get("event") == name:
            return message


def assert_silent(ws: ClientConnection, timeout: float = 0.7) -> None:
    with pytest.raises(TimeoutError):
        ws.recv(timeout=timeout)


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(support.REDIS_URL)


def board_key(account_id: str) -> str:
    """The session server's board cache key (``<REDIS_PREFIX>:leads:<account>``, clarin.crm.leads_cache)."""
    return f"{support.SESSION_REDIS_PREFIX}:leads:{account_id}"


def forget_cached_reads(account_id: str, *, board: bool = True) -> None:
    """After writing behind the API's back: drop the board (unless ``board=False``) and retire the
    account's page cache (a new generation is made on the next read, so nothing cached before matches)."""
    r = redis_client()
    keys = [*r.scan_iter(match=f"*:pc:gen:{account_id}:*"), *([board_key(account_id)] if board else [])]
    if keys:
        r.delete(*keys)


def sql(dsn: str, statement: str, *params: Any) -> list[dict[str, Any]]:
    return support.run_sql(dsn, statement, list(params) if params else None)


def default_stages(dsn: str, account_id: str) -> list[dict[str, Any]]:
    return sql(
        dsn,
        "SELECT ps.id, ps.name, ps.position, ps.color, ps.pipeline_id FROM pipeline_stages ps "
        "JOIN pipelines p ON p.id = ps.pipeline_id WHERE p.account_id = $1 AND p.is_default ORDER BY ps.position",
        uuid.UUID(account_id),
    )


def create_lead(client: httpx.Client, tenant: Any, phone: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/leads", json={"phone": phone, **fields}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()["lead"]


def lead_rows(dsn: str, account_id: str) -> list[dict[str, Any]]:
    return sql(
        dsn,
        "SELECT id, jid, name, phone, email, notes, company, last_name, age, tags, status, source, "
        "pipeline_id, stage_id, contact_id FROM leads WHERE account_id = $1 ORDER BY jid",
        uuid.UUID(account_id),
    )


def random_phone() -> str:
    return "519" + str(uuid.uuid4().int)[:8]


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (granian serves from forked worker processes)."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        task_dir = f"/proc/{current}/task"
        try:
            tids = os.listdir(task_dir)
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"{task_dir}/{tid}/children") as fh:
                    found.extend(int(child) for child in fh.read().split())
            except OSError:
                continue
    return found


def memory_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def explain_without_seqscan(dsn: str, statement: str) -> str:
    """EXPLAIN ``statement`` on one connection with sequential scans disabled; the plan as text."""
    import psqlpy

    async def _run() -> str:
        pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=2)
        try:
            conn = await pool.connection()
            try:
                await conn.execute("SET enable_seqscan = off")
                return json.dumps((await conn.execute(statement)).result())
            finally:
                conn.close()
        finally:
            pool.close()

    return asyncio.run(_run())
