"""Events & participants R85–R96: shapes, partial updates, counts, uniqueness, sync, isolation, live events."""

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
    insert_participant,
    insert_tag,
    one,
    socket,
    tag_participant,
)
from tests.support import run_sql

EVENT_KEYS = {"id", "account_id", "name", "status", "color", "created_at", "updated_at", "total_participants"}
PARTICIPANT_KEYS = {"id", "event_id", "name", "status", "invited_at", "created_at", "updated_at", "tags"}


def create_event(client, tenant, **fields) -> dict:
    r = client.post("/api/events", json={"name": "Feria", **fields}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return r.json()["event"]


def add_participant(client, tenant, event_id: str, **fields):
    return client.post(f"/api/events/{event_id}/participants", json={"name": "Ana", **fields}, headers=tenant.headers)


# -- R86 create / R88 get / R89 update / R90 delete --------------------------------------------------------
def test_create_get_update_delete(server, client, make_tenant, database):
    tenant, other = make_tenant(), make_tenant()
    with socket(server, tenant.token) as ws, socket(server, other.token) as foreign_ws:
        r = client.post("/api/events", json={"name": " Feria ", "event_date": "2030-05-01T10:00:00Z",
                                             "location": "Lima"}, headers=tenant.headers)
        assert r.status_code == 201, r.text
        body = r.json()
        assert set(body) == {"success", "event"}
        event = body["event"]
        assert set(event) == EVENT_KEYS | {"event_date", "location", "created_by"}
        assert event["name"] == "Feria" and event["status"] == "active" and event["color"] == "#3b82f6"
        assert event["created_by"] == tenant.user_id and event["total_participants"] == 0
        expect_event(ws, "event_update", action="created", event_id=event["id"])
        expect_silence(foreign_ws)

        event_id = event["id"]
        r = client.put(f"/api/events/{event_id}", json={"status": "completed", "description": "Desc"},
                       headers=tenant.headers)
        assert r.status_code == 200, r.text
        updated = r.json()["event"]
        assert updated["status"] == "completed" and updated["description"] == "Desc"
        assert updated["name"] == "Feria" and updated["location"] == "Lima"  # untouched keys kept
        assert updated["event_date"].startswith("2030-05-01T10:00:00")
        expect_event(ws, "event_update", action="updated", event_id=event_id)

        r = client.put(f"/api/events/{event_id}", json={"location": ""}, headers=tenant.headers)
        assert "location" not in r.json()["event"]

        got = client.get(f"/api/events/{event_id}", headers=tenant.headers).json()
        assert got["event"]["id"] == event_id and got["success"] is True

        participant = insert_participant(database, event_id, "P")
        insert_interaction(database, tenant.account_id, event_id=event_id)
        other_interaction = insert_interaction(database, tenant.account_id)
        r = client.delete(f"/api/events/{event_id}", headers=tenant.headers)
        assert r.status_code == 200 and r.json() == {"success": True}
        expect_event(ws, "event_update", action="deleted", event_id=event_id)
        expect_silence(foreign_ws)
    assert count(database, "SELECT count(*) FROM events WHERE id = $1", [U(event_id)]) == 0
    assert count(database, "SELECT count(*) FROM event_participants WHERE id = $1", [U(participant)]) == 0
    assert count(database, "SELECT count(*) FROM interactions WHERE event_id = $1", [U(event_id)]) == 0
    assert count(database, "SELECT count(*) FROM interactions WHERE id = $1", [U(other_interaction)]) == 1
    assert client.delete(f"/api/events/{event_id}", headers=tenant.headers).status_code == 404


def test_event_validation(client, tenant, database):
    for payload, message in [
        ({"name": "  "}, "Name is required"),
        ({}, "Name is required"),
        ({"name": "x", "event_date": "tomorrow"}, "Invalid request"),
        ({"name": "x", "event_date": "2030-01-01T10:00:00"}, "Invalid request"),  # no zone
        ({"name": 5}, "Invalid request"),
        ({"name": "x" * 256}, "Invalid request"),
        ({"name": "x", "event_date": "2030-01-02T00:00:00Z", "event_end": "2030-01-01T00:00:00Z"},
         "event_end must not be before event_date"),
    ]:
        r = client.post("/api/events", json=payload, headers=tenant.headers)
        assert r.status_code == 400, (payload, r.text)
        assert r.json()["error"] == message
    event = create_event(client, tenant)
    before = one(database, "SELECT name, updated_at FROM events WHERE id = $1", [U(event["id"])])
    assert client.put(f"/api/events/{event['id']}", json={"name": ""}, headers=tenant.headers).status_code == 400
    assert client.put(f"/api/events/{event['id']}", json={"name": None}, headers=tenant.headers).status_code == 200
    assert one(database, "SELECT name FROM events WHERE id = $1", [U(event["id"])])["name"] == before["name"]
    assert client.get("/api/events/nope", headers=tenant.headers).json() == {"success": False, "error": "Invalid event ID"}
    r = client.get(f"/api/events/{uuid.uuid4()}", headers=tenant.headers)
    assert r.status_code == 404 and r.json()["error"] == "Event not found"
    assert client.put(f"/api/events/{uuid.uuid4()}", json={"name": "x"}, headers=tenant.headers).status_code == 404


# -- R85 list ----------------------------------------------------------------------------------------------
def test_list_with_counts_and_filters(client, tenant, database):
    old = create_event(client, tenant, name="Old fair", event_date="2020-01-01T00:00:00Z")
    new = create_event(client, tenant, name="New fair", event_date="2031-01-01T00:00:00Z", status="draft")
    plain = create_event(client, tenant, name="100% plan", location="Cusco")
    insert_participant(database, new["id"], "a")
    insert_participant(database, new["id"], "b", status="confirmed")
    insert_participant(database, new["id"], "c", status="confirmed")

    r = client.get("/api/events", headers=tenant.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"success", "events", "total"} and body["total"] == 3
    assert [e["id"] for e in body["events"]] == [new["id"], plain["id"], old["id"]]
    assert body["events"][0]["participant_counts"] == {"confirmed": 2, "invited": 1}
    assert body["events"][0]["total_participants"] == 3
    assert "participant_counts" not in body["events"][1] and body["events"][1]["total_participants"] == 0

    def names(**params):
        return [e["name"] for e in client.get("/api/events", params=params, headers=tenant.headers).json()["events"]]

    assert names(status="draft") == ["New fair"]
    assert names(search="FAIR") == ["New fair", "Old fair"]
    assert names(search="%") == ["100% plan"]
    assert names(search="cusco") == ["100% plan"]
    page = client.get("/api/events", params={"limit": 1, "offset": 1}, headers=tenant.headers).json()
    assert [e["id"] for e in page["events"]] == [plain["id"]] and page["total"] == 3


# -- R87 upcoming actions ----------------------------------------------------------------------------------
def test_upcoming_actions(client, tenant, database):
    event = insert_event(database, tenant.account_id)
    soon = insert_participant(database, event, "soon")
    later = insert_participant(database, event, "later", status="contacted")
    done = insert_participant(database, event, "done", status="attended")
    insert_participant(database, event, "no date")
    for pid, offset in ((soon, "1 hour"), (later, "1 day"), (done, "1 minute")):
        run_sql(database, f"UPDATE event_participants SET next_action_date = now() + interval '{offset}', "
                          "next_action = 'call' WHERE id = $1", [U(pid)])
    tag = insert_tag(database, tenant.account_id, "hot")
    tag_participant(database, later, tag)
    r = client.get("/api/events/upcoming-actions", headers=tenant.headers)
    assert r.status_code == 200, r.text
    actions = r.json()["actions"]
    assert [a["id"] for a in actions] == [soon, later]
    assert actions[0]["tags"] == [] and [t["name"] for t in actions[1]["tags"]] == ["hot"]
    assert len(client.get("/api/events/upcoming-actions", params={"limit": 1}, headers=tenant.headers)
               .json()["actions"]) == 1


# -- participants ------------------------------------------------------------------------------------------
def test_add_participant_and_uniqueness(server, client, tenant, database):
    event = create_event(client, tenant)["id"]
    contact = insert_contact(database, tenant.account_id)
    with socket(server, tenant.token) as ws:
        r = add_participant(client, tenant, event, phone="51999", email="ana@x.test", contact_id=contact, age=30)
        assert r.status_code == 201, r.text
        body = r.json()
        assert set(body) == {"success", "participant"}
        p = body["participant"]
        assert set(p) == PARTICIPANT_KEYS | {"contact_id", "phone", "email", "age"}
        assert p["status"] == "invited" and p["tags"] == [] and p["event_id"] == event
        expect_event(ws, "participant_update", action="created", event_id=event, participant_id=p["id"])

    conflicts = [
        ({"phone": "51999"}, "Ya existe un participante con ese teléfono en este evento"),
        ({"email": "ana@x.test"}, "Ya existe un participante con ese email en este evento"),
        ({"contact_id": contact}, "Este contacto ya está registrado en este evento"),
    ]
    for fields, message in conflicts:
        r = add_participant(client, tenant, event, **fields)
        assert r.status_code == 409, r.text
        assert r.json()["error"] == message
    for fields, status, message in [
        ({"name": ""}, 400, "Name is required"),
        ({"contact_id": "nope"}, 400, "Invalid contact ID"),
        ({"contact_id": str(uuid.uuid4())}, 404, "contact not found"),
        ({"age": "x"}, 400, "Invalid request"),
    ]:
        r = add_participant(client, tenant, event, **fields)
        assert r.status_code == status, (fields, r.text)
        assert r.json()["error"] == message
    r = add_participant(client, tenant, str(uuid.uuid4()))
    assert r.status_code == 404 and r.json()["error"] == "Event not found"
    assert count(database, "SELECT count(*) FROM event_participants WHERE event_id = $1", [U(event)]) == 1
    # blank phone/email are not values: two participants without them are fine
    assert add_participant(client, tenant, event, name="B", phone="", email="").status_code == 201
    assert add_participant(client, tenant, event, name="C", phone="", email="").status_code == 201


def test_bulk_add_skips_duplicates(server, client, tenant, database):
    event = create_event(client, tenant)["id"]
    insert_participant(database, event, "Existing", phone="111")
    people = [
        {"name": "A", "phone": "111"},  # clashes with the existing row
        {"name": "B", "phone": "222"},
        {"name": "C", "phone": "222"},  # clashes within the batch
        {"name": "D", "email": "d@x.test"},
        {"name": "E"},
    ]
    with socket(server, tenant.token) as ws:
        r = client.post(f"/api/events/{event}/participants/bulk", json={"participants": people}, headers=tenant.headers)
        assert r.status_code == 200, r.text
        assert r.json() == {"success": True, "count": 5, "added": 3, "skipped": 2}
        expect_event(ws, "participant_update", action="bulk_created", event_id=event, count=3)
    names = [row["name"] for row in run_sql(database, "SELECT name FROM event_participants WHERE event_id = $1 "
                                                      "ORDER BY name", [U(event)])]
    assert names == ["B", "D", "E", "Existing"]
    # a bad row rejects the whole batch, nothing inserted
    before = count(database, "SELECT count(*) FROM event_participants WHERE event_id = $1", [U(event)])
    for payload, status in [
        ({"participants": [{"name": "Z"}, {"name": " "}]}, 400),
        ({"participants": [{"name": "Z", "contact_id": str(uuid.uuid4())}]}, 404),
        ({"participants": "x"}, 400),
    ]:
        assert client.post(f"/api/events/{event}/participants/bulk", json=payload,
                           headers=tenant.headers).status_code == status
    assert count(database, "SELECT count(*) FROM event_participants WHERE event_id = $1", [U(event)]) == before
    r = client.post(f"/api/events/{event}/participants/bulk", json={"participants": []}, headers=tenant.headers)
    assert r.json() == {"success": True, "count": 0, "added": 0, "skipped": 0}


def test_list_participants_filters_and_tags(client, tenant, database):
    event = create_event(client, tenant)["id"]
    a = insert_participant(database, event, "Ana", phone="51911")
    b = insert_participant(database, event, "Bruno", email="b@x.test", status="confirmed")
    c = insert_participant(database, event, "Carla_x", phone="51922")
    run_sql(database, "UPDATE event_participants SET next_action_date = now() WHERE id = $1", [U(c)])
    tag = insert_tag(database, tenant.account_id, "vip")
    tag_participant(database, b, tag)

    r = client.get(f"/api/events/{event}/participants", headers=tenant.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"success", "participants", "total"} and body["total"] == 3
    assert [p["id"] for p in body["participants"]] == [c, a, b]  # next_action_date first, then name
    assert all(isinstance(p["tags"], list) for p in body["participants"])
    assert [t["id"] for t in body["participants"][2]["tags"]] == [tag]

    def ids(**params):
        r = client.get(f"/api/events/{event}/participants", params=params, headers=tenant.headers)
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["participants"]]

    assert ids(status="confirmed") == [b]
    assert ids(search="b@x") == [b]
    assert ids(search="_") == [c]
    assert ids(tags=tag) == [b]
    assert ids(has_phone="true") == [c, a]
    assert ids(has_phone="1") == [c, a, b]  # only the literal "true" applies
    assert client.get(f"/api/events/{event}/participants", params={"tags": "x"},
                      headers=tenant.headers).status_code == 400
    r = client.get(f"/api/events/{uuid.uuid4()}/participants", headers=tenant.headers)
    assert r.status_code == 404 and r.json()["error"] == "Event not found"


