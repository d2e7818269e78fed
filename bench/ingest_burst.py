"""Inbound ingestion throughput: a burst of N WhatsApp text messages through the simulated driver.

    python bench/ingest_burst.py                 # 10k messages, in-process pool (default)
    python bench/ingest_burst.py --mode http     # through a real server and the dev route
    python bench/ingest_burst.py -n 20000 --senders 200 --profile

``pool`` mode builds the real AppState (PostgreSQL, Redis, storage, the device pool with the simulated
driver and the InboundIngestor), pairs a device, pre-builds the neonize events and then hands all of them
to the driver's sink at once, as a burst from WhatsApp would arrive: the pool queues them per device and the
ingestor writes them in batches of up to 500, one transaction each. The clock covers parsing, the
transactions and the WebSocket broadcasts (Redis publish), i.e. everything after the event exists.

``http`` mode starts ``clarin serve`` and posts every message to ``POST /api/dev/whatsapp/{id}/inbound``
with ``--concurrency`` clients; it measures the whole stack including HTTP, auth and event building, so
it reports far less than the ingestion alone on a small machine (the client runs on the same cores).

A scratch database is created, migrated and dropped. Prints msgs/s, batches and transactions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")


async def _sql(dsn: str, statement: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    import psqlpy

    pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=2)
    try:
        conn = await pool.connection()
        try:
            return (await conn.execute(statement, params)).result()
        finally:
            conn.close()
    finally:
        pool.close()


def sql(dsn: str, statement: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    return asyncio.run(_sql(dsn, statement, params))


def env_for(dsn: str, data_dir: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": dsn, "REDIS_URL": REDIS_URL, "WHATSAPP_DRIVER": "simulated",
            "LOG_LEVEL": "WARNING", "ACCESS_LOG": "0", "RATE_LIMIT": "0", "CLARIN_DATA_DIR": data_dir,
            "REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:6]}", "JWT_SECRET": "bench-secret",
            "ADMIN_PASSWORD": "bench-pass-123"}


def stored(dsn: str, account_id: str) -> dict[str, Any]:
    return sql(dsn, "SELECT count(*) AS n, count(DISTINCT xmin::text) AS transactions FROM messages "
               "WHERE account_id = $1", [uuid.UUID(account_id)])[0]


# -- pool mode ------------------------------------------------------------------------------------------
async def run_pool(dsn: str, data_dir: str, total: int, senders: int, profile: bool,
                   repeat: int = 1) -> dict[str, Any]:
    from clarin.config import load_settings
    from clarin.state import AppState
    from clarin.whatsapp.simulated_driver import SimulatedDriver, build_inbound_event
    from clarin.wire.devices import InboundSpec

    account = (await _sql(dsn, "INSERT INTO accounts (name) VALUES ('bench') RETURNING id::text AS id"))[0]["id"]
    device_id = uuid.UUID((await _sql(dsn, "INSERT INTO devices (account_id, name) VALUES ($1, 'bench') "
                                           "RETURNING id::text AS id", [uuid.UUID(account)]))[0]["id"])
    state = AppState.build(load_settings(env_for(dsn, data_dir)), dsn)
    assert state.whatsapp is not None
    state.whatsapp.renew_interval = 3600
    await state.start()
    pool = state.whatsapp
    driver = pool.driver
    assert isinstance(driver, SimulatedDriver)
    try:
        if not pool.leases.is_open:
            await pool.leases.open()
        await pool.connect(device_id, uuid.UUID(account), "", "disconnected")
        for _ in range(500):
            if await driver.is_connected(device_id):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        phones = [f"519{i:08d}" for i in range(senders)]
        rates: list[float] = []
        for round_no in range(repeat):
            base = int(time.time()) - total
            events = [
                build_inbound_event(InboundSpec(
                    from_=phones[i % senders], push_name=f"Sender {i % senders}", body=f"burst message {i}",
                    message_id=f"R{round_no}-B{i:07d}", timestamp=base + i))
                for i in range(total)
            ]
            profiler = cProfile.Profile() if profile else None
            if profiler:
                profiler.enable()
            started = time.perf_counter()
            await asyncio.gather(*(driver.emit(device_id, event) for event in events))
            elapsed = time.perf_counter() - started
            if profiler:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
            rates.append(total / elapsed)
            if repeat > 1:
                print(f"round {round_no + 1}: {total / elapsed:.0f} msgs/s ({elapsed:.2f}s)", flush=True)
        stats = pool.inbound.stats  # type: ignore[attr-defined]
        return {"elapsed": total / max(rates), "account": account, "batches": stats.batches,
                "transactions": stats.transactions, "rates": rates}
    finally:
        await state.stop()


# -- http mode ------------------------------------------------------------------------------------------
def run_http(dsn: str, data_dir: str, total: int, senders: int, concurrency: int) -> dict[str, Any]:
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**env_for(dsn, data_dir), "PORT": str(port), "HOST": "127.0.0.1"}
    log = open(Path(data_dir) / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "clarin", "serve"], env=env, cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        admin = {"Authorization": "Bearer " + httpx.post(url + "/api/auth/login", json={
            "username": "admin", "password": "bench-pass-123"}).json()["token"]}
        account = httpx.post(url + "/api/admin/accounts", json={"name": "bench"}, headers=admin).json()["account"]["id"]
        httpx.post(url + "/api/admin/users", headers=admin, json={
            "account_id": account, "username": "bench_ingest", "email": "bench_ingest@example.test",
            "password": "bench-pass-123", "role": "admin"})
        token = httpx.post(url + "/api/auth/login", json={"username": "bench_ingest",
                                                         "password": "bench-pass-123"}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        device = httpx.post(url + "/api/devices", json={"name": "bench"}, headers=headers).json()["device"]["id"]
        httpx.post(url + f"/api/devices/{device}/connect", headers=headers)
        for _ in range(100):
            if httpx.get(url + f"/api/devices/{device}", headers=headers).json()["device"]["status"] == "connected":
                break
            time.sleep(0.05)
        phones = [f"519{i:08d}" for i in range(senders)]
        inbound = f"{url}/api/dev/whatsapp/{device}/inbound"
        base = int(time.time()) - total

        bodies = [json.dumps({"from": phones[i % senders], "push_name": f"Sender {i % senders}",
                              "body": f"burst message {i}", "message_id": f"B{i:07d}",
                              "timestamp": base + i}).encode() for i in range(total)]
        path = inbound.removeprefix(url)

        async def burst() -> None:
            """A bare keep-alive HTTP/1.1 client per connection (httpx would be the bottleneck here)."""
            todo = iter(bodies)
            head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                    "Content-Type: application/json\r\n").encode()

            async def connection() -> None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    for body in todo:
                        writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                        status = await reader.readline()
                        length = 0
                        while (line := await reader.readline()) not in (b"\r\n", b""):
                            name, _, value = line.decode().partition(":")
                            if name.lower() == "content-length":
                                length = int(value)
                        await reader.readexactly(length)
                        if status.split()[1] != b"200":
                            raise RuntimeError(status.decode())
                finally:
                    writer.close()

            await asyncio.gather(*(connection() for _ in range(concurrency)))

        started = time.perf_counter()
        asyncio.run(burst())
        return {"elapsed": time.perf_counter() - started, "account": account, "batches": None,
                "transactions": None}
    finally:
        server.terminate()
        server.wait(15)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--messages", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=100, help="distinct chats the burst is spread over")
    parser.add_argument("--mode", choices=("pool", "http"), default="pool")
    parser.add_argument("--concurrency", type=int, default=64, help="http mode: parallel clients")
    parser.add_argument("--profile", action="store_true", help="pool mode: cProfile the burst")
    parser.add_argument("--repeat", type=int, default=1,
                        help="pool mode: bursts of N messages in a row (the best one is reported)")
    args = parser.parse_args()

    name = f"clarin_ingest_bench_{uuid.uuid4().hex[:8]}"
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    sql(PG_ADMIN_DSN, f"CREATE DATABASE {name}")
    code = 1
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            migrated = subprocess.run([sys.executable, "-m", "clarin", "migrate"], cwd=ROOT,
                                      env=env_for(dsn, data_dir), capture_output=True, text=True)
            if migrated.returncode != 0:
                raise SystemExit(migrated.stderr)
            if args.mode == "pool":
                result = asyncio.run(run_pool(dsn, data_dir, args.messages, args.senders, args.profile, args.repeat))
            else:
                result = run_http(dsn, data_dir, args.messages, args.senders, args.concurrency)
            rows = stored(dsn, result["account"])
            rate = args.messages / result["elapsed"]
            expected = args.messages * (args.repeat if args.mode == "pool" else 1)
            rates = result.get("rates") or [rate]
            median = sorted(rates)[len(rates) // 2]
            print(f"mode={args.mode} messages={args.messages} senders={args.senders} stored={rows['n']} "
                  f"elapsed={result['elapsed']:.2f}s rate={rate:.0f} msgs/s (median of {len(rates)}: {median:.0f}) "
                  f"transactions(xmin)={rows['transactions']}"
                  + (f" batches={result['batches']}" if result["batches"] is not None else ""))
            code = 0 if rows["n"] == expected else 2
    finally:
        sql(PG_ADMIN_DSN, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    sys.stdout.flush()
    os._exit(code)  # psqlpy runtime threads may abort a normal interpreter shutdown


if __name__ == "__main__":
    main()
