"""Form request bodies through the real HTTP stack (clarin/http/forms.py): flat body structs read from
``application/x-www-form-urlencoded`` and ``multipart/form-data`` as Fiber's BodyParser did, nested ones and
XML answered 415, and the JSON body rules (wrong types 400, NUL 400) kept for forms."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, Tenant

URLENCODED = "application/x-www-form-urlencoded"
NUL = {"success": False, "error": "Request contains invalid characters", "detail": "NUL character in a form field"}


def multipart(fields: dict[str, str]) -> dict[str, Any]:
    """httpx sends ``files`` entries without a filename as plain multipart text fields."""
    return {"files": {name: (None, value) for name, value in fields.items()}}


def first_stage(client: httpx.Client, tenant: Tenant) -> tuple[str, str]:
    pipelines = client.get("/api/pipelines", headers=tenant.headers).json()["pipelines"]
    pipeline = next(p for p in pipelines if p["stages"])
    return pipeline["id"], pipeline["stages"][0]["id"]


def test_login_with_a_urlencoded_form_and_with_multipart_fields(client: httpx.Client) -> None:
    form = client.post("/api/auth/login", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD})
    assert form.request.headers["content-type"] == URLENCODED
    assert form.status_code == 200, form.text
    assert form.json()["success"] is True and form.json()["token"]
    parts = client.post("/api/auth/login", **multipart({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))
    assert parts.request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert parts.status_code == 200, parts.text
    wrong = client.post("/api/auth/login", data={"username": ADMIN_USER, "password": "not-the-password"})
    assert wrong.status_code == 401, wrong.text


def test_flat_routes_take_forms_with_text_numbers_booleans_and_lists(client: httpx.Client, tenant: Tenant) -> None:
    h = tenant.headers
    tag = client.post("/api/tags", data={"name": "Desde formulario", "color": "#112233"}, headers=h)
    assert tag.status_code == 201, tag.text
    assert (tag.json()["tag"]["name"], tag.json()["tag"]["color"]) == ("Desde formulario", "#112233")
    reply = client.post("/api/quick-replies", headers=h, **multipart({"shortcut": "/hola", "title": "Hola",
                                                                       "body": "Hola, ¿cómo estás?"}))
    assert reply.status_code == 201, reply.text
    assert reply.json()["quick_reply"]["body"] == "Hola, ¿cómo estás?"
    profile = client.put("/api/settings/profile", data={"name": "Nombre de formulario"}, headers=h)
    assert profile.status_code == 200, profile.text
    assert client.get("/api/me", headers=h).json()["user"]["display_name"] == "Nombre de formulario"
    # a number sent as text (msgspec strict=False); an empty value of a non-text field is absent (Fiber)
    pipeline_id, stage_id = first_stage(client, tenant)
    moved = client.put(f"/api/pipelines/{pipeline_id}/stages/{stage_id}", headers=h,
                       data={"name": "Etapa formulario", "position": "7"})
    assert moved.status_code == 200, moved.text
    renamed = client.put(f"/api/pipelines/{pipeline_id}/stages/{stage_id}", headers=h,
                         data={"name": "Etapa renombrada", "position": ""})
    assert renamed.status_code == 200, renamed.text
    stage = next(s for p in client.get("/api/pipelines", headers=h).json()["pipelines"]
                 for s in p["stages"] if s["id"] == stage_id)
    assert (stage["name"], stage["position"]) == ("Etapa renombrada", 7)
    empty_text = client.put(f"/api/pipelines/{pipeline_id}/stages/{stage_id}", headers=h, data={"color": ""})
    assert empty_text.json() == {"success": False, "error": "Color cannot be empty"}  # "" stays "" for text
    # a repeated key fills a list field; booleans take Go's ParseBool spellings
    leads = [client.post("/api/leads", headers=h, data={"name": f"L{i}", "phone": f"5198765{i:04d}"})
             for i in range(3)]
    assert [lead.status_code for lead in leads] == [201, 201, 201], [lead.text for lead in leads]
    ids = [lead.json()["lead"]["id"] for lead in leads]
    unlabelled = client.request("DELETE", "/api/leads/batch", headers=h, content=f"ids={ids[0]}&all=F")
    assert unlabelled.status_code == 400, unlabelled.text  # no Content-Type: read as JSON, as before
    deleted = client.request("DELETE", "/api/leads/batch", headers={**h, "content-type": URLENCODED},
                             content=f"ids={ids[0]}&ids={ids[1]}&all=F")
    assert deleted.status_code == 200, deleted.text
    remaining = [lead["id"] for lead in client.get("/api/leads", headers=h).json()["leads"]]
    assert remaining == [ids[2]]


def test_json_without_or_with_another_content_type_still_works(client: httpx.Client, tenant: Tenant) -> None:
    for content_type in (None, "text/plain", "application/octet-stream", "application/json; charset=utf-8"):
        headers = {**tenant.headers, **({"content-type": content_type} if content_type else {})}
        name = f"json-{uuid.uuid4().hex[:6]}"
        response = client.post("/api/tags", headers=headers, content=f'{{"name": "{name}"}}'.encode())
        assert response.status_code == 201, (content_type, response.text)
        assert response.json()["tag"]["name"] == name


def test_nested_struct_routes_and_xml_answer_415(client: httpx.Client, tenant: Tenant) -> None:
    h = tenant.headers
    for send in ({"data": {"name": "Campaña"}}, multipart({"name": "Campaña"})):
        response = client.post("/api/campaigns", headers=h, **send)
        assert response.status_code == 415, response.text
        assert response.json() == {
            "success": False,
            "error": "This route takes a JSON body (application/json): its fields do not fit a flat form"}
    assert client.get("/api/campaigns", headers=h).json()["campaigns"] == []  # nothing was created
    for xml in ("application/xml", "text/xml; charset=utf-8"):
        response = client.post("/api/tags", headers={**h, "content-type": xml}, content=b"<tag><name>x</name></tag>")
        assert response.status_code == 415, response.text
        assert response.json() == {"success": False,
                                   "error": "XML request bodies are not supported: send application/json"}
    # the connection stays usable after a 415 answered before the body was read
    assert client.get("/api/tags", headers=h).status_code == 200


def test_wrong_types_in_form_fields_are_400(client: httpx.Client, tenant: Tenant) -> None:
    h = tenant.headers
    pipeline_id, stage_id = first_stage(client, tenant)
    url = f"/api/pipelines/{pipeline_id}/stages/{stage_id}"
    for send in ({"data": {"position": "siete"}}, multipart({"position": "1.5"})):
        response = client.put(url, headers=h, **send)
        assert response.status_code == 400, response.text
        assert "position" in response.json()["detail"]
    response = client.request("DELETE", "/api/leads/batch", headers={**h, "content-type": URLENCODED},
                              content=b"all=maybe")
    assert response.status_code == 400 and "all" in response.json()["detail"], response.text
    bad_utf8 = client.post("/api/tags", headers={**h, "content-type": URLENCODED}, content=b"name=%FF%FE")
    assert bad_utf8.status_code == 400, bad_utf8.text
    no_boundary = client.post("/api/tags", headers={**h, "content-type": "multipart/form-data"}, content=b"x")
    assert no_boundary.status_code == 400, no_boundary.text
    # a Content-Type with bytes outside latin-1 (clients can send them) is a 4xx or read as usual, never a 500
    euro = "€".encode()
    odd_boundary = client.post("/api/tags", headers={**h, "content-type": b"multipart/form-data; boundary=" + euro},
                               content=b"--x--")
    assert odd_boundary.status_code == 400, odd_boundary.text
    odd_json = client.post("/api/tags", headers={**h, "content-type": b"application/json; x=" + euro},
                           content=b'{"name": "odd header"}')
    assert odd_json.status_code == 201, odd_json.text


def test_nul_in_form_values_and_keys_is_400(client: httpx.Client, tenant: Tenant) -> None:
    h = tenant.headers
    for body in (b"name=a%00b", b"na%00me=x&name=ok"):
        response = client.post("/api/tags", headers={**h, "content-type": URLENCODED}, content=body)
        assert (response.status_code, response.json()) == (400, NUL), response.text
    response = client.post("/api/tags", headers=h, **multipart({"name": "a\x00b"}))
    assert (response.status_code, response.json()) == (400, NUL), response.text
    assert client.get("/api/tags", headers=h).json()["tags"] == []
