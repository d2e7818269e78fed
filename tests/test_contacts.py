"""Contacts R75–R84: shapes, filters, partial update + sync, merge, deletes, tenant isolation, live events."""

from __future__ import annotations

import uuid

import pytest
import redis

from tests.crm_helpers import (
    U,
    count,
    expect_event,
    expect_silence,
    insert_chat,
    insert_contact,
    insert_device,
    insert_device_name,
    insert_event,
    insert_interaction,
    insert_lead,
    insert_message,
    insert_participant,
    insert_tag,
    new_jid,
    one,
    socket,
    tag_contact,
    tag_lead,
)
from tests.leads_support import board_key
from tests.support import REDIS_URL, run_sql

CONTACT_BASE_KEYS = {"id", "account_id", "jid", "is_group", "created_at", "updated_at"}
TAG_KEYS = {"id", "account_id", "name", "color", "created_at", "updated_at"}


def contact_row(dsn: str, contact_id: str) -> dict:
    return one(dsn, "SELECT * FROM contacts WHERE id = $1", [U(contact_id)])


# -- R75 list ----------------------------------------------------------------------------------------------
def test_list_shape_order_and_structured_tags(client, tenant, database):
    a = insert_contact(database, tenant.account_id, name="Beto", phone="51911111111")
    b = insert_contact(database, tenant.account_id, custom_name="Ana")  # custom_name wins over name
    c = insert_contact(database, tenant.account_id, phone=None, push_name="Carla")
    d = insert_contact(database, tenant.account_id, phone=None)  # no display value: sorts last
    tag1 = insert_tag(database, tenant.account_id, "vip")
    tag2 = insert_tag(database, tenant.account_id, "alpha")
    tag_contact(database, a, tag1)
    tag_contact(database, a, tag2)
    tag_contact(database, c, tag1)

    r = client.get("/api/contacts", headers=tenant.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"success", "contacts", "total", "total_capped", "limit", "offset", "next_cursor"}
    assert body["success"] is True and body["total"] == 4 and body["limit"] == 50 and body["offset"] == 0
    ids = [item["id"] for item in body["contacts"]]
    assert ids == [b, a, c, d]
    by_id = {item["id"]: item for item in body["contacts"]}
    assert set(by_id[a]) == CONTACT_BASE_KEYS | {"phone", "name", "source", "structured_tags"}
    assert [t["name"] for t in by_id[a]["structured_tags"]] == ["alpha", "vip"]
    assert set(by_id[a]["structured_tags"][0]) == TAG_KEYS
    assert [t["id"] for t in by_id[c]["structured_tags"]] == [tag1]
    assert "structured_tags" not in by_id[b]  # omitempty, as the original
    assert by_id[a]["is_group"] is False and by_id[a]["account_id"] == tenant.account_id

    page = client.get("/api/contacts", params={"limit": 2, "offset": 1}, headers=tenant.headers).json()
    assert [item["id"] for item in page["contacts"]] == [a, c]
    assert page["total"] == 4 and page["limit"] == 2 and page["offset"] == 1
    past = client.get("/api/contacts", params={"offset": 10}, headers=tenant.headers).json()
    assert past["contacts"] == [] and past["total"] == 4


def test_list_filters(client, tenant, database):
    device = insert_device(database, tenant.account_id)
    pct = insert_contact(database, tenant.account_id, name="100% real", tags=["cliente", "vip"], device_id=U(device))
    under = insert_contact(database, tenant.account_id, name="a_b", phone=None, tags=["lead"])
    plain = insert_contact(database, tenant.account_id, name="100 plain", email="x@corp.test", company="Acme")
    group = insert_contact(database, tenant.account_id, jid=f"{uuid.uuid4().hex[:10]}@g.us", name="Grupo", is_group=True)
    tag = insert_tag(database, tenant.account_id)
    tag_contact(database, plain, tag)

    def ids(**params) -> list[str]:
        r = client.get("/api/contacts", params=params, headers=tenant.headers)
        assert r.status_code == 200, r.text
        return sorted(item["id"] for item in r.json()["contacts"])

    assert ids(search="0% r") == [pct]  # wildcards are matched literally
    assert ids(search="a_b") == [under]
    assert ids(search="100") == sorted([pct, plain])
    assert ids(search="ACME") == [plain]  # case-insensitive, company searched
    assert ids(search="corp.test") == [plain]
    assert ids(has_phone="true") == sorted([pct, plain])
    assert ids(device_id=device) == [pct]
    assert ids(device_id="not-a-uuid") == sorted([pct, under, plain])  # invalid device_id is ignored
    assert ids(is_group="true") == [group]
    assert ids(tags="vip,lead") == sorted([pct, under])
    assert ids(tag_ids=tag) == [plain]
    assert ids(tag_ids=str(uuid.uuid4())) == []
    r = client.get("/api/contacts", params={"tag_ids": "nope"}, headers=tenant.headers)
    assert r.status_code == 400 and r.json() == {"success": False, "error": "Invalid tag ID"}