def test_update_participant_partial_and_contact_sync(server, client, tenant, database):
    event = create_event(client, tenant)["id"]
    contact = insert_contact(database, tenant.account_id, name="Old", phone="51900", email="old@x.test")
    pid = add_participant(client, tenant, event, name="Ana", contact_id=contact, phone="51900").json()["participant"]["id"]
    insert_participant(database, event, "Other", phone="51977")
    with socket(server, tenant.token) as ws:
        r = client.put(f"/api/events/{event}/participants/{pid}",
                       json={"name": "Ana María", "next_action": "llamar", "next_action_date": "2030-01-01T09:00:00Z"},
                       headers=tenant.headers)
        assert r.status_code == 200, r.text
        p = r.json()["participant"]
        assert p["name"] == "Ana María" and p["phone"] == "51900" and p["next_action"] == "llamar"
        assert p["tags"] == []
        expect_event(ws, "participant_update", action="updated", event_id=event, participant_id=pid)
        expect_event(ws, "contact_update", action="updated", contact_id=contact)
    synced = one(database, "SELECT name, phone, email FROM contacts WHERE id = $1", [U(contact)])
    # §5.5: name always, phone only when set, email overwritten (NULL too)
    assert synced == {"name": "Ana María", "phone": "51900", "email": None}

    r = client.put(f"/api/events/{event}/participants/{pid}", json={"phone": "51977"}, headers=tenant.headers)
    assert r.status_code == 409 and r.json()["error"] == "Ya existe un participante con ese teléfono en este evento"
    assert one(database, "SELECT phone FROM event_participants WHERE id = $1", [U(pid)])["phone"] == "51900"
    for path, payload, status, message in [
        (f"/api/events/{event}/participants/{pid}", {"name": ""}, 400, "Name is required"),
        (f"/api/events/{event}/participants/nope", {"name": "x"}, 400, "Invalid participant ID"),
        (f"/api/events/nope/participants/{pid}", {"name": "x"}, 400, "Invalid event ID"),
        (f"/api/events/{event}/participants/{uuid.uuid4()}", {"name": "x"}, 404, "Participant not found"),
        (f"/api/events/{event}/participants/{pid}", {"next_action_date": "soon"}, 400, "Invalid request"),
    ]:
        r = client.put(path, json=payload, headers=tenant.headers)
        assert r.status_code == status, (path, payload, r.text)
        assert r.json()["error"] == message


