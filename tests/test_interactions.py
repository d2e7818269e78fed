"""Interactions R98–R100, R45 and R99 filters: shapes, participant side effects, isolation, live events."""

from __future__ import annotations

import uuid

from tests.crm_helpers import (
    U,
    count,
    expect_event,
    expect_silence,
    insert_contact,
    insert_event,
    insert_interaction,
    insert_lead,
    insert_participant,
    new_jid,
    one,
    socket,
)
from tests.support import run_sql

INTERACTION_KEYS = {"id", "account_id", "type", "created_by", "created_at", "created_by_name"}


def log(client, tenant, **fields):
    return client.post("/api/interactions", json={"type": "call", **fields}, headers=tenant.headers)


def test_create_shape_and_live_events(server, client, make_tenant, database):
    tenant, other = make_tenant(), make_tenant()
    contact = insert_contact(database, tenant.account_id)
    lead = insert_lead(database, tenant.account_id, new_jid())
    event = insert_event(database, tenant.account_id, "Charla")
    participant = insert_participant(database, event, "Ana")
    with socket(server, tenant.token) as ws, socket(server, other.token) as foreign_ws:
        r = log(client, tenant, contact_id=contact, lead_id=lead, participant_id=participant, direction="outbound",
                outcome="no_answer", notes="n")
        assert r.status_code == 201, r.text
        body = r.json()
        assert set(body) == {"success", "interaction"}
        item = body["interaction"]
        assert set(item) == INTERACTION_KEYS | {"contact_id", "lead_id", "event_id", "participant_id", "direction",
                                                "outcome", "notes", "event_name"}
        assert item["event_id"] == event  # taken from the participant
        assert item["event_name"] == "Charla" and item["created_by"] == tenant.user_id
        assert item["created_by_name"].startswith("User ")
        expect_event(ws, "interaction_update", action="created", interaction_id=item["id"], contact_id=contact,
                     lead_id=lead, event_id=event)
        expect_event(ws, "participant_update", action="updated", event_id=event, participant_id=participant)
        expect_silence(foreign_ws)

        r = client.delete(f"/api/interactions/{item['id']}", headers=tenant.headers)
        assert r.status_code == 200 and r.json() == {"success": True}
        expect_event(ws, "interaction_update", action="deleted", interaction_id=item["id"], contact_id=contact)
        expect_silence(foreign_ws)
    assert client.delete(f"/api/interactions/{item['id']}", headers=tenant.headers).status_code == 404
    r = client.delete("/api/interactions/nope", headers=tenant.headers)
    assert r.status_code == 400 and r.json()["error"] == "Invalid interaction ID"

    minimal = log(client, tenant, type="note").json()["interaction"]
    assert set(minimal) == INTERACTION_KEYS


def test_create_validation_changes_nothing(client, make_tenant, database):
    tenant, other = make_tenant(), make_tenant()
    event = insert_event(database, tenant.account_id)
    other_event = insert_event(database, tenant.account_id)
    participant = insert_participant(database, event, "Ana")
    foreign_contact = insert_contact(database, other.account_id)
    foreign_lead = insert_lead(database, other.account_id, new_jid())
    foreign_event = insert_event(database, other.account_id)
    foreign_participant = insert_participant(database, foreign_event, "X")
    for fields, status, message in [
        ({"type": ""}, 400, "Type is required"),
        ({"type": "   "}, 400, "Type is required"),
        ({"type": 1}, 400, "Invalid request"),
        ({"contact_id": "nope"}, 400, "Invalid contact ID"),
        ({"lead_id": "nope"}, 400, "Invalid lead ID"),
        ({"event_id": "nope"}, 400, "Invalid event ID"),
        ({"participant_id": "nope"}, 400, "Invalid participant ID"),
        ({"next_action_date": "later"}, 400, "Invalid request"),
        ({"contact_id": foreign_contact}, 404, "contact not found"),
        ({"lead_id": foreign_lead}, 404, "Lead not found"),
        ({"event_id": foreign_event}, 404, "Event not found"),
        ({"participant_id": foreign_participant}, 404, "Participant not found"),
        ({"participant_id": participant, "event_id": other_event}, 400, "Participant does not belong to this event"),
    ]:
        r = log(client, tenant, **fields)
        assert r.status_code == status, (fields, r.text)
        assert r.json()["error"] == message
    assert count(database, "SELECT count(*) FROM interactions WHERE account_id = $1", [U(tenant.account_id)]) == 0
    assert one(database, "SELECT status FROM event_participants WHERE id = $1", [U(participant)])["status"] == "invited"


