"""WebSocket broadcast latency to many sockets of one account (part of ``bench/load.py``).

``sockets`` clients connect, spread over ``procs`` receiver processes (one Python process cannot read
1k sockets fast enough to measure the server: its own receive loop would be most of the latency).
Then ``rounds`` times one extra client sends a ``typing`` event that the server relays to the whole
account (through Redis to every worker); the event carries the sender's CLOCK_MONOTONIC stamp, which
every receiver process compares with its own clock (the same system-wide clock on Linux). One broadcast
is in flight at a time (the next is sent once every receiver process saw the round on all its sockets):
this measures fan-out latency, not throughput.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import statistics
import time
from typing import Any

READY_TIMEOUT = 120.0
ROUND_GAP = 0.05


def _receiver_main(url: str, count: int, rounds: int, conn: Any) -> None:
    """Child process: connect ``count`` sockets, report ready, record latencies until told to stop."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_receive(url, count, rounds, conn))


async def _receive(url: str, count: int, rounds: int, conn: Any) -> None:
    import msgspec
    from websockets.asyncio.client import connect

    decoder = msgspec.json.Decoder()
    latencies: list[tuple[int, float]] = []
    sockets: list[Any] = []
    errors = 0

    async def open_one() -> None:
        nonlocal errors
        try:
            sockets.append(await connect(url, compression=None, max_queue=None, open_timeout=30, ping_interval=None))
        except Exception:
            errors += 1

    seen: dict[int, int] = {}

    async def read(ws: Any) -> None:
        try:
            async for raw in ws:
                now = time.monotonic()
                if '"bench_seq"' in raw:
                    data = decoder.decode(raw)["data"]
                    seq = data["bench_seq"]
                    latencies.append((seq, now - data["t"]))
                    seen[seq] = seen.get(seq, 0) + 1
                    if seen[seq] == len(sockets):
                        conn.send(("round", seq))
        except Exception:
            pass

    for start in range(0, count, 50):
        await asyncio.gather(*(open_one() for _ in range(start, min(count, start + 50))))
    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    conn.send(("ready", len(sockets), errors))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _recv_stop, conn)
    await asyncio.sleep(0.3)  # the last round's stragglers
    for ws in sockets:
        await ws.close()
    for task in readers:
        task.cancel()
    conn.send(("done", latencies))


def _recv_stop(conn: Any) -> None:
    while conn.recv() != "stop":
        pass


async def ws_broadcast(ws_url: str, token: str, sockets: int, rounds: int, procs: int = 4) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    url = f"{ws_url}?token={token}"
    procs = max(1, min(procs, sockets))
    ctx = mp.get_context("spawn")
    children: list[tuple[Any, Any]] = []
    connect_started = time.monotonic()
    for index in range(procs):
        share = sockets // procs + (1 if index < sockets % procs else 0)
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_receiver_main, args=(url, share, rounds, child), daemon=True)
        proc.start()
        children.append((proc, parent))
    connected = connect_errors = 0
    loop = asyncio.get_running_loop()
    for _, parent in children:
        if await loop.run_in_executor(None, parent.poll, READY_TIMEOUT):
            _, ok, failed = parent.recv()
            connected, connect_errors = connected + ok, connect_errors + failed
    connect_seconds = time.monotonic() - connect_started
    await asyncio.sleep(1.0)  # let every worker register its sockets
    sender = await connect(url, compression=None, ping_interval=None)
    drain = asyncio.create_task(_drain(sender))
    phase_started = time.monotonic()
    round_timeouts = 0
    for seq in range(rounds):
        await sender.send(json.dumps({"event": "typing", "data": {"bench_seq": seq, "t": time.monotonic()}}))
        if not await loop.run_in_executor(None, _wait_round, [parent for _, parent in children], seq):
            round_timeouts += 1
        await asyncio.sleep(ROUND_GAP)
    phase_seconds = time.monotonic() - phase_started
    drain.cancel()
    await sender.close()
    samples: list[tuple[int, float]] = []
    for proc, parent in children:
        parent.send("stop")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and await loop.run_in_executor(None, parent.poll, 30):
            message = parent.recv()
            if message[0] == "done":
                samples.extend(message[1])
                break
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    result = summarize(samples, connected, connect_errors, connect_seconds, rounds, phase_seconds, procs)
    result["round_timeouts"] = round_timeouts
    return result


def _wait_round(parents: list[Any], seq: int, timeout: float = 5.0) -> bool:
    """Block until every receiver process reported round ``seq`` complete (False on timeout)."""
    deadline = time.monotonic() + timeout
    pending = set(range(len(parents)))
    while pending:
        for index in list(pending):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            while parents[index].poll(min(remaining, 0.01)):
                message = parents[index].recv()
                if message == ("round", seq):
                    pending.discard(index)
                    break
    return True


def summarize(samples: list[tuple[int, float]], connected: int, connect_errors: int, connect_seconds: float,
              rounds: int, phase_seconds: float, procs: int) -> dict[str, Any]:
    latencies = sorted(lat for _, lat in samples)
    per_round: dict[int, list[float]] = {}
    for seq, lat in samples:
        per_round.setdefault(seq, []).append(lat)
    expected = connected * rounds
    firsts = [min(v) for v in per_round.values()]
    lasts = [max(v) for v in per_round.values()]

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 3) if latencies else None

    return {
        "requests": len(latencies),
        "rps": len(latencies) / phase_seconds if phase_seconds else 0.0,
        "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3) if latencies else None,
        # first: send → the first socket's delivery (relay + Redis); last: send → the round's last delivery.
        "first_p50_ms": round(statistics.median(firsts) * 1000, 2) if firsts else None,
        "last_p50_ms": round(statistics.median(lasts) * 1000, 2) if lasts else None,
        "last_max_ms": round(max(lasts) * 1000, 2) if lasts else None,
        "errors": connect_errors + (expected - len(latencies)),
        "connected": connected, "connect_errors": connect_errors, "connect_seconds": round(connect_seconds, 2),
        "rounds": rounds, "missed_deliveries": expected - len(latencies), "receiver_processes": procs,
    }


async def _drain(ws: Any) -> None:
    try:
        async for _ in ws:
            pass
    except Exception:
        pass