def test_list_limit_is_capped(client, tenant):
    assert client.get("/api/contacts", params={"limit": 5000}, headers=tenant.headers).json()["limit"] == 1000
    assert client.get("/api/contacts", params={"limit": 0}, headers=tenant.headers).json()["limit"] == 1000
    assert client.get("/api/contacts", params={"limit": "x"}, headers=tenant.headers).json()["limit"] == 50


# -- R76 duplicates ----------------------------------------------------------------------------------------
def test_duplicates_groups_by_phone(client, tenant, database):
    first = insert_contact(database, tenant.account_id, phone="51900000001")
    second = insert_contact(database, tenant.account_id, phone="51900000001")
    run_sql(database, "UPDATE contacts SET updated_at = now() + interval '1 minute' WHERE id = $1", [U(second)])
    third = insert_contact(database, tenant.account_id, phone="51900000002")
    fourth = insert_contact(database, tenant.account_id, phone="51900000002")
    insert_contact(database, tenant.account_id, phone="51900000003")
    insert_contact(database, tenant.account_id, phone="")
    insert_contact(database, tenant.account_id, phone="")
    r = client.get("/api/contacts/duplicates", headers=tenant.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"success", "duplicates"}
    groups = [[c["id"] for c in group] for group in body["duplicates"]]
    assert groups[0] == [second, first]  # newest first inside a group
    assert sorted(groups[1]) == sorted([third, fourth])
    assert len(groups) == 2