def test_outcome_side_effects_on_participant(client, tenant, database):
    event = insert_event(database, tenant.account_id)
    invited = insert_participant(database, event, "Invited")
    confirmed = insert_participant(database, event, "Confirmed", status="confirmed")
    decliner = insert_participant(database, event, "Decliner")
    closer = insert_participant(database, event, "Closer")

    def state(pid):
        return one(database, "SELECT status, confirmed_at, next_action, next_action_date FROM event_participants "
                             "WHERE id = $1", [U(pid)])

    assert log(client, tenant, participant_id=invited, outcome="answered").status_code == 201
    assert state(invited)["status"] == "contacted"
    assert log(client, tenant, participant_id=confirmed, outcome="callback").status_code == 201
    assert state(confirmed)["status"] == "confirmed"  # only invited → contacted
    assert log(client, tenant, participant_id=decliner, outcome="declined").status_code == 201
    assert state(decliner)["status"] == "declined"
    r = log(client, tenant, participant_id=closer, outcome="confirmed", next_action="enviar ubicación")
    assert r.status_code == 201
    row = state(closer)
    assert row["status"] == "confirmed" and row["confirmed_at"] is not None
    assert row["next_action"] == "enviar ubicación" and row["next_action_date"] is None
    log(client, tenant, participant_id=closer, next_action_date="2030-01-01T10:00:00Z")
    row = state(closer)
    assert row["next_action"] is None and row["next_action_date"] is not None  # both copied, absent → NULL
    log(client, tenant, participant_id=closer, notes="no next action")
    assert state(closer)["next_action_date"] is not None  # untouched without next_action/_date


def test_list_by_filter_priority_and_paging(client, tenant, database):
    contact = insert_contact(database, tenant.account_id)
    lead = insert_lead(database, tenant.account_id, new_jid())
    event = insert_event(database, tenant.account_id)
    participant = insert_participant(database, event, "Ana")
    by_contact = [insert_interaction(database, tenant.account_id, contact_id=contact) for _ in range(3)]
    run_sql(database, "UPDATE interactions SET created_at = created_at - (interval '1 minute' * "
                      "array_position($1::uuid[], id)) WHERE id = ANY($1)", [[U(i) for i in by_contact]])
    by_lead = insert_interaction(database, tenant.account_id, lead_id=lead)
    by_event = insert_interaction(database, tenant.account_id, event_id=event)
    by_participant = insert_interaction(database, tenant.account_id, participant_id=participant, event_id=event)

    def ids(**params):
        r = client.get("/api/interactions", params=params, headers=tenant.headers)
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"success", "interactions"}
        return [i["id"] for i in r.json()["interactions"]]

    assert ids(contact_id=contact) == by_contact  # newest first
    assert ids(contact_id=contact, limit=2, offset=1) == by_contact[1:]
    assert ids(lead_id=lead) == [by_lead]
    assert sorted(ids(event_id=event)) == sorted([by_event, by_participant])
    assert ids(participant_id=participant, event_id=event, contact_id=contact) == [by_participant]
    assert ids(participant_id="bad", lead_id=lead) == [by_lead]  # first *valid* id wins
    assert ids(contact_id=str(uuid.uuid4())) == []
    r = client.get("/api/interactions", params={"contact_id": "bad"}, headers=tenant.headers)
    assert r.status_code == 400
    assert r.json()["error"] == "Provide participant_id, event_id, contact_id, or lead_id query parameter"


