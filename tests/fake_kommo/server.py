"""A real HTTP server on 127.0.0.1 that speaks the Kommo API v4 JSON the Clarin client uses.

Endpoints (below ``/api/v4``): ``GET /account``, ``GET /leads/pipelines``, ``GET /leads`` (``page``, ``limit``,
``with=contacts``, ``filter[pipeline_id][]``, ``filter[updated_at][from]``), ``GET /contacts``
(``filter[id][]``, ``page``, ``limit``), ``GET /contacts/{id}``, ``GET /leads/tags``. Lists page with
``_links.next`` and answer 204 when empty, as Kommo does. A wrong bearer token gets 401.

Switches for failure tests: ``fail_next`` (N responses with a status, e.g. 429 + ``Retry-After``, or 500),
``storm`` (a seeded random share of requests fail), ``slow_next`` (delay before answering), ``malformed_next``
(a 200 whose body is not JSON), ``raw_leads`` (undecodable lead items injected into a pipeline's first page).
Every request is logged with its arrival time; ``per_second()`` counts them per wall-clock second.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_kommo.data import Dataset, generate

API = "/api/v4"
MAX_LIMIT = 250


@dataclass
class Hit:
    at: float
    path: str
    query: dict[str, list[str]]
    status: int = 0


class FakeKommo:
    def __init__(self, data: Dataset | None = None, token: str = "t", port: int = 0) -> None:
        self.data = data if data is not None else generate(1000)
        self.token = token
        self.lock = threading.RLock()
        self.hits: list[Hit] = []
        self._faults: list[tuple[int, float | str | None, str | None]] = []  # (status, retry_after, path prefix)
        self._storm: tuple[float, tuple[int, ...], random.Random, str | None] | None = None
        self._slow: list[tuple[float, str | None]] = []
        self._malformed = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-kommo",
                                        daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeKommo:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeKommo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- switches -----------------------------------------------------------------------------------
    def fail_next(self, status: int, count: int = 1, retry_after: float | str | None = None,
                  path: str | None = None) -> None:
        with self.lock:
            self._faults.extend([(status, retry_after, path)] * count)

    def storm(self, rate: float, statuses: tuple[int, ...] = (429, 500), seed: int = 7,
              retry_after: str | None = "0") -> None:
        with self.lock:
            self._storm = (rate, statuses, random.Random(seed), retry_after) if rate > 0 else None

    def slow_next(self, seconds: float, count: int = 1, path: str | None = None) -> None:
        with self.lock:
            self._slow.extend([(seconds, path)] * count)

    def malformed_next(self, count: int = 1) -> None:
        with self.lock:
            self._malformed += count

    def reset(self) -> None:
        with self.lock:
            self.hits.clear()
            self._faults.clear()
            self._storm = None
            self._slow.clear()
            self._malformed = 0

    # -- data edits -------------------------------------------------------------------------------------
    def touch_lead(self, lead_id: int, **changes: Any) -> None:
        with self.lock:
            lead = self.data.leads[lead_id]
            lead.update(changes)
            lead["updated_at"] = int(time.time())

    def add_lead(self, lead: dict[str, Any]) -> None:
        with self.lock:
            lead.setdefault("updated_at", int(time.time()))
            lead.setdefault("tags", [])
            lead.setdefault("contacts", [])
            self.data.leads[lead["id"]] = lead

    def delete_pipeline(self, pipeline_id: int) -> None:
        with self.lock:
            self.data.pipelines.pop(pipeline_id, None)
            for lead_id in [k for k, v in self.data.leads.items() if v["pipeline_id"] == pipeline_id]:
                del self.data.leads[lead_id]

    # -- observations ---------------------------------------------------------------------------------
    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for h in self.hits if h.path == path)

    def per_second(self) -> Counter[int]:
        with self.lock:
            return Counter(int(h.at) for h in self.hits)

    def paths(self) -> list[str]:
        with self.lock:
            return [h.path for h in self.hits]

    # -- HTTP ------------------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls
            wbufsize = 1 << 16

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                fake._serve(self)

        return Handler

    def _serve(self, req: BaseHTTPRequestHandler) -> None:
        split = urlsplit(req.path)
        path = split.path[len(API):] if split.path.startswith(API) else split.path
        query = parse_qs(split.query, keep_blank_values=True)
        hit = Hit(time.time(), path, query)
        with self.lock:
            self.hits.append(hit)
            delay = 0.0
            for index, (_seconds, prefix) in enumerate(self._slow):
                if prefix is None or path.startswith(prefix):
                    delay = self._slow.pop(index)[0]
                    break
            fault = None
            for index, candidate in enumerate(self._faults):
                if candidate[2] is None or path.startswith(candidate[2]):
                    fault = self._faults.pop(index)
                    break
            if fault is None and self._storm is not None:
                rate, statuses, rnd, retry_after = self._storm
                if rnd.random() < rate:
                    fault = (statuses[rnd.randrange(len(statuses))], retry_after, None)
            malformed = False
            if fault is None and self._malformed and path != "/account":
                self._malformed -= 1
                malformed = True
        if delay:
            time.sleep(delay)
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            return self._send(req, hit, 401, {"title": "Unauthorized", "status": 401})
        if fault is not None:
            status, retry_after, _ = fault
            headers = [("Retry-After", str(retry_after))] if retry_after is not None and status == 429 else []
            return self._send(req, hit, status, {"title": "fault", "status": status}, headers)
        if malformed:
            return self._send_raw(req, hit, 200, b'{"_embedded": {"leads": [ {"id": 1, ')
        try:
            status, body = self._route(path, query)
        except (KeyError, ValueError):
            status, body = 400, {"title": "Bad request"}
        self._send(req, hit, status, body)

    def _send(self, req: BaseHTTPRequestHandler, hit: Hit, status: int, body: Any,
              headers: list[tuple[str, str]] | None = None) -> None:
        raw = b"" if status == 204 else json.dumps(body, ensure_ascii=False).encode()
        self._send_raw(req, hit, status, raw, headers)

    @staticmethod
    def _send_raw(req: BaseHTTPRequestHandler, hit: Hit, status: int, raw: bytes,
                  headers: list[tuple[str, str]] | None = None) -> None:
        hit.status = status
        try:
            req.send_response(status)
            req.send_header("Content-Type", "application/hal+json")
            req.send_header("Content-Length", str(len(raw)))
            for name, value in headers or []:
                req.send_header(name, value)
            req.end_headers()
            if raw:
                req.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def _route(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        with self.lock:
            if path == "/account":
                return 200, dict(self.data.account)
            if path == "/leads/pipelines":
                return 200, {"_total_items": len(self.data.pipelines),
                             "_embedded": {"pipelines": [self._pipeline(p) for p in self.data.pipelines.values()]}}
            if path == "/leads/tags":
                items = [{"id": k, "name": v, "color": None} for k, v in sorted(self.data.tags.items())]
                return self._page("/leads/tags", "tags", items, query)
            if path == "/leads":
                return self._leads(query)
            if path == "/contacts":
                wanted = {int(v) for v in query.get("filter[id][]", [])}
                items = [self.data.contacts[c] for c in sorted(wanted) if c in self.data.contacts] if wanted \
                    else [self.data.contacts[c] for c in sorted(self.data.contacts)]
                return self._page("/contacts", "contacts", items, query)
            if path.startswith("/contacts/"):
                contact = self.data.contacts.get(int(path.rsplit("/", 1)[1]))
                return (200, contact) if contact is not None else (404, {"title": "Not found"})
        return 404, {"title": "Not found"}

    @staticmethod
    def _pipeline(p: dict[str, Any]) -> dict[str, Any]:
        return {"id": p["id"], "name": p["name"], "sort": p["sort"], "is_main": p["is_main"],
                "is_unsorted_on": True, "account_id": 31337, "_embedded": {"statuses": p["statuses"]}}

    def _leads(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        pipelines = {int(v) for v in query.get("filter[pipeline_id][]", [])}
        since = int(query["filter[updated_at][from]"][0]) if "filter[updated_at][from]" in query else None
        items: list[Any] = []
        for pid in sorted(pipelines):
            items.extend(self.data.raw_leads.get(pid, []))  # malformed items lead the first page
        for lead_id in sorted(self.data.leads):
            lead = self.data.leads[lead_id]
            if pipelines and lead["pipeline_id"] not in pipelines:
                continue
            if since is not None and lead["updated_at"] < since:
                continue
            items.append(lead)  # rendered below, only for the requested page
        status, body = self._page("/leads", "leads", items, query)
        if status == 200:
            body["_embedded"]["leads"] = [
                self._lead_json(item) if isinstance(item, dict) and item.get("id") in self.data.leads
                and item is self.data.leads[item["id"]] else item
                for item in body["_embedded"]["leads"]
            ]
        return status, body

    def _lead_json(self, lead: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": lead["id"], "name": lead["name"], "price": lead.get("price", 0), "responsible_user_id": 1,
            "group_id": 0, "status_id": lead["status_id"], "pipeline_id": lead["pipeline_id"],
            "created_at": lead["updated_at"], "updated_at": lead["updated_at"], "custom_fields_values": None,
            "_embedded": {
                "tags": [{"id": t, "name": self.data.tags[t], "color": None} for t in lead["tags"]],
                "contacts": [{"id": c, "is_main": n == 0, "_links": {"self": {"href": f"/api/v4/contacts/{c}"}}}
                             for n, c in enumerate(lead["contacts"])],
            },
        }

    def _page(self, path: str, key: str, items: list[Any], query: dict[str, list[str]]) -> tuple[int, Any]:
        page = max(1, int(query.get("page", ["1"])[0]))
        limit = min(MAX_LIMIT, max(1, int(query.get("limit", ["50"])[0])))
        chunk = items[(page - 1) * limit: page * limit]
        if not chunk:
            return 204, None
        links: dict[str, Any] = {"self": {"href": f"{self.url}{API}{path}?page={page}&limit={limit}"}}
        if page * limit < len(items):
            links["next"] = {"href": f"{self.url}{API}{path}?page={page + 1}&limit={limit}"}
        return 200, {"_page": page, "_links": links, "_embedded": {key: chunk}}
