"""Campaigns R61–R73 and R97: shapes, validation, the status machine, recipients (50k, dedup), isolation.

These run on the session server; its devices are never connected here, so nothing is sent (the sender is
covered by test_campaign_worker.py).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.crm_helpers import (
    U,
    count,
    expect_event,
    insert_contact,
    insert_event,
    insert_participant,
    insert_tag,
    one,
    socket,
    tag_participant,
)
from tests.support import run_sql

CAMPAIGN_KEYS = {"id", "account_id", "device_id", "name", "message_template", "status", "total_recipients",
                 "sent_count", "failed_count", "settings", "created_at", "updated_at", "device_name"}
RECIPIENT_KEYS = {"id", "campaign_id", "jid", "status"}
DEFAULT_SETTINGS = {"min_delay_seconds": 8, "max_delay_seconds": 15, "batch_size": 25, "batch_pause_minutes": 2,
                    "daily_limit": 1000, "active_hours_start": "07:00", "active_hours_end": "22:00",
                    "randomize_message": True, "simulate_typing": True}


def make_device(client: httpx.Client, tenant: Any, name: str = "Ventas") -> str:
    r = client.post("/api/devices", json={"name": name}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return r.json()["device"]["id"]


def create(client: httpx.Client, tenant: Any, device_id: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "Promo", "device_id": device_id, "message_template": "Hola {{nombre}}", **fields}
    r = client.post("/api/campaigns", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return r.json()["campaign"]


def add(client: httpx.Client, tenant: Any, campaign_id: str, recipients: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    return client.post(f"/api/campaigns/{campaign_id}/recipients", json={"recipients": recipients, **extra},
                       headers=tenant.headers)


def err(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json().get("error", "")


def jid(n: int) -> str:
    return f"51900{n:06d}@s.whatsapp.net"


# -- R62 / R63 / R61 -----------------------------------------------------------------------------------------
def test_create_get_list_shapes(client, make_tenant):
    tenant = make_tenant()
    device = make_device(client, tenant)
    r = client.post("/api/campaigns", json={
        "name": " Promo ", "device_id": device, "message_template": "Hola {{nombre}}",
        "attachments": [{"media_url": "/api/media/file/x/a.png", "media_type": "image", "caption": "A"},
                        {"media_url": "/api/media/file/x/b.pdf", "media_type": "document", "position": 7}],
    }, headers=tenant.headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"success", "campaign"}
    campaign = body["campaign"]
    assert set(campaign) == CAMPAIGN_KEYS | {"attachments"}
    assert campaign["status"] == "draft" and campaign["name"] == "Promo" and campaign["device_name"] == "Ventas"
    assert campaign["settings"] == DEFAULT_SETTINGS  # defaults when settings is absent
    assert (campaign["total_recipients"], campaign["sent_count"], campaign["failed_count"]) == (0, 0, 0)
    assert [(a["media_type"], a["position"], a["caption"]) for a in campaign["attachments"]] == [
        ("image", 0, "A"), ("document", 7, "")]  # position 0 → its index
    assert set(campaign["attachments"][0]) == {"id", "campaign_id", "media_url", "media_type", "caption",
                                               "file_name", "file_size", "position", "created_at"}

    got = client.get(f"/api/campaigns/{campaign['id']}", headers=tenant.headers).json()["campaign"]
    assert got["attachments"] == campaign["attachments"] and got["settings"] == DEFAULT_SETTINGS

    plain = create(client, tenant, device, settings={"batch_size": 3}, scheduled_at="2099-01-01T10:00:00-05:00")
    assert plain["settings"] == {"batch_size": 3}  # a given object is stored as is
    assert "attachments" not in plain and plain["scheduled_at"].startswith("2099-01-01T15:00:00")
    assert plain["status"] == "draft"  # create never schedules

    listed = client.get("/api/campaigns", headers=tenant.headers).json()
    assert listed["success"] is True
    assert [c["id"] for c in listed["campaigns"]] == [plain["id"], campaign["id"]]  # newest first
    assert "attachments" in listed["campaigns"][1] and "attachments" not in listed["campaigns"][0]


def test_create_validation(client, make_tenant):
    tenant, other = make_tenant(), make_tenant()
    device = make_device(client, tenant)
    foreign_device = make_device(client, other)

    def post(**body: Any) -> tuple[int, str]:
        return err(client.post("/api/campaigns", json=body, headers=tenant.headers))

    base = {"name": "X", "device_id": device, "message_template": "Hi"}
    assert post(**{**base, "name": " "}) == (400, "name and device_id are required")
    assert post(**{**base, "device_id": ""}) == (400, "name and device_id are required")
    assert post(**{**base, "device_id": "nope"}) == (400, "Invalid device ID")
    assert post(**{**base, "device_id": str(uuid.uuid4())}) == (404, "Device not found")
    assert post(**{**base, "device_id": foreign_device}) == (404, "Device not found")
    assert post(**{**base, "message_template": ""}) == (400, "message_template or attachments required")
    assert post(**{**base, "message_template": "", "attachments": []}) == (400, "message_template or attachments required")
    assert post(**{**base, "scheduled_at": "2001-01-01T00:00:00Z"}) == (400, "scheduled_at must be in the future")
    status, message = post(**{**base, "scheduled_at": "mañana"})
    assert status == 400 and "RFC 3339" in message
    status, message = post(**{**base, "scheduled_at": "2099-01-01T10:00:00"})
    assert status == 400 and "time zone" in message
    status, message = post(**{**base, "attachments": [{"media_url": "/x", "media_type": "gif"}]})
    assert status == 400 and "media_type" in message
    assert post(**{**base, "attachments": [{"media_type": "image"}]}) == (400, "attachment 1: media_url is required")
    assert post(**{**base, "media_url": "/x.png"}) == (400, "media_type is required with media_url")
    assert post(**{**base, "settings": {"timezone": "Mars/Base"}})[0] == 400
    assert post(**{**base, "settings": {"active_hours_start": "late"}})[0] == 400
    assert post(**{**base, "settings": [1, 2]})[0] == 400  # not an object
    assert post(**{**base, "event_id": str(uuid.uuid4())}) == (404, "Event not found")
    # attachments alone (no template) are enough; an invalid event_id string is ignored (as the original)
    r = client.post("/api/campaigns", json={**base, "message_template": "", "event_id": "zzz",
                                            "attachments": [{"media_url": "/a.png", "media_type": "image"}]},
                    headers=tenant.headers)
    assert r.status_code == 201, r.text
    assert "event_id" not in r.json()["campaign"]
    bad = client.post("/api/campaigns", content=b"{not json", headers=tenant.headers)
    assert err(bad) == (400, "Invalid request")


# -- R64 / R70 / R71: partial updates and the status machine ----------------------------------------------------
def test_update_partial_and_status_machine(server, client, make_tenant, database):
    tenant = make_tenant()
    device = make_device(client, tenant)
    other_device = make_device(client, tenant, "Soporte")
    campaign = create(client, tenant, device, media_url="/api/media/file/a/x.png", media_type="image",
                      scheduled_at="2099-05-01T10:00:00Z")
    cid = campaign["id"]
    url = f"/api/campaigns/{cid}"

    r = client.put(url, json={"name": "Renamed"}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    got = r.json()["campaign"]
    assert got["name"] == "Renamed" and got["message_template"] == "Hola {{nombre}}"  # untouched keys kept
    assert got["media_url"] == "/api/media/file/a/x.png" and got["scheduled_at"].startswith("2099-05-01")
    assert got["settings"] == DEFAULT_SETTINGS

    got = client.put(url, json={"settings": {"batch_size": 5}, "scheduled_at": "", "media_url": "",
                                "device_id": other_device}, headers=tenant.headers).json()["campaign"]
    assert got["settings"] == {"batch_size": 5}  # replaced whole
    assert "scheduled_at" not in got and "media_url" not in got and got["device_name"] == "Soporte"

    assert err(client.put(url, json={"message_template": ""}, headers=tenant.headers)) == (
        400, "message_template or attachments required")
    assert err(client.put(url, json={"name": ""}, headers=tenant.headers)) == (400, "name cannot be empty")
    assert err(client.put(url, json={"device_id": str(uuid.uuid4())}, headers=tenant.headers)) == (404, "Device not found")
    assert err(client.put(url, json={"scheduled_at": "2000-01-01T00:00:00Z"}, headers=tenant.headers))[0] == 400
    assert err(client.put(url, json={"status": "bogus"}, headers=tenant.headers))[0] == 400
    assert err(client.put(url, json={"status": "running"}, headers=tenant.headers))[0] == 409
    assert err(client.put(url, json={"status": "completed"}, headers=tenant.headers))[0] == 409
    assert err(client.post(f"{url}/start", headers=tenant.headers)) == (400, "campaign has no recipients")
    assert err(client.post(f"{url}/pause", headers=tenant.headers)) == (409, "campaign is not running")
    assert err(client.put(url, json={"settings": {"active_hours_end": "99:99"}}, headers=tenant.headers))[0] == 400

    assert add(client, tenant, cid, [{"jid": jid(1)}]).status_code == 200
    with socket(server, tenant.token) as ws:
        got = client.put(url, json={"status": "scheduled", "scheduled_at": "2099-01-01T00:00:00Z"},
                         headers=tenant.headers).json()["campaign"]
        assert got["status"] == "scheduled"
        expect_event(ws, "campaign_status", campaign_id=cid, status="scheduled")
        r = client.post(f"{url}/start", headers=tenant.headers)
        assert r.status_code == 200 and r.json() == {"success": True, "message": "Campaign started"}
        expect_event(ws, "campaign_status", campaign_id=cid, status="running")
        assert err(client.post(f"{url}/start", headers=tenant.headers)) == (409, "campaign is already running")
        assert err(client.put(url, json={"device_id": device}, headers=tenant.headers)) == (
            409, "pause the campaign before changing its device")
        r = client.post(f"{url}/pause", headers=tenant.headers)
        assert r.status_code == 200 and r.json() == {"success": True, "message": "Campaign paused"}
        expect_event(ws, "campaign_status", campaign_id=cid, status="paused")
        assert err(client.post(f"{url}/pause", headers=tenant.headers)) == (409, "campaign is not running")
        assert client.put(url, json={"device_id": device, "status": "paused"}, headers=tenant.headers).status_code == 200
        assert client.post(f"{url}/start", headers=tenant.headers).status_code == 200  # resume
        expect_event(ws, "campaign_status", campaign_id=cid, status="running")
    started = one(database, "SELECT started_at, status FROM campaigns WHERE id = $1", [U(cid)])
    assert started["status"] == "running" and started["started_at"] is not None

    run_sql(database, "UPDATE campaigns SET status = 'completed' WHERE id = $1", [U(cid)])
    assert err(client.post(f"{url}/start", headers=tenant.headers)) == (
        409, "campaign cannot be started from status: completed")
    assert err(client.put(url, json={"status": "draft"}, headers=tenant.headers)) == (409, "campaign is completed")
    assert err(add(client, tenant, cid, [{"jid": jid(2)}])) == (409, "campaign is completed")
    run_sql(database, "UPDATE campaigns SET status = 'failed' WHERE id = $1", [U(cid)])
    assert client.post(f"{url}/start", headers=tenant.headers).status_code == 200  # a failed one can be retried
    assert client.put(url, json={"status": "draft"}, headers=tenant.headers).json()["campaign"]["status"] == "draft"


# -- R67 / R68 / R69 ------------------------------------------------------------------------------------------
def test_recipients_add_dedupe_list_remove(client, make_tenant, database):
    tenant, other = make_tenant(), make_tenant()
    campaign = create(client, tenant, make_device(client, tenant))
    cid = campaign["id"]
    own_contact = insert_contact(database, tenant.account_id, custom_name="Cliente")
    foreign_contact = insert_contact(database, other.account_id)

    r = add(client, tenant, cid, [
        {"jid": jid(1), "name": "Ana", "phone": "51900000001", "metadata": {"empresa": "ACME"},
         "contact_id": own_contact},
        {"jid": jid(2), "contact_id": foreign_contact},  # foreign contact: not linked
        {"jid": jid(1), "name": "Ana again"},  # repeated in the request
        {"jid": "+51 900-000-003"},  # a phone: normalised
        {"jid": "", "phone": "900000004"},  # 9 digits starting with 9: Peru prefix
        {"jid": "", "phone": "no phone"},  # unusable
        {"jid": "   "},  # unusable
        {"jid": "group-123@g.us", "contact_id": "not-a-uuid"},  # full JIDs kept verbatim
    ])
    assert r.status_code == 200, r.text
    assert r.json() == {"count": 5, "submitted": 8, "duplicates": 1, "invalid": 2, "total_recipients": 5,
                        "success": True}
    r = add(client, tenant, cid, [{"jid": jid(2)}, {"jid": jid(9)}])  # one already there
    assert r.json()["count"] == 1 and r.json()["duplicates"] == 1 and r.json()["total_recipients"] == 6

    listed = client.get(f"/api/campaigns/{cid}/recipients", headers=tenant.headers).json()
    assert listed["success"] is True and listed["total"] == 6
    recipients = listed["recipients"]
    assert [x["jid"] for x in recipients] == [jid(1), jid(2), "51900000003@s.whatsapp.net",
                                              "51900000004@s.whatsapp.net", "group-123@g.us", jid(9)]  # send order
    first = recipients[0]
    assert set(first) == RECIPIENT_KEYS | {"contact_id", "name", "phone", "metadata"}
    assert first["contact_id"] == own_contact and first["metadata"] == {"empresa": "ACME"} and first["name"] == "Ana"
    assert "contact_id" not in recipients[1] and all(x["status"] == "pending" for x in recipients)
    page = client.get(f"/api/campaigns/{cid}/recipients?limit=2&offset=1", headers=tenant.headers).json()
    assert [x["jid"] for x in page["recipients"]] == [jid(2), "51900000003@s.whatsapp.net"] and page["total"] == 6

    # save_as_contacts: recipients with a phone and no contact get one (created or existing)
    existing = insert_contact(database, tenant.account_id, jid=jid(20))
    r = add(client, tenant, cid, [{"jid": jid(20), "phone": "51900000020"},
                                  {"jid": jid(21), "phone": "51900000021", "name": "Nuevo"},
                                  {"jid": jid(22)}], save_as_contacts=True)
    assert r.json()["count"] == 3
    rows = {row["jid"]: row for row in run_sql(
        database, "SELECT r.jid, r.contact_id, c.name FROM campaign_recipients r LEFT JOIN contacts c ON c.id = r.contact_id "
                  "WHERE r.campaign_id = $1 AND r.jid = ANY($2)", [U(cid), [jid(20), jid(21), jid(22)]])}
    assert str(rows[jid(20)]["contact_id"]) == existing
    assert rows[jid(21)]["contact_id"] is not None and rows[jid(21)]["name"] == "Nuevo"
    assert rows[jid(22)]["contact_id"] is None  # no phone: not saved

    # R69
    rid = recipients[1]["id"]
    assert client.delete(f"/api/campaigns/{cid}/recipients/{rid}", headers=tenant.headers).json() == {"success": True}
    assert client.get(f"/api/campaigns/{cid}", headers=tenant.headers).json()["campaign"]["total_recipients"] == 8
    assert err(client.delete(f"/api/campaigns/{cid}/recipients/{rid}", headers=tenant.headers)) == (404, "Recipient not found")
    sent_id = recipients[0]["id"]
    run_sql(database, "UPDATE campaign_recipients SET status = 'sent', sent_at = now() WHERE id = $1", [U(sent_id)])
    status, message = err(client.delete(f"/api/campaigns/{cid}/recipients/{sent_id}", headers=tenant.headers))
    assert status == 409 and "already sent" in message
    assert err(client.delete(f"/api/campaigns/{cid}/recipients/xyz", headers=tenant.headers)) == (400, "Invalid recipient ID")
    # the sent recipient now lists first (sent_at ASC NULLS LAST)
    assert client.get(f"/api/campaigns/{cid}/recipients", headers=tenant.headers).json()["recipients"][0]["id"] == sent_id
    assert err(add(client, tenant, str(uuid.uuid4()), [{"jid": jid(1)}])) == (404, "Campaign not found")
    assert err(add(client, tenant, "bad", [{"jid": jid(1)}])) == (400, "Invalid campaign ID")
    assert err(client.post(f"/api/campaigns/{cid}/recipients", json={"recipients": [{"jid": 5}]},
                           headers=tenant.headers))[0] == 400


def test_fifty_thousand_recipients_at_once(client, make_tenant, database):
    tenant = make_tenant()
    cid = create(client, tenant, make_device(client, tenant))["id"]
    recipients = [{"jid": jid(n), "name": f"N{n}", "metadata": {"row": str(n)}} for n in range(49_000)]
    recipients += [{"jid": jid(n)} for n in range(1000)]  # 1000 repeats → 50,000 entries
    started = time.monotonic()
    r = add(client, tenant, cid, recipients)
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 49_000 and r.json()["duplicates"] == 1000 and r.json()["total_recipients"] == 49_000
    assert elapsed < 30, elapsed
    # again: everything is a duplicate, nothing changes
    assert add(client, tenant, cid, recipients[:5000]).json()["count"] == 0
    order = run_sql(database, "SELECT jid FROM campaign_recipients WHERE campaign_id = $1 ORDER BY seq LIMIT 2",
                    [U(cid)])
    assert [row["jid"] for row in order] == [jid(0), jid(1)]  # send order = input order
    assert count(database, "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1", [U(cid)]) == 49_000
    too_many = add(client, tenant, cid, [{"jid": jid(n)} for n in range(50_001)])
    assert err(too_many) == (400, "at most 50000 recipients per request")
    page = client.get(f"/api/campaigns/{cid}/recipients?limit=5000", headers=tenant.headers).json()
    assert len(page["recipients"]) == 1000 and page["total"] == 49_000  # pages are capped


# -- R65 / R66 / R72 / R73 ------------------------------------------------------------------------------------
def test_duplicate_attachments_delete(client, make_tenant, database):
    tenant = make_tenant()
    source = create(client, tenant, make_device(client, tenant), scheduled_at="2099-01-01T00:00:00Z",
                    settings={"batch_size": 2}, attachments=[{"media_url": "/a.png", "media_type": "image"}])
    cid = source["id"]
    add(client, tenant, cid, [{"jid": jid(1), "name": "Ana", "metadata": {"k": "v"}}, {"jid": jid(2)}])
    run_sql(database, "UPDATE campaign_recipients SET status = 'sent' WHERE campaign_id = $1", [U(cid)])

    r = client.post(f"/api/campaigns/{cid}/duplicate", headers=tenant.headers)
    assert r.status_code == 201, r.text
    copy = r.json()["campaign"]
    assert copy["name"] == "Promo (copia)" and copy["status"] == "draft" and copy["total_recipients"] == 2
    assert copy["settings"] == {"batch_size": 2} and "scheduled_at" not in copy
    assert copy["message_template"] == "Hola {{nombre}}" and len(copy["attachments"]) == 1
    copied = client.get(f"/api/campaigns/{copy['id']}/recipients", headers=tenant.headers).json()["recipients"]
    assert [(x["jid"], x["status"], x.get("metadata")) for x in copied] == [
        (jid(1), "pending", {"k": "v"}), (jid(2), "pending", None)]
    override = client.post(f"/api/campaigns/{cid}/duplicate", json={"message_template": "Nuevo"},
                           headers=tenant.headers).json()["campaign"]
    assert override["message_template"] == "Nuevo"
    ignored = client.post(f"/api/campaigns/{cid}/duplicate", content=b"{oops", headers=tenant.headers)
    assert ignored.status_code == 201 and ignored.json()["campaign"]["message_template"] == "Hola {{nombre}}"
    assert err(client.post(f"/api/campaigns/{uuid.uuid4()}/duplicate", headers=tenant.headers)) == (404, "Campaign not found")

    r = client.put(f"/api/campaigns/{cid}/attachments", json={"attachments": [
        {"media_url": "/b.pdf", "media_type": "document", "caption": "c1"},
        {"media_url": "/c.mp4", "media_type": "video", "position": 0}]}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert [(a["media_url"], a["position"]) for a in r.json()["attachments"]] == [("/b.pdf", 0), ("/c.mp4", 1)]
    assert client.put(f"/api/campaigns/{cid}/attachments", json={"attachments": []},
                      headers=tenant.headers).json() == {"success": True, "attachments": None}
    # without attachments and with an empty template the campaign would have nothing to send
    client.put(f"/api/campaigns/{cid}/attachments", json={"attachments": [{"media_url": "/a.png", "media_type": "image"}]},
               headers=tenant.headers)
    client.put(f"/api/campaigns/{cid}", json={"message_template": ""}, headers=tenant.headers)
    assert err(client.put(f"/api/campaigns/{cid}/attachments", json={"attachments": []}, headers=tenant.headers)) == (
        400, "message_template or attachments required")

    assert client.delete(f"/api/campaigns/{cid}", headers=tenant.headers).json() == {"success": True}
    assert count(database, "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1", [U(cid)]) == 0
    assert err(client.delete(f"/api/campaigns/{cid}", headers=tenant.headers)) == (404, "Campaign not found")
    assert err(client.get(f"/api/campaigns/{cid}", headers=tenant.headers)) == (404, "Campaign not found")
    assert err(client.get("/api/campaigns/nope", headers=tenant.headers)) == (400, "Invalid campaign ID")
    r = client.post("/api/campaigns/batch-delete", json={"ids": [copy["id"], override["id"], "junk", str(uuid.uuid4())]},
                    headers=tenant.headers)
    assert r.json() == {"deleted": 2, "success": True}


def test_tenant_isolation(client, make_tenant):
    owner, intruder = make_tenant(), make_tenant()
    cid = create(client, owner, make_device(client, owner))["id"]
    add(client, owner, cid, [{"jid": jid(1)}])
    rid = client.get(f"/api/campaigns/{cid}/recipients", headers=owner.headers).json()["recipients"][0]["id"]
    h = intruder.headers
    not_found = (404, "Campaign not found")
    assert err(client.get(f"/api/campaigns/{cid}", headers=h)) == not_found
    assert err(client.put(f"/api/campaigns/{cid}", json={"name": "x"}, headers=h)) == not_found
    assert err(client.get(f"/api/campaigns/{cid}/recipients", headers=h)) == not_found
    assert err(add(client, intruder, cid, [{"jid": jid(2)}])) == not_found
    assert err(client.delete(f"/api/campaigns/{cid}/recipients/{rid}", headers=h)) == not_found
    assert err(client.post(f"/api/campaigns/{cid}/start", headers=h)) == not_found
    assert err(client.post(f"/api/campaigns/{cid}/pause", headers=h)) == not_found
    assert err(client.post(f"/api/campaigns/{cid}/duplicate", headers=h)) == not_found
    assert err(client.put(f"/api/campaigns/{cid}/attachments", json={"attachments": []}, headers=h)) == not_found
    assert err(client.delete(f"/api/campaigns/{cid}", headers=h)) == not_found
    assert client.post("/api/campaigns/batch-delete", json={"ids": [cid]}, headers=h).json()["deleted"] == 0
    assert client.get("/api/campaigns", headers=h).json()["campaigns"] == []
    assert client.get(f"/api/campaigns/{cid}", headers=owner.headers).json()["campaign"]["total_recipients"] == 1
    assert client.get("/api/campaigns").status_code == 401


# -- R97 ---------------------------------------------------------------------------------------------------------
def test_campaign_from_event(client, make_tenant, database):
    tenant, other = make_tenant(), make_tenant()
    device = make_device(client, tenant)
    event = insert_event(database, tenant.account_id, "Feria")
    contact = insert_contact(database, tenant.account_id, name="Ana", last_name="Pérez", short_name="Anita")
    vip = insert_tag(database, tenant.account_id)
    ana = insert_participant(database, event, "Ana", contact_id=contact, phone="+51 987-654-321", status="confirmed")
    run_sql(database, "UPDATE event_participants SET last_name = 'Pérez' WHERE id = $1", [U(ana)])
    bob = insert_participant(database, event, "Bob", phone="912345678", status="confirmed")  # Peru 9-digit
    insert_participant(database, event, "Cy", phone="(51) 912-345-678", status="confirmed")  # same number as Bob
    insert_participant(database, event, "Dee", phone="call me", status="confirmed")  # no number
    insert_participant(database, event, "Eve", status="confirmed")  # no phone
    insert_participant(database, event, "Fay", phone="51955555555", status="invited")
    tag_participant(database, ana, vip)
    tag_participant(database, bob, vip)

    body = {"name": "Recordatorio", "device_id": device, "message_template": "Hola {{nombre_completo}}",
            "status": "confirmed", "has_phone": False}
    r = client.post(f"/api/events/{event}/campaign", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    result = r.json()
    assert result["recipients_count"] == 2 and result["skipped"] == 2 and result["success"] is True
    campaign = result["campaign"]
    assert campaign["source"] == "event" and campaign["event_id"] == event and campaign["status"] == "draft"
    assert campaign["total_recipients"] == 2
    recipients = client.get(f"/api/campaigns/{campaign['id']}/recipients", headers=tenant.headers).json()["recipients"]
    assert [(x["jid"], x["name"], x["phone"], x.get("contact_id")) for x in recipients] == [
        ("51987654321@s.whatsapp.net", "Ana Pérez", "+51 987-654-321", contact),
        ("51912345678@s.whatsapp.net", "Bob", "912345678", None),
    ]

    by_tag = client.post(f"/api/events/{event}/campaign", json={**body, "status": "", "tag_ids": [vip]},
                         headers=tenant.headers).json()
    assert by_tag["recipients_count"] == 2
    everyone = client.post(f"/api/events/{event}/campaign", json={**body, "status": None},
                           headers=tenant.headers).json()
    assert everyone["recipients_count"] == 3  # Fay (invited) too

    assert err(client.post(f"/api/events/{event}/campaign", json={**body, "status": "attended"},
                           headers=tenant.headers)) == (400, "No hay participantes con teléfono que coincidan con los filtros")
    assert err(client.post(f"/api/events/{event}/campaign", json={**body, "tag_ids": ["x"]},
                           headers=tenant.headers)) == (400, "Invalid tag ID")
    assert err(client.post(f"/api/events/{event}/campaign", json={**body, "device_id": "x"},
                           headers=tenant.headers)) == (400, "Invalid device ID")
    assert err(client.post(f"/api/events/{event}/campaign", json={**body, "message_template": ""},
                           headers=tenant.headers)) == (400, "message_template or attachments required")
    assert err(client.post(f"/api/events/{event}/campaign", json=body, headers=other.headers)) == (404, "Event not found")
    assert err(client.post("/api/events/zzz/campaign", json=body, headers=tenant.headers)) == (400, "Invalid event ID")
