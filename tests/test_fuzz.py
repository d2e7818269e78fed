"""Schemathesis over the whole OpenAPI document (GET /api/openapi.json) against the live test server.

Every operation gets a bounded, derandomized run (tests/fuzz_support.py: ``MAX_EXAMPLES``, ``SEED``) of
schema-valid and schema-violating requests, authenticated as a seeded tenant; path parameters (and ID
fields of bodies and query strings) are either generated or, when Hypothesis draws so, the ID of a real row
of that tenant (so requests get past 404 and filters match rows).
Each response must pass:

* ``not_a_server_error``        – no 5xx (the accepted exceptions below, with their reasons);
* ``status_code_conformance``   – the status is documented for the operation;
* ``content_type_conformance``  – the Content-Type is the documented one;
* ``response_schema_conformance`` – the body validates against the documented schema (success bodies and
  the ``{"success": false, "error": ...}`` envelope of 4xx/5xx).

A second test walks the document's links (create → read/update/delete of the created ID) as a state
machine. ``make fuzz`` runs both with many more examples (FUZZ_MAX_EXAMPLES, FUZZ_STATEFUL_*).

Nothing is excluded. Operations that need care:

* ``POST /api/auth/logout`` revokes every token of its user: it runs with a fresh token of a second user
  of the tenant, so the fuzzing token stays valid.
* ``/api/admin/...`` run with the tenant's (non super-admin) token and must answer the documented 4XX
  (403); the super-admin paths are covered by tests/test_admin.py.
* ``/api/kommo/...`` (all but ``/status``) answer ``503 Kommo not configured`` on a server without Kommo
  credentials (the test server has none). That 503 is the documented, deliberate answer (README, Kommo
  section) and is accepted for exactly that body; the response must still conform to the schema.
* ``GET /api/media/upload-url`` answers ``501`` (presigned uploads need S3; the test server stores media
  locally). The operation documents that 501; it is accepted for exactly that body, like the Kommo 503.

Query parameters are documented per route (clarin/wire/queries.py), so they are generated too.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from clarin.app import app
from clarin.http.openapi import build_openapi
from clarin.storage.routes import PRESIGN_UNSUPPORTED
from tests import support
from tests.fuzz_support import MAX_EXAMPLES, SEED, STATEFUL_EXAMPLES, STATEFUL_STEPS, Seeded, seed_tenant

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
KOMMO_NOT_CONFIGURED = "Kommo not configured"
LOGOUT_PATH = "/api/auth/logout"
# `{"delete_all": true}` removes every lead / chat of the account: these run as a second seeded tenant so
# the fixture rows of the main one survive for the operations that come after them.
WIPES_ACCOUNT = frozenset({("DELETE", "/api/leads/batch"), ("DELETE", "/api/chats/batch")})
REQUEST_TIMEOUT = 15


def _config(token: str | None = None, *, stateful: bool = False) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        **({"headers": {"Authorization": f"Bearer {token}"}} if token else {}),
        "request-timeout": REQUEST_TIMEOUT,
        # Valid and schema-violating requests per operation; the state machine sends valid ones only, so
        # that creates succeed and their links (not inferred ones: the document's own) get followed.
        "generation": {"mode": "positive" if stateful else "all", "max-examples": MAX_EXAMPLES,
                       "deterministic": True},
        # Examples (none are declared) and fuzzing; the coverage phase's exhaustive boundary sweep is the
        # CLI's job (`make fuzz` raises the example count instead).
        "phases": {"examples": {"enabled": True}, "fuzzing": {"enabled": True},
                   "coverage": {"enabled": False},
                   "stateful": {"enabled": stateful, "inference": {"algorithms": []}}},
        # Generation speed is not what this test measures (some bodies have many constrained fields).
        "suppress-health-check": ["all"],
    })


@pytest.fixture(scope="module")
def seeded(server: support.ServerProcess, make_tenant: Any, admin_token: str, database: str) -> Seeded:
    admin = support.auth(admin_token)
    seeded = seed_tenant(server.url, make_tenant(), admin, database)
    seeded.spare = seed_tenant(server.url, make_tenant(), admin, database)
    return seeded


# Deliberate 5xx answers of this server, accepted for exactly this (path prefix, status, error message).
ACCEPTED_SERVER_ERRORS = (
    ("/api/kommo/", 503, KOMMO_NOT_CONFIGURED),
    ("/api/media/upload-url", 501, PRESIGN_UNSUPPORTED),
)


def _is_deliberate_server_error(case: schemathesis.Case, response: schemathesis.Response) -> bool:
    for prefix, status, message in ACCEPTED_SERVER_ERRORS:
        if case.operation.path.startswith(prefix) and response.status_code == status:
            try:
                return json.loads(response.content).get("error") == message
            except (ValueError, AttributeError):
                return False
    return False


# Framing headers belong to the HTTP client. A generated `content-length: E` is refused by the HTTP layer
# (hyper answers 400 with no body) before the application sees a request, so it tests nothing of ours.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection"})


def _drop_framing_headers(case: schemathesis.Case) -> None:
    for name in [name for name in case.headers or {} if name.lower() in FRAMING_HEADERS]:
        del case.headers[name]


NOT_UUID_PARAMS = frozenset({"type", "key"})  # the entity kind of /api/tags/entity, a media storage key


def _use_known_ids(case: schemathesis.Case, seeded: Seeded) -> None:
    """Swap generated path parameters for the IDs of real rows. Only schema-valid (UUID) values are swapped,
    so malformed-ID cases stay malformed; the record a DELETE targets keeps its random ID, so the fixture
    rows survive the run (the stateful test deletes rows it created itself)."""
    names = list(case.path_parameters or {})
    if case.method.upper() == "DELETE" and names:
        names = names[:-1]
    for name in names:
        known = seeded.known_value(case.operation.path, name)
        value = case.path_parameters[name]
        if known is None:
            continue
        if name not in NOT_UUID_PARAMS:
            try:
                uuid.UUID(str(value))
            except ValueError:
                continue
        case.path_parameters[name] = known


def _use_known_body_values(case: schemathesis.Case, seeded: Seeded) -> None:
    """Same for the top-level ID fields of a JSON body (``device_id``, ``stage_id``, ``lead_id`` ...): string
    values become the IDs of real rows (a connected device for sends), other types stay as generated."""
    if not isinstance(case.body, dict):
        return
    for key, value in case.body.items():
        if isinstance(value, str) and key in seeded.body_ids:
            case.body[key] = seeded.body_ids[key]


# List query parameters of IDs (``tag_ids``, the participants' ``tags``, ``device_ids``) -> the body_ids key of
# the real row their entries become.
LIST_QUERY_IDS = {"tag_ids": "tag_id", "tags": "tag_id", "device_ids": "device_id"}


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _use_known_query_values(case: schemathesis.Case, seeded: Seeded) -> None:
    """Same for ID query parameters (``device_id``, ``lead_id``, ``pipeline_id``, ``tag_ids`` ...), so filters
    match real rows: only UUID values are swapped, malformed ones stay malformed."""
    query = case.query if isinstance(case.query, dict) else {}
    for key, value in query.items():
        if key in seeded.body_ids and _is_uuid(value):
            query[key] = seeded.body_ids[key]
        elif key in LIST_QUERY_IDS and isinstance(value, list) and value and all(map(_is_uuid, value)):
            query[key] = [seeded.body_ids[LIST_QUERY_IDS[key]]] * len(value)


def _validate(case: schemathesis.Case, response: schemathesis.Response) -> None:
    excluded = [not_a_server_error] if _is_deliberate_server_error(case, response) else []
    case.validate_response(response, checks=[c for c in CHECKS if c not in excluded])


def _fresh_logout_headers(server_url: str, seeded: Seeded) -> dict[str, str]:
    username, password = seeded.logout_user
    return support.auth(support.login(server_url, username, password))


# The document the server serves, built from the same route table at import time so pytest collects one
# test per operation (schemathesis' lazy `from_fixture` loader does not run on pytest 9);
# test_served_document_is_the_fuzzed_one pins that the live server answers exactly this document.
DOCUMENT = build_openapi(app.router.routes)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=_config())


@schema.parametrize()
@schema.given(known_ids=st.booleans())
def test_every_operation(case: schemathesis.Case, known_ids: bool, seeded: Seeded,
                         server: support.ServerProcess) -> None:
    if (case.method.upper(), case.operation.path) in WIPES_ACCOUNT:
        assert seeded.spare is not None
        seeded = seeded.spare
    if known_ids:
        _use_known_ids(case, seeded)
        _use_known_body_values(case, seeded)
        _use_known_query_values(case, seeded)
    _drop_framing_headers(case)
    auth = support.auth(seeded.token)
    if case.operation.path == LOGOUT_PATH:
        auth = _fresh_logout_headers(server.url, seeded)
    response = case.call(base_url=server.url, headers=auth, timeout=REQUEST_TIMEOUT)
    _validate(case, response)


def test_served_document_is_the_fuzzed_one(client: httpx.Client) -> None:
    assert client.get("/api/openapi.json").json() == json.loads(json.dumps(DOCUMENT))


def test_stateful_links(server: support.ServerProcess, seeded: Seeded) -> None:
    """Create → use → delete through the document's links (``POST /api/leads`` → ``GET/PUT/DELETE
    /api/leads/{id}`` ...), with the same checks; logout is left out so the token survives the walk."""
    loaded = schemathesis.openapi.from_url(server.url + "/api/openapi.json", config=_config(seeded.token, stateful=True))
    loaded = loaded.exclude(path=LOGOUT_PATH)
    machine = loaded.as_state_machine()

    failures: list[str] = []

    class Workflow(machine):  # type: ignore[misc,valid-type]
        def validate_response(self, response: schemathesis.Response, case: schemathesis.Case,
                              additional_checks: Any = (), **kwargs: Any) -> None:
            try:
                _validate(case, response)
            except Exception as exc:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {exc}")
                raise

    try:
        run_state_machine_as_test(Workflow, settings=settings(
            max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS, derandomize=True, deadline=None,
            database=None, suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
        ))
    except Flaky:
        # The machine's choices depend on the server's answers (a link is only followed after a 201), so
        # Hypothesis can see two runs of one prefix diverge and call the generation flaky; schemathesis'
        # own runner treats that the same way. Only a check failure recorded on the way fails the test.
        assert not failures, failures


def test_document_is_valid_openapi(client: httpx.Client) -> None:
    """The fuzzer refuses malformed documents; assert it loads and sees every route (nothing filtered)."""
    doc = client.get("/api/openapi.json").json()
    loaded = schemathesis.openapi.from_dict(doc)
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert len(operations) == sum(len(methods) for methods in doc["paths"].values())


def test_nul_in_free_form_json_is_a_400(client: httpx.Client, seeded: Seeded) -> None:
    """Found by this fuzzer: a NUL in a key or string of campaign ``settings`` or recipient ``metadata``
    (stored as jsonb, which refuses ``\\u0000``) answered 500; it is a 400 and nothing is written."""
    h = support.auth(seeded.token)
    device_id = client.post("/api/devices", headers=h, json={"name": "NUL phone"}).json()["device"]["id"]
    create = client.post("/api/campaigns", headers=h, json={
        "name": "nul", "device_id": device_id, "message_template": "x", "settings": {"a\u0000": 1}})
    assert create.status_code == 400 and create.json() == {
        "success": False, "error": "Request contains invalid characters",
        "detail": "NUL character (\\u0000) in a string"}
    campaign = client.post("/api/campaigns", headers=h, json={"name": "ok", "device_id": device_id,
                                                              "message_template": "x"})
    campaign_id = campaign.json()["campaign"]["id"]
    before = client.get(f"/api/campaigns/{campaign_id}", headers=h).json()["campaign"]["settings"]
    update = client.put(f"/api/campaigns/{campaign_id}", headers=h, json={"settings": {"k": ["\u0000"]}})
    assert update.status_code == 400, update.text
    assert client.get(f"/api/campaigns/{campaign_id}", headers=h).json()["campaign"]["settings"] == before
    recipients = client.post(f"/api/campaigns/{campaign_id}/recipients", headers=h, json={
        "recipients": [{"jid": "51911122233@s.whatsapp.net", "metadata": {"k": "a\u0000b"}}]})
    assert recipients.status_code == 400 and recipients.json()["error"] == "Request contains invalid characters"


def test_lead_custom_fields_take_any_json_number(client: httpx.Client, seeded: Seeded) -> None:
    """Found by this fuzzer: lead ``custom_fields`` holding an integer beyond 32 bits (a phone number stored
    as a number) answered 500 on every later update of the lead; they are stored as sent."""
    h = support.auth(seeded.token)
    lead = client.post("/api/leads", headers=h, json={"name": "Big numbers", "phone": "51999000333"})
    lead_id = lead.json()["lead"]["id"]
    fields = {"phone_number": 51999111222, "big": -(2**63), "ratio": 1.5, "nested": [{"n": 2**40}, None]}
    update = client.put(f"/api/leads/{lead_id}", headers=h, json={"custom_fields": fields})
    assert update.status_code == 200, update.text
    assert update.json()["lead"]["custom_fields"] == fields
    renamed = client.put(f"/api/leads/{lead_id}", headers=h, json={"name": "Renamed"})
    assert renamed.status_code == 200 and renamed.json()["lead"]["custom_fields"] == fields