def test_participant_of_another_event_is_404(client, tenant, database):
    event_a = create_event(client, tenant)["id"]
    event_b = create_event(client, tenant)["id"]
    pid = insert_participant(database, event_a, "Ana")
    base = f"/api/events/{event_b}/participants/{pid}"
    assert client.put(base, json={"name": "X"}, headers=tenant.headers).status_code == 404
    assert client.patch(base + "/status", json={"status": "confirmed"}, headers=tenant.headers).status_code == 404
    assert client.delete(base, headers=tenant.headers).status_code == 404
    row = one(database, "SELECT name, status FROM event_participants WHERE id = $1", [U(pid)])
    assert row == {"name": "Ana", "status": "invited"}


def test_status_and_delete(server, client, tenant, database):
    event = create_event(client, tenant)["id"]
    pid = insert_participant(database, event, "Ana")
    interaction = insert_interaction(database, tenant.account_id, participant_id=pid, event_id=None)
    base = f"/api/events/{event}/participants/{pid}"
    with socket(server, tenant.token) as ws:
        r = client.patch(base + "/status", json={"status": "confirmed"}, headers=tenant.headers)
        assert r.status_code == 200 and r.json() == {"success": True}
        expect_event(ws, "participant_update", action="status_changed", event_id=event, participant_id=pid)
        row = one(database, "SELECT status, confirmed_at, attended_at FROM event_participants WHERE id = $1", [U(pid)])
        assert row["status"] == "confirmed" and row["confirmed_at"] is not None and row["attended_at"] is None
        client.patch(base + "/status", json={"status": "attended"}, headers=tenant.headers)
        row = one(database, "SELECT status, attended_at FROM event_participants WHERE id = $1", [U(pid)])
        assert row["status"] == "attended" and row["attended_at"] is not None
        assert client.patch(base + "/status", json={"status": ""}, headers=tenant.headers).status_code == 400
        assert client.patch(base + "/status", json={"status": 3}, headers=tenant.headers).status_code == 400

        r = client.delete(base, headers=tenant.headers)
        assert r.status_code == 200 and r.json() == {"success": True}
        expect_event(ws, "participant_update", action="deleted", event_id=event, participant_id=pid)
    assert count(database, "SELECT count(*) FROM event_participants WHERE id = $1", [U(pid)]) == 0
    assert count(database, "SELECT count(*) FROM interactions WHERE id = $1", [U(interaction)]) == 0
    assert client.delete(base, headers=tenant.headers).status_code == 404


