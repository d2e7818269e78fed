"""Take-over in seconds when a device's owner dies (issue 18 goal 1), with the default scan interval.

Two servers share a database of their own and Redis; the owner is SIGKILLed. The standby must claim the
device within ~2 s of PostgreSQL freeing the owner's lease (clarin.whatsapp.peers wakes its scan; the periodic
scan alone would take up to WHATSAPP_LEASE_RENEW = 10 s), and meanwhile a send through it answers
``503`` + ``Retry-After`` (retry), never ``409 device not connected``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from clarin.whatsapp.peers import MAX_WATCHED, ring_successors
from tests import support
from tests.test_devices import connected_device, events_until, kill_tree, make_tenant, socket

TAKEOVER_ENV = {"WHATSAPP_DRIVER": "simulated", "WHATSAPP_LEASE_RENEW": "10", "WHATSAPP_LEASE_TTL": "30",
                "LOG_LEVEL": "INFO"}
CLAIM_BOUND = 3.0  # CLAIM_GRACE (1.5 s) + the simulated client's resume + a loaded CI machine's slack


def test_a_killed_owners_device_is_back_within_seconds_and_sends_meanwhile_say_retry(
    services: None, log_dir: Path
) -> None:
    name, dsn = support.create_database()
    env = support.base_env(dsn, **TAKEOVER_ENV)
    try:
        with support.running_server(env, log_dir, "takeover-owner") as owner, \
                support.running_server(env, log_dir, "takeover-standby") as standby:
            tenant = make_tenant(owner.url)
            with httpx.Client(base_url=owner.url, headers=tenant.headers, timeout=15) as on_owner:
                device_id = connected_device(on_owner, "Takeover")["id"]
            time.sleep(1.5)  # both processes have scanned once since the standby started: it watches the owner
            answers: list[tuple[float, int, dict[str, Any], str | None]] = []
            stop = threading.Event()

            def send_until_stopped() -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    r = httpx.post(standby.url + "/api/messages/send", headers=tenant.headers, timeout=8,
                                   json={"device_id": device_id, "to": "51987000111", "body": f"takeover {n}"})
                    answers.append((time.monotonic(), r.status_code, r.json(), r.headers.get("retry-after")))
                    time.sleep(0.05)

            with socket(standby, tenant) as ws:
                kill_tree(owner)
                killed = time.monotonic()
                sender = threading.Thread(target=send_until_stopped)
                sender.start()
                try:
                    events_until(ws, "device_status",
                                 lambda d: d["device_id"] == device_id and d["status"] == "connected", timeout=20)
                    back = time.monotonic() - killed
                    time.sleep(0.3)
                finally:
                    stop.set()
                    sender.join(10)
        print(f"\ntakeover: device back {back:.2f} s after the kill")
        assert back < CLAIM_BOUND, f"device back {back:.2f} s after the owner died (bound {CLAIM_BOUND} s)"
        statuses = [status for _, status, _, _ in answers]
        assert 409 not in statuses, [a for a in answers if a[1] == 409][:3]
        for _, status, body, retry_after in answers:
            assert status in (200, 503), (status, body)
            if status == 503:
                assert retry_after is not None and "retry" in body["error"], body
        assert statuses[-1] == 200, answers[-3:]
        assert "device-lease peer" in standby.logs() and "ended its session" in standby.logs()
    finally:
        support.drop_database(name)


def test_each_process_watches_its_ring_successors() -> None:
    assert ring_successors(5, {1, 3, 5, 7, 9}, 2) == [7, 9]
    assert ring_successors(9, {1, 3, 5, 7, 9}, 3) == [1, 3, 5]
    assert ring_successors(5, {5}) == []
    # every process is watched by min(MAX_WATCHED, peers) others
    nodes = set(range(10, 200, 17))
    watchers = {n: 0 for n in nodes}
    for n in nodes:
        for watched in ring_successors(n, nodes):
            watchers[watched] += 1
    assert set(watchers.values()) == {MAX_WATCHED}