def test_lead_interactions_route(client, make_tenant, database):
    tenant, other = make_tenant(), make_tenant()
    lead = insert_lead(database, tenant.account_id, new_jid())
    items = [insert_interaction(database, tenant.account_id, lead_id=lead) for _ in range(3)]
    r = client.get(f"/api/leads/{lead}/interactions", headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert sorted(i["id"] for i in r.json()["interactions"]) == sorted(items)
    assert len(client.get(f"/api/leads/{lead}/interactions", params={"limit": 1},
                          headers=tenant.headers).json()["interactions"]) == 1
    assert len(client.get(f"/api/leads/{lead}/interactions", params={"limit": 0},
                          headers=tenant.headers).json()["interactions"]) == 3
    empty = insert_lead(database, tenant.account_id, new_jid())
    assert client.get(f"/api/leads/{empty}/interactions", headers=tenant.headers).json() == {
        "success": True, "interactions": []}
    r = client.get("/api/leads/nope/interactions", headers=tenant.headers)
    assert r.status_code == 400 and r.json()["error"] == "Invalid lead ID"
    r = client.get(f"/api/leads/{lead}/interactions", headers=other.headers)
    assert r.status_code == 404 and r.json()["error"] == "Lead not found"


def test_other_tenant_cannot_read_or_delete(client, make_tenant, database):
    owner, intruder = make_tenant(), make_tenant()
    contact = insert_contact(database, owner.account_id)
    event = insert_event(database, owner.account_id)
    participant = insert_participant(database, event, "Ana")
    interaction = log(client, owner, contact_id=contact, participant_id=participant).json()["interaction"]["id"]
    before = one(database, "SELECT * FROM interactions WHERE id = $1", [U(interaction)])
    r = client.delete(f"/api/interactions/{interaction}", headers=intruder.headers)
    assert r.status_code == 404 and r.json()["error"] == "Interaction not found"
    for params in ({"contact_id": contact}, {"event_id": event}, {"participant_id": participant}):
        assert client.get("/api/interactions", params=params, headers=intruder.headers).json()["interactions"] == []
    assert one(database, "SELECT * FROM interactions WHERE id = $1", [U(interaction)]) == before


def test_garbage_input_is_never_a_server_error(client, tenant, database):
    """Wrong JSON shapes, NULs, odd ids and extreme paging on every route of the three modules: always 4xx/2xx."""
    contact = insert_contact(database, tenant.account_id)
    event = insert_event(database, tenant.account_id)
    participant = insert_participant(database, event, "Ana")
    lead = insert_lead(database, tenant.account_id, new_jid())
    bodies = [b"[]", b'"x"', b"5", b"null", b"{", b'{"name": "a\\u0000b"}', b'{"type": "a\\u0000"}',
              b'{"ids": [1]}', b'{"participants": [{"name": null}]}', b'{"status": ["x"]}',
              b'{"keep_id": "%s", "merge_ids": ["%s", "%s"]}' % (contact.encode(), contact.encode(), contact.encode())]
    writes = [
        ("POST", "/api/contacts/merge"), ("DELETE", "/api/contacts/batch"), ("PUT", f"/api/contacts/{contact}"),
        ("POST", "/api/events"), ("PUT", f"/api/events/{event}"), ("POST", f"/api/events/{event}/participants"),
        ("POST", f"/api/events/{event}/participants/bulk"),
        ("PUT", f"/api/events/{event}/participants/{participant}"),
        ("PATCH", f"/api/events/{event}/participants/{participant}/status"), ("POST", "/api/interactions"),
    ]
    for method, path in writes:
        for raw in bodies:
            r = client.request(method, path, content=raw, headers={**tenant.headers, "content-type": "application/json"})
            assert r.status_code < 500, (method, path, raw, r.text)
    reads = [
        "/api/contacts?search=%00%25&tags=a%00b&tag_ids=&device_id=%00&limit=99999999999999999999&offset=-5",
        "/api/contacts?offset=999999999999999999999999",
        "/api/contacts/duplicates",
        f"/api/contacts/{contact}/interactions?limit=-1&offset=abc",
        f"/api/contacts/{contact}/events",
        "/api/events?status=%00&search=%5C&limit=-1",
        "/api/events/upcoming-actions?limit=99999999999",
        f"/api/events/{event}/participants?search=%00&tags=,,&status=%00&has_phone=true",
        f"/api/interactions?event_id={event}&limit=100000&offset=100000000000",
        f"/api/leads/{lead}/interactions?limit=abc",
        "/api/contacts/%00", "/api/events/%00", f"/api/events/{event}/participants/%00",
    ]
    for path in reads:
        r = client.get(path, headers=tenant.headers)
        assert r.status_code < 500, (path, r.text)