# -- tenant isolation --------------------------------------------------------------------------------------
def test_other_tenant_gets_404_and_changes_nothing(client, make_tenant, database):
    owner, intruder = make_tenant(), make_tenant()
    event = create_event(client, owner, name="Private event")["id"]
    pid = add_participant(client, owner, event, phone="5190").json()["participant"]["id"]
    event_before = one(database, "SELECT * FROM events WHERE id = $1", [U(event)])
    participant_before = one(database, "SELECT * FROM event_participants WHERE id = $1", [U(pid)])
    h = intruder.headers
    for method, path, payload, message in [
        ("GET", f"/api/events/{event}", None, "Event not found"),
        ("PUT", f"/api/events/{event}", {"name": "Hacked"}, "Event not found"),
        ("DELETE", f"/api/events/{event}", None, "Event not found"),
        ("GET", f"/api/events/{event}/participants", None, "Event not found"),
        ("POST", f"/api/events/{event}/participants", {"name": "Spy"}, "Event not found"),
        ("POST", f"/api/events/{event}/participants/bulk", {"participants": [{"name": "Spy"}]}, "Event not found"),
        ("PUT", f"/api/events/{event}/participants/{pid}", {"name": "Hacked"}, "Participant not found"),
        ("PATCH", f"/api/events/{event}/participants/{pid}/status", {"status": "declined"}, "Participant not found"),
        ("DELETE", f"/api/events/{event}/participants/{pid}", None, "Participant not found"),
    ]:
        r = client.request(method, path, json=payload, headers=h)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"] == message
    assert client.get("/api/events", headers=h).json() == {"success": True, "events": [], "total": 0}
    assert client.get("/api/events/upcoming-actions", headers=h).json()["actions"] == []
    # a participant may not link another tenant's contact
    theirs = insert_contact(database, owner.account_id)
    own_event = create_event(client, intruder)["id"]
    assert add_participant(client, intruder, own_event, contact_id=theirs).status_code == 404
    assert one(database, "SELECT * FROM events WHERE id = $1", [U(event)]) == event_before
    assert one(database, "SELECT * FROM event_participants WHERE id = $1", [U(pid)]) == participant_before
