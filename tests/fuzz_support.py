"""Helpers for tests/test_fuzz.py: a tenant with one real row of each kind (so fuzzed requests can get past
404) and the table that maps a path parameter of an operation to one of those rows."""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.crm_helpers import insert_chat, insert_contact, new_jid
from tests.inbox_support import connected_device, upload

# Examples per operation: small in `make test`, larger in `make fuzz` (FUZZ_MAX_EXAMPLES=...).
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
# Fixed seed: the same requests on every run (derandomized), so a failure reproduces; FUZZ_SEED varies it.
SEED = int(os.environ.get("FUZZ_SEED", "20261124"))
# Stateful run (links between create and item operations): scenarios and steps per scenario.
STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "20"))
STATEFUL_STEPS = int(os.environ.get("FUZZ_STATEFUL_STEPS", "8"))


MEDIA_PREFIX = "/api/media/file/"
# One tiny valid PNG (1x1, transparent).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@dataclass
class Seeded:
    """The fuzzed tenant: its token and the IDs of its rows, keyed by ``(path prefix, parameter name)``."""

    token: str
    logout_user: tuple[str, str]  # (username, password) of a second user whose tokens logout may revoke
    ids: dict[tuple[str, str], str] = field(default_factory=dict)
    spare: Seeded | None = None  # a second seeded tenant for the operations that can wipe a whole account
    body_ids: dict[str, str] = field(default_factory=dict)  # JSON body field name -> a real value

    def known_value(self, path: str, name: str) -> str | None:
        """The ID of a real row for parameter ``name`` of the operation at ``path`` (longest prefix wins)."""
        for (prefix, param), value in sorted(self.ids.items(), key=lambda item: -len(item[0][0])):
            if param == name and path.startswith(prefix + "/"):
                return value
        return None


def _created(response: httpx.Response, key: str) -> str:
    assert response.status_code in (200, 201), response.text
    return str(response.json()[key]["id"])


def seed_tenant(url: str, tenant: Any, admin_headers: dict[str, str], dsn: str) -> Seeded:
    """One row of each kind through the API (contacts and chats have no create route: SQL, as in the
    feature tests), plus a second user of the same account for the logout operation."""
    h = tenant.headers
    with httpx.Client(base_url=url, headers=h, timeout=15) as c:
        pipeline = c.post("/api/pipelines", json={"name": "Fuzz pipeline"})
        pipeline_id = _created(pipeline, "pipeline")
        stage_id = _created(c.post(f"/api/pipelines/{pipeline_id}/stages", json={"name": "New", "color": "#fff"}),
                            "stage")
        lead_id = _created(c.post("/api/leads", json={"name": "Fuzz lead", "phone": "51999000111",
                                                      "stage_id": stage_id}), "lead")
        tag_id = _created(c.post("/api/tags", json={"name": "fuzz", "color": "#000"}), "tag")
        jid = new_jid()
        contact_id = insert_contact(dsn, tenant.account_id, jid, name="Fuzz contact")
        chat_id = insert_chat(dsn, tenant.account_id, jid)
        event_id = _created(c.post("/api/events", json={"name": "Fuzz event"}), "event")
        participant_id = _created(
            c.post(f"/api/events/{event_id}/participants", json={"name": "Ana", "phone": "51999000222"}),
            "participant",
        )
        interaction_id = _created(c.post("/api/interactions", json={"type": "note", "lead_id": lead_id}),
                                  "interaction")
        reply_id = _created(c.post("/api/quick-replies", json={"shortcut": "/hi", "title": "Hi", "body": "Hello"}),
                            "quick_reply")
        device_id = _created(c.post("/api/devices", json={"name": "Fuzz phone"}), "device")
        # A second device, connected (the simulated driver pairs at once), for the body's ``device_id`` of
        # sends: the first one is the path parameter of connect/disconnect/delete and changes state.
        sender = connected_device(c, h, "Fuzz sender")
        campaign_id = _created(
            c.post("/api/campaigns", json={"name": "Fuzz campaign", "device_id": device_id,
                                           "message_template": "Hola {{name}}"}),
            "campaign",
        )
        assert c.post(f"/api/campaigns/{campaign_id}/recipients",
                      json={"recipients": [{"jid": jid, "name": "Fuzz"}]}).status_code == 200
        recipients = c.get(f"/api/campaigns/{campaign_id}/recipients").json()
        recipient_id = str(recipients["recipients"][0]["id"])
        media_url = upload(c, h, "fuzz.png", PNG, "image/png")
    media_key = media_url.split(MEDIA_PREFIX, 1)[1]
    suffix = uuid.uuid4().hex[:8]
    username, password = f"fuzz_logout_{suffix}", f"pw-{suffix}-secret"
    user = httpx.post(url + "/api/admin/users", headers=admin_headers, json={
        "account_id": tenant.account_id, "username": username, "email": f"{username}@example.test",
        "password": password, "display_name": "Logout", "role": "agent",
    })
    assert user.status_code == 201, user.text
    seeded = Seeded(token=tenant.token, logout_user=(username, password))
    seeded.ids = {
        ("/api/leads", "id"): lead_id,
        ("/api/pipelines", "id"): pipeline_id,
        ("/api/pipelines", "stageId"): stage_id,
        ("/api/tags", "id"): tag_id,
        ("/api/tags/entity", "type"): "lead",
        ("/api/tags/entity", "id"): lead_id,
        ("/api/contacts", "id"): contact_id,
        ("/api/chats", "id"): chat_id,
        ("/api/events", "id"): event_id,
        ("/api/events", "pid"): participant_id,
        ("/api/interactions", "id"): interaction_id,
        ("/api/quick-replies", "id"): reply_id,
        ("/api/devices", "id"): device_id,
        ("/api/dev/whatsapp", "device_id"): device_id,
        ("/api/campaigns", "id"): campaign_id,
        ("/api/campaigns", "rid"): recipient_id,
        ("/api/media/file", "key"): media_key,
        # Super-admin routes answer 403 to the tenant whatever the ID; real IDs keep that check honest.
        ("/api/admin/accounts", "id"): tenant.account_id,
        ("/api/admin/users", "id"): tenant.user_id,
        ("/api/admin/users", "account_id"): tenant.account_id,
    }
    seeded.body_ids = {
        "device_id": str(sender["id"]), "stage_id": stage_id, "pipeline_id": pipeline_id, "lead_id": lead_id,
        "contact_id": contact_id, "event_id": event_id, "participant_id": participant_id, "chat_id": chat_id,
        "tag_id": tag_id, "entity_id": lead_id, "entity_type": "lead", "to": jid,
        "account_id": tenant.account_id,
    }
    return seeded