# -- R79 get -----------------------------------------------------------------------------------------------
def test_get_with_device_names_and_tags(client, tenant, database):
    contact = insert_contact(database, tenant.account_id, name="Dora")
    device = insert_device(database, tenant.account_id, "Ventas")
    insert_device_name(database, contact, device, "Dora Ventas", "dora")
    tag = insert_tag(database, tenant.account_id, "t1")
    tag_contact(database, contact, tag)
    r = client.get(f"/api/contacts/{contact}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"success", "contact"}
    got = body["contact"]
    assert got["id"] == contact and got["name"] == "Dora"
    assert [n["device_name"] for n in got["device_names"]] == ["Ventas"]
    assert set(got["device_names"][0]) == {"id", "contact_id", "device_id", "name", "push_name", "synced_at", "device_name"}
    assert [t["id"] for t in got["structured_tags"]] == [tag]

    assert client.get("/api/contacts/nope", headers=tenant.headers).json() == {"success": False, "error": "invalid id"}
    r = client.get(f"/api/contacts/{uuid.uuid4()}", headers=tenant.headers)
    assert r.status_code == 404 and r.json()["error"] == "contact not found"


# -- R80 update + sync -------------------------------------------------------------------------------------
def test_partial_update_syncs_lead_and_participants(server, client, make_tenant, database):
    tenant, other = make_tenant(), make_tenant()
    jid = new_jid()
    contact = insert_contact(database, tenant.account_id, jid, name="Wa Name", email="old@x.test", company="OldCo",
                             notes="keep me")
    lead = insert_lead(database, tenant.account_id, jid, name="Lead Old", company="LeadCo")
    event = insert_event(database, tenant.account_id)
    participant = insert_participant(database, event, "Part Old", contact_id=contact, phone="999")
    cache = redis.Redis.from_url(REDIS_URL)
    key = board_key(tenant.account_id)
    cache.set(key, b'{"success":true,"leads":[]}', ex=60)

    with socket(server, tenant.token) as ws, socket(server, other.token) as foreign_ws:
        r = client.put(f"/api/contacts/{contact}", json={"custom_name": "  Nuevo  ", "age": 30},
                       headers=tenant.headers)
        assert r.status_code == 200, r.text
        got = r.json()["contact"]
        assert got["custom_name"] == "Nuevo" and got["age"] == 30
        assert got["email"] == "old@x.test" and got["company"] == "OldCo" and got["notes"] == "keep me"
        expect_event(ws, "contact_update", action="updated", contact_id=contact)
        expect_event(ws, "lead_update", action="updated", ids=[lead])
        expect_event(ws, "participant_update", action="updated", event_id=event, participant_id=participant)
        expect_silence(foreign_ws)

    assert cache.get(key) is None  # contact→lead sync invalidated leads:<account>
    lead_row = one(database, "SELECT name, company, age, email FROM leads WHERE id = $1", [U(lead)])
    assert lead_row == {"name": "Nuevo", "company": "OldCo", "age": 30, "email": "old@x.test"}
    part = one(database, "SELECT name, phone, email, age FROM event_participants WHERE id = $1", [U(participant)])
    # §5.5: name from the contact's name; the other shared fields overwritten, NULL included.
    assert part["name"] == "Wa Name" and part["email"] == "old@x.test" and part["age"] == 30
    assert part["phone"] == contact_row(database, contact)["phone"]

    # "" clears a field; tags replace; absent keys stay.
    r = client.put(f"/api/contacts/{contact}", json={"company": "", "tags": ["a", "b"]}, headers=tenant.headers)
    got = r.json()["contact"]
    assert "company" not in got and got["tags"] == ["a", "b"] and got["custom_name"] == "Nuevo"


def test_update_errors_leave_data_unchanged(client, tenant, database):
    contact = insert_contact(database, tenant.account_id, name="Same")
    before = contact_row(database, contact)
    cases = [
        ("/api/contacts/nope", {"custom_name": "x"}, 400, "invalid id"),
        (f"/api/contacts/{contact}", {"age": "old"}, 400, "invalid body"),
        (f"/api/contacts/{contact}", {"tags": "not-a-list"}, 400, "invalid body"),
        (f"/api/contacts/{contact}", {"custom_name": "x" * 300}, 400, "invalid body"),
        (f"/api/contacts/{contact}", {"age": -4}, 400, "invalid body"),
        (f"/api/contacts/{uuid.uuid4()}", {"custom_name": "x"}, 404, "contact not found"),
    ]
    for path, payload, status, message in cases:
        r = client.put(path, json=payload, headers=tenant.headers)
        assert r.status_code == status, (payload, r.text)
        assert r.json()["error"] == message
    r = client.put(f"/api/contacts/{contact}", content=b"{broken", headers=tenant.headers)
    assert r.status_code == 400 and r.json()["error"] == "invalid body"
    assert contact_row(database, contact) == before


def test_update_phone_clash_with_participant_is_409_and_rolls_back(client, tenant, database):
    contact = insert_contact(database, tenant.account_id, name="Clash", phone="51911110000")
    event = insert_event(database, tenant.account_id)
    insert_participant(database, event, "Linked", contact_id=contact, phone="51911110000")
    insert_participant(database, event, "Other", phone="51922220000")
    r = client.put(f"/api/contacts/{contact}", json={"phone": "51922220000"}, headers=tenant.headers)
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "Ya existe un participante con ese teléfono en este evento"
    assert contact_row(database, contact)["phone"] == "51911110000"


# -- R81 reset ---------------------------------------------------------------------------------------------
def test_reset_from_device(client, tenant, database):
    contact = insert_contact(database, tenant.account_id, name="Old", push_name="oldpush", custom_name="Custom")
    bare = insert_contact(database, tenant.account_id, name="Bare")
    device = insert_device(database, tenant.account_id)
    insert_device_name(database, contact, device, "From Device", None)
    r = client.post(f"/api/contacts/{contact}/reset", headers=tenant.headers)
    assert r.status_code == 200, r.text
    got = r.json()["contact"]
    assert "custom_name" not in got and got["name"] == "From Device" and got["push_name"] == "oldpush"
    r = client.post(f"/api/contacts/{bare}/reset", headers=tenant.headers)
    assert r.status_code == 400 and r.json()["error"] == "no device names available to reset from"
    assert client.post(f"/api/contacts/{uuid.uuid4()}/reset", headers=tenant.headers).status_code == 404
    assert client.post("/api/contacts/x/reset", headers=tenant.headers).status_code == 400


# -- R78 / R82 deletes -------------------------------------------------------------------------------------
def test_delete_and_batch_delete(server, client, make_tenant, database):
    tenant, other = make_tenant(), make_tenant()
    jid = new_jid()
    mine = insert_contact(database, tenant.account_id, jid)
    lead = insert_lead(database, tenant.account_id, jid, contact_id=U(mine))
    keep_a = insert_contact(database, tenant.account_id)
    keep_b = insert_contact(database, tenant.account_id)
    theirs = insert_contact(database, other.account_id)

    with socket(server, tenant.token) as ws:
        r = client.delete(f"/api/contacts/{mine}", headers=tenant.headers)
        assert r.status_code == 200 and r.json() == {"success": True}
        expect_event(ws, "contact_update", action="deleted", contact_id=mine)
        expect_event(ws, "lead_update", action="updated", ids=[lead])
    assert one(database, "SELECT contact_id FROM leads WHERE id = $1", [U(lead)])["contact_id"] is None
    assert client.delete(f"/api/contacts/{mine}", headers=tenant.headers).status_code == 404
    assert client.delete("/api/contacts/zzz", headers=tenant.headers).json()["error"] == "invalid id"

    r = client.request("DELETE", "/api/contacts/batch", json={"ids": [keep_a, theirs]}, headers=tenant.headers)
    assert r.status_code == 200 and r.json() == {"success": True, "deleted": 1}
    assert count(database, "SELECT count(*) FROM contacts WHERE id = ANY($1)", [[U(keep_a)]]) == 0
    assert count(database, "SELECT count(*) FROM contacts WHERE id = $1", [U(theirs)]) == 1
    assert count(database, "SELECT count(*) FROM contacts WHERE id = $1", [U(keep_b)]) == 1
    for payload in ({"ids": []}, {}, {"ids": ["nope"]}):
        r = client.request("DELETE", "/api/contacts/batch", json=payload, headers=tenant.headers)
        assert r.status_code == 400 and r.json()["error"] == "provide ids array"


# -- R77 merge ---------------------------------------------------------------------------------------------
def test_merge_moves_everything_in_one_transaction(server, client, tenant, database):
    acc = tenant.account_id
    keep_jid, dup_jid = new_jid(), new_jid()
    keep = insert_contact(database, acc, keep_jid, name="Keep")
    dup = insert_contact(database, acc, dup_jid, name="Dup")
    # chats + messages: "shared" exists in both chats (dedup key), "only-dup" moves over
    keep_chat = insert_chat(database, acc, keep_jid, unread_count=1)
    dup_chat = insert_chat(database, acc, dup_jid, unread_count=2, last_message="latest")
    run_sql(database, "UPDATE chats SET last_message_at = now() WHERE id = $1", [U(dup_chat)])
    insert_message(database, acc, keep_chat, "shared")
    insert_message(database, acc, dup_chat, "shared")
    moved_msg = insert_message(database, acc, dup_chat, "only-dup")
    # leads: both JIDs have a lead → kept lead stays, duplicate's interactions + tags move, duplicate deleted
    keep_lead = insert_lead(database, acc, keep_jid, name="Keep lead")
    dup_lead = insert_lead(database, acc, dup_jid, name="Dup lead")
    lead_tag = insert_tag(database, acc)
    tag_lead(database, dup_lead, lead_tag)
    lead_interaction = insert_interaction(database, acc, lead_id=dup_lead)
    # contact-level links
    contact_tag = insert_tag(database, acc)
    tag_contact(database, dup, contact_tag)
    device = insert_device(database, acc)
    insert_device_name(database, dup, device, "dup on device", None)
    contact_interaction = insert_interaction(database, acc, contact_id=dup)
    event = insert_event(database, acc)
    participant = insert_participant(database, event, "Dup person", contact_id=dup)
    campaign = str(one(database, "INSERT INTO campaigns (account_id, device_id, name) VALUES ($1, $2, 'c') RETURNING id",
                       [U(acc), U(device)])["id"])
    recipient = str(one(database, "INSERT INTO campaign_recipients (campaign_id, contact_id, jid) VALUES ($1, $2, $3) "
                                  "RETURNING id", [U(campaign), U(dup), dup_jid])["id"])
    cache = redis.Redis.from_url(REDIS_URL)
    cache.set(board_key(acc), b"{}", ex=60)

    with socket(server, tenant.token) as ws:
        r = client.post("/api/contacts/merge", json={"keep_id": keep, "merge_ids": [dup]}, headers=tenant.headers)
        assert r.status_code == 200, r.text
        assert r.json() == {"success": True, "merged": 1}
        expect_event(ws, "contact_update", action="merged", kept_id=keep, ids=[dup])
        lead_event = expect_event(ws, "lead_update", action="updated")
        assert dup_lead in lead_event["data"]["ids"]

    assert cache.get(board_key(acc)) is None
    assert count(database, "SELECT count(*) FROM contacts WHERE id = $1", [U(dup)]) == 0
    assert count(database, "SELECT count(*) FROM chats WHERE id = $1", [U(dup_chat)]) == 0
    msgs = run_sql(database, "SELECT id, message_id FROM messages WHERE chat_id = $1 ORDER BY message_id", [U(keep_chat)])
    assert [m["message_id"] for m in msgs] == ["only-dup", "shared"]
    assert str(msgs[0]["id"]) == moved_msg  # moved, not copied
    chat = one(database, "SELECT unread_count, last_message, contact_id FROM chats WHERE id = $1", [U(keep_chat)])
    assert chat["unread_count"] == 3 and chat["last_message"] == "latest" and str(chat["contact_id"]) == keep
    assert count(database, "SELECT count(*) FROM leads WHERE id = $1", [U(dup_lead)]) == 0
    assert str(one(database, "SELECT contact_id FROM leads WHERE id = $1", [U(keep_lead)])["contact_id"]) == keep
    assert str(one(database, "SELECT lead_id FROM interactions WHERE id = $1", [U(lead_interaction)])["lead_id"]) == keep_lead
    assert count(database, "SELECT count(*) FROM lead_tags WHERE lead_id = $1 AND tag_id = $2",
                 [U(keep_lead), U(lead_tag)]) == 1
    assert count(database, "SELECT count(*) FROM contact_tags WHERE contact_id = $1 AND tag_id = $2",
                 [U(keep), U(contact_tag)]) == 1
    assert one(database, "SELECT name FROM contact_device_names WHERE contact_id = $1", [U(keep)])["name"] == "dup on device"
    assert str(one(database, "SELECT contact_id FROM interactions WHERE id = $1",
                   [U(contact_interaction)])["contact_id"]) == keep
    assert str(one(database, "SELECT contact_id FROM event_participants WHERE id = $1",
                   [U(participant)])["contact_id"]) == keep
    assert str(one(database, "SELECT contact_id FROM campaign_recipients WHERE id = $1",
                   [U(recipient)])["contact_id"]) == keep


def test_merge_hands_chat_and_lead_to_the_kept_jid(client, tenant, database):
    acc = tenant.account_id
    keep_jid, dup_jid = new_jid(), new_jid()
    keep = insert_contact(database, acc, keep_jid)
    dup = insert_contact(database, acc, dup_jid)
    chat = insert_chat(database, acc, dup_jid)
    insert_message(database, acc, chat, "m1")
    lead = insert_lead(database, acc, dup_jid)
    r = client.post("/api/contacts/merge", json={"keep_id": keep, "merge_ids": [dup]}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert one(database, "SELECT jid FROM chats WHERE id = $1", [U(chat)])["jid"] == keep_jid
    row = one(database, "SELECT jid, contact_id FROM leads WHERE id = $1", [U(lead)])
    assert row["jid"] == keep_jid and str(row["contact_id"]) == keep
    assert count(database, "SELECT count(*) FROM messages WHERE chat_id = $1", [U(chat)]) == 1


def test_merge_validation_and_foreign_ids_change_nothing(client, make_tenant, database):
    tenant, other = make_tenant(), make_tenant()
    keep = insert_contact(database, tenant.account_id)
    dup = insert_contact(database, tenant.account_id)
    theirs = insert_contact(database, other.account_id)
    dup_chat = insert_chat(database, tenant.account_id, contact_row(database, dup)["jid"])
    for payload, status, message in [
        ({"keep_id": keep, "merge_ids": [dup, theirs]}, 404, "contact not found"),
        ({"keep_id": theirs, "merge_ids": [dup]}, 404, "contact not found"),
        ({"keep_id": keep, "merge_ids": [keep, dup]}, 400, "keep_id cannot be one of merge_ids"),
        ({"keep_id": keep, "merge_ids": []}, 400, "provide merge_ids"),
        ({"keep_id": keep}, 400, "provide merge_ids"),
        ({"keep_id": "nope", "merge_ids": [dup]}, 400, "invalid body"),
        ({"merge_ids": [dup]}, 400, "invalid body"),
    ]:
        r = client.post("/api/contacts/merge", json=payload, headers=tenant.headers)
        assert r.status_code == status, (payload, r.text)
        assert r.json()["error"] == message
    assert count(database, "SELECT count(*) FROM contacts WHERE id = ANY($1)", [[U(keep), U(dup), U(theirs)]]) == 3
    assert one(database, "SELECT jid FROM chats WHERE id = $1", [U(dup_chat)])["jid"] == contact_row(database, dup)["jid"]


# -- R83 / R84 ---------------------------------------------------------------------------------------------
def test_contact_interactions_and_events(client, tenant, database):
    contact = insert_contact(database, tenant.account_id)
    first = insert_event(database, tenant.account_id, "Primero")
    second = insert_event(database, tenant.account_id, "Segundo")
    insert_event(database, tenant.account_id, "Ajeno")
    run_sql(database, "UPDATE events SET event_date = now() + interval '2 days' WHERE id = $1", [U(second)])
    insert_participant(database, first, "P1", contact_id=contact)
    insert_participant(database, second, "P2", contact_id=contact)
    insert_participant(database, second, "P3", status="confirmed")
    note = insert_interaction(database, tenant.account_id, contact_id=contact, event_id=first)

    r = client.get(f"/api/contacts/{contact}/events", headers=tenant.headers)
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert [e["id"] for e in events] == [second, first]
    assert events[0]["total_participants"] == 2 and events[0]["participant_counts"] == {"invited": 1, "confirmed": 1}

    r = client.get(f"/api/contacts/{contact}/interactions", headers=tenant.headers)
    assert r.status_code == 200, r.text
    items = r.json()["interactions"]
    assert [i["id"] for i in items] == [note] and items[0]["event_name"] == "Primero"

    lonely = insert_contact(database, tenant.account_id)
    assert client.get(f"/api/contacts/{lonely}/events", headers=tenant.headers).json() == {"success": True, "events": []}
    assert client.get(f"/api/contacts/{lonely}/interactions", headers=tenant.headers).json()["interactions"] == []
    assert client.get("/api/contacts/x/events", headers=tenant.headers).json()["error"] == "Invalid contact ID"
    assert client.get("/api/contacts/x/interactions", headers=tenant.headers).json()["error"] == "Invalid contact ID"


# -- tenant isolation --------------------------------------------------------------------------------------
def test_other_tenant_sees_and_changes_nothing(client, make_tenant, database):
    owner, intruder = make_tenant(), make_tenant()
    contact = insert_contact(database, owner.account_id, name="Private", custom_name="Mine")
    before = contact_row(database, contact)
    h = intruder.headers
    for method, path, payload in [
        ("GET", f"/api/contacts/{contact}", None),
        ("PUT", f"/api/contacts/{contact}", {"custom_name": "Hacked"}),
        ("POST", f"/api/contacts/{contact}/reset", None),
        ("DELETE", f"/api/contacts/{contact}", None),
        ("GET", f"/api/contacts/{contact}/interactions", None),
        ("GET", f"/api/contacts/{contact}/events", None),
    ]:
        r = client.request(method, path, json=payload, headers=h)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"] == "contact not found"
    listing = client.get("/api/contacts", params={"search": "Private"}, headers=h).json()
    assert listing["contacts"] == [] and listing["total"] == 0
    assert client.request("DELETE", "/api/contacts/batch", json={"ids": [contact]}, headers=h).json()["deleted"] == 0
    mine = insert_contact(database, intruder.account_id)
    assert client.post("/api/contacts/merge", json={"keep_id": mine, "merge_ids": [contact]}, headers=h).status_code == 404
    assert contact_row(database, contact) == before


@pytest.mark.parametrize("path", ["/api/contacts", "/api/contacts/duplicates"])
def test_lists_require_auth(client, path):
    assert client.get(path).status_code == 401
