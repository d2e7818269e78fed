"""R74 CSV/XLSX import against a real server, PostgreSQL and Redis."""

from __future__ import annotations

import io
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import Workbook

from tests import support
from tests.leads_support import (
    assert_silent,
    board_key,
    default_stages,
    descendants,
    lead_rows,
    memory_kib,
    next_event,
    redis_client,
    socket,
    sql,
)


def upload(
    client: httpx.Client, tenant: Any, content: bytes, filename: str = "leads.csv", import_type: str | None = "leads",
    content_type: str = "text/csv",
) -> httpx.Response:
    data = {"import_type": import_type} if import_type is not None else None
    return client.post(
        "/api/import/csv", files={"file": (filename, content, content_type)}, data=data, headers=tenant.headers,
        timeout=120,
    )


def imported(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"success", "imported", "skipped", "errors"} and body["success"] is True
    return body


def by_jid(dsn: str, account_id: str) -> dict[str, dict[str, Any]]:
    return {row["jid"]: row for row in lead_rows(dsn, account_id)}


def contact_rows(dsn: str, account_id: str) -> dict[str, dict[str, Any]]:
    rows = sql(dsn, "SELECT jid, phone, name, email, company, last_name, notes, age FROM contacts "
                    "WHERE account_id = $1", uuid.UUID(account_id))
    return {row["jid"]: row for row in rows}


# -- parsing ------------------------------------------------------------------------------------------
def test_spanish_headers_kommo_separators_and_stage_matching(
    client: httpx.Client, tenant: Any, database: str
) -> None:
    stages = {s["name"]: s for s in default_stages(database, tenant.account_id)}
    csv = (
        "Nombre,Teléfono,Correo,Empresa,Apellidos,Estatus del lead,Edad,Etiquetas,Observaciones\n"
        "Ana;'+51 987-654-321;ana@example.test;ACME;Perez;contactado;34;vip, norte;llamar\n"
        "Luis;(01) 234-5678;;;;Sin etapa;250;;\n"
        "José;\"'912 345 678'\";jose@example.test;;;PROPUESTA;x;;\n"
    ).encode()
    body = imported(upload(client, tenant, csv))
    assert body == {"success": True, "imported": 3, "skipped": 0, "errors": None}
    leads = by_jid(database, tenant.account_id)
    ana = leads["51987654321@s.whatsapp.net"]
    assert (ana["name"], ana["email"], ana["company"], ana["last_name"], ana["age"]) == (
        "Ana", "ana@example.test", "ACME", "Perez", 34)
    assert (ana["tags"], ana["notes"], ana["source"], ana["status"]) == (["vip", "norte"], "llamar", "csv_import", "new")
    assert str(ana["stage_id"]) == stages["Contactado"]["id"]
    assert str(ana["pipeline_id"]) == stages["Contactado"]["pipeline_id"]
    luis = leads["012345678@s.whatsapp.net"]  # no 51 prefixing in imports
    assert str(luis["stage_id"]) == stages["Nuevo"]["id"] and luis["age"] is None and luis["tags"] is None
    jose = leads["912345678@s.whatsapp.net"]
    assert str(jose["stage_id"]) == stages["Propuesta"]["id"] and jose["name"] == "José"


def test_semicolon_and_tab_files(client: httpx.Client, tenant: Any, database: str) -> None:
    semicolon = b"nombre;celular;empresa\nAna;51911000001;\"Uno; Dos\"\nBea;51911000002;Tres\n"
    assert imported(upload(client, tenant, semicolon))["imported"] == 2
    tab = b"name\tphone\tcompany\r\nCid\t51911000003\tCuatro\r\nDan\t51911000004\tCinco\r\n"
    assert imported(upload(client, tenant, tab))["imported"] == 2
    leads = by_jid(database, tenant.account_id)
    assert leads["51911000001@s.whatsapp.net"]["company"] == "Uno; Dos"
    assert leads["51911000004@s.whatsapp.net"]["company"] == "Cinco"
    assert leads["51911000003@s.whatsapp.net"]["name"] == "Cid"


def test_phone_heuristic_without_phone_header(client: httpx.Client, tenant: Any, database: str) -> None:
    csv = b"Nombre,DNI,Codigo,,Contacto\nAna,45678912,12345678,987654321,'+51912000111\nBea,1,2,3,+51 912 000 222\n"
    body = imported(upload(client, tenant, csv))
    assert body["imported"] == 2
    assert set(by_jid(database, tenant.account_id)) == {"51912000111@s.whatsapp.net", "51912000222@s.whatsapp.net"}


def test_bad_rows_are_reported_with_line_numbers(client: httpx.Client, tenant: Any, database: str) -> None:
    csv = (
        "phone,name\n"           # 1
        "51913000001,Good\n"     # 2
        "\n"                     # 3 blank: ignored
        "12345,Short\n"          # 4
        "abc-def,Letters\n"      # 5
        ",Nobody\n"              # 6
        f"51913000002,{'x' * 300}\n"  # 7
        "51913000003,Fine\n"     # 8
    ).encode()
    body = imported(upload(client, tenant, csv))
    assert (body["imported"], body["skipped"]) == (2, 4)
    assert [e.split(":")[0] for e in body["errors"]] == ["row 4", "row 5", "row 6", "row 7"]
    assert "invalid phone" in body["errors"][0] and "invalid phone" in body["errors"][1]
    assert "missing" in body["errors"][2] and "name is too long" in body["errors"][3]
    assert set(by_jid(database, tenant.account_id)) == {"51913000001@s.whatsapp.net", "51913000003@s.whatsapp.net"}


def test_encodings(client: httpx.Client, tenant: Any, database: str) -> None:
    bom = "\ufeffphone,name\n51914000001,Ñandú\n".encode()
    assert imported(upload(client, tenant, bom))["imported"] == 1
    latin = "teléfono;nombre\n51914000002;José Peña\n".encode("latin-1")
    assert imported(upload(client, tenant, latin))["imported"] == 1
    utf16 = "phone\tname\r\n51914000003\tÚrsula\r\n".encode("utf-16")
    assert imported(upload(client, tenant, utf16))["imported"] == 1
    leads = by_jid(database, tenant.account_id)
    assert leads["51914000001@s.whatsapp.net"]["name"] == "Ñandú"
    assert leads["51914000002@s.whatsapp.net"]["name"] == "José Peña"
    assert leads["51914000003@s.whatsapp.net"]["name"] == "Úrsula"


def test_xlsx_import(client: httpx.Client, tenant: Any, database: str) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["Nombre", "Celular", "Etapa", "Edad", "Etiquetas"])
    ws.append(["Ana", 51915000001, "Cerrado", 30, "a,b"])
    ws.append([None, None, None, None, None])
    ws.append(["Bea", "+51 915 000 002", None, 40.0, None])
    ws.append(["Bad", 123, None, None, None])
    buffer = io.BytesIO()
    wb.save(buffer)
    body = imported(upload(client, tenant, buffer.getvalue(), "leads.xlsx",
                           content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))
    assert (body["imported"], body["skipped"]) == (2, 1) and body["errors"][0].startswith("row 5:")
    leads = by_jid(database, tenant.account_id)
    stages = {s["name"]: s["id"] for s in default_stages(database, tenant.account_id)}
    ana = leads["51915000001@s.whatsapp.net"]
    assert (ana["name"], ana["age"], ana["tags"], str(ana["stage_id"])) == ("Ana", 30, ["a", "b"], stages["Cerrado"])
    assert leads["51915000002@s.whatsapp.net"]["age"] == 40


# -- whole-file errors --------------------------------------------------------------------------------
def test_file_level_errors(client: httpx.Client, tenant: Any, database: str) -> None:
    def error(response: httpx.Response) -> tuple[int, str]:
        return response.status_code, response.json()["error"]

    assert error(upload(client, tenant, b"nombre,ciudad\nAna,Lima\n")) == (
        400, "CSV must have a phone/telefono/celular column")
    assert error(upload(client, tenant, b"phone,name\n")) == (
        400, "CSV file must have at least a header and one data row")
    assert error(upload(client, tenant, b"")) == (400, "CSV file must have at least a header and one data row")
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    assert error(upload(client, tenant, png, "photo.csv")) == (400, "file is not a valid CSV or XLSX")
    assert error(upload(client, tenant, b"phone\n51999\n", "fake.xlsx")) == (400, "file is not a valid CSV or XLSX")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("hello.txt", "not a workbook")
    assert error(upload(client, tenant, archive.getvalue(), "book.xlsx")) == (400, "file is not a valid CSV or XLSX")
    assert error(upload(client, tenant, b"phone\n51916000001\n", import_type="people")) == (
        400, "import_type must be 'leads', 'contacts', or 'both'")
    no_file = client.post("/api/import/csv", data={"import_type": "leads"},
                          files={"other": ("x.txt", b"1", "text/plain")}, headers=tenant.headers)
    assert error(no_file) == (400, "CSV file is required")
    not_multipart = client.post("/api/import/csv", json={"file": "phone\n1"}, headers=tenant.headers)
    assert error(not_multipart) == (400, "CSV file is required")
    truncated = client.post(
        "/api/import/csv", content=b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\nph",
        headers={**tenant.headers, "content-type": "multipart/form-data; boundary=xyz"},
    )
    assert error(truncated) == (400, "Invalid multipart body")
    assert lead_rows(database, tenant.account_id) == []
    # import_type defaults to leads when the field is missing
    assert imported(upload(client, tenant, b"phone\n51916000002\n", import_type=None))["imported"] == 1


def test_oversized_upload_is_413(database: str, log_dir: Path, make_tenant: Any) -> None:
    tenant = make_tenant()
    env = support.base_env(database, BODY_LIMIT=str(16 * 1024 * 1024))
    line = b"51917000001,Someone with a long name to fill the file quickly\n"
    content = b"phone,name\n" + line * (30 * 1024 * 1024 // len(line))
    with support.running_server(env, log_dir, "bodylimit") as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        declared = c.post("/api/import/csv", files={"file": ("big.csv", content, "text/csv")},
                          headers=tenant.headers)
        assert (declared.status_code, declared.json()["error"]) == (413, "Request Entity Too Large")

        boundary = "bound123"

        def chunked() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
                   "Content-Type: text/csv\r\n\r\n").encode()
            for start in range(0, len(content), 1 << 20):
                yield content[start:start + (1 << 20)]
            yield f"\r\n--{boundary}--\r\n".encode()

        try:
            streamed = c.post("/api/import/csv", content=chunked(),
                              headers={**tenant.headers, "content-type": f"multipart/form-data; boundary={boundary}"})
            assert (streamed.status_code, streamed.json()["error"]) == (413, "Request Entity Too Large")
        except httpx.TransportError:
            pass  # the server may close the connection while the client is still sending: also a rejection
        small = c.post("/api/import/csv", files={"file": ("ok.csv", b"phone\n51917000002\n", "text/csv")},
                       headers=tenant.headers)
        assert imported(small)["imported"] == 1
    assert set(by_jid(database, tenant.account_id)) == {"51917000002@s.whatsapp.net"}


# -- write semantics ----------------------------------------------------------------------------------
def test_contacts_and_both(client: httpx.Client, tenant: Any, database: str) -> None:
    account = uuid.UUID(tenant.account_id)
    sql(database, "INSERT INTO contacts (account_id, jid, phone, name, email, company) "
                  "VALUES ($1, '51918000001@s.whatsapp.net', '51918000001', 'Old', 'keep@example.test', '')",
        account)
    csv = (b"phone,name,email,company,apellido,notas\n"
           b"51918000001,New Name,other@example.test,Filled Co,Ruiz,hello\n"
           b"51918000002,Second,s@example.test,,,\n")
    body = imported(upload(client, tenant, csv, import_type="contacts"))
    assert body["imported"] == 2
    contacts = contact_rows(database, tenant.account_id)
    first = contacts["51918000001@s.whatsapp.net"]
    assert (first["name"], first["email"], first["company"], first["last_name"], first["notes"]) == (
        "New Name", "keep@example.test", "Filled Co", "Ruiz", "hello")
    assert contacts["51918000002@s.whatsapp.net"]["email"] == "s@example.test"
    assert lead_rows(database, tenant.account_id) == []

    both = imported(upload(client, tenant, b"phone,name\n51918000003,Third\n51918000001,\n", import_type="both"))
    assert both["imported"] == 2
    leads = by_jid(database, tenant.account_id)
    contacts = contact_rows(database, tenant.account_id)
    assert set(leads) == {"51918000003@s.whatsapp.net", "51918000001@s.whatsapp.net"}
    linked = sql(database, "SELECT l.jid FROM leads l JOIN contacts c ON c.id = l.contact_id AND c.jid = l.jid "
                           "WHERE l.account_id = $1", account)
    assert {r["jid"] for r in linked} == set(leads)
    assert contacts["51918000001@s.whatsapp.net"]["name"] == "New Name"  # an empty name never overwrites


def test_reimport_upserts_and_in_file_duplicates(client: httpx.Client, tenant: Any, database: str) -> None:
    csv = b"phone,name,email,tags\n51919000001,First,a@example.test,x\n51919000001,Second,b@example.test,\n"
    body = imported(upload(client, tenant, csv))
    assert (body["imported"], body["errors"]) == (2, None)
    lead = by_jid(database, tenant.account_id)["51919000001@s.whatsapp.net"]
    assert (lead["name"], lead["email"], lead["tags"]) == ("Second", "a@example.test", ["x"])
    imported(upload(client, tenant, b"phone,name,email,tags\n51919000001,Third,c@example.test,\"y,z\"\n"))
    lead = by_jid(database, tenant.account_id)["51919000001@s.whatsapp.net"]
    assert (lead["name"], lead["email"], lead["tags"]) == ("Third", "a@example.test", ["y", "z"])
    assert len(lead_rows(database, tenant.account_id)) == 1


def test_failed_batch_rolls_back_whole_and_is_reported(client: httpx.Client, tenant: Any, database: str) -> None:
    poison = f"poison-{uuid.uuid4().hex[:8]}"
    function = f"fail_{uuid.uuid4().hex[:8]}"
    sql(database, f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                  f"IF NEW.name = '{poison}' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$")
    sql(database, f"CREATE TRIGGER {function} BEFORE INSERT ON leads FOR EACH ROW EXECUTE FUNCTION {function}()")
    try:
        lines = ["phone,name"]
        for i in range(2500):  # file lines 2..2501; batches: 2..1001, 1002..2001, 2002..2501
            lines.append(f"51920{i:06d},{poison if i == 1500 else f'n{i}'}")
        body = imported(upload(client, tenant, ("\n".join(lines) + "\n").encode()))
    finally:
        sql(database, f"DROP TRIGGER {function} ON leads")
        sql(database, f"DROP FUNCTION {function}()")
    assert (body["imported"], body["skipped"]) == (1500, 1000)
    assert body["errors"][0].startswith("row 1002: not saved")
    assert body["errors"][-1].startswith("row 2001: not saved") and len(body["errors"]) == 1000
    count = sql(database, "SELECT count(*) AS n, min(name) AS lo FROM leads WHERE account_id = $1 "
                          "AND jid >= '51920001000' AND jid < '51920002000'", uuid.UUID(tenant.account_id))
    assert count[0]["n"] == 0
    assert len(lead_rows(database, tenant.account_id)) == 1500


# -- cache and events ---------------------------------------------------------------------------------
def test_import_invalidates_cache_and_broadcasts(
    client: httpx.Client, server: Any, make_tenant: Any, database: str
) -> None:
    tenant, other = make_tenant(), make_tenant()
    r = redis_client()
    key = board_key(tenant.account_id)
    assert client.get("/api/leads", headers=tenant.headers).json()["leads"] == []
    assert r.exists(key)
    with socket(server, tenant) as ws, socket(server, other) as foreign:
        body = imported(upload(client, tenant, b"phone,name\n51921000001,A\n51921000002,B\n", import_type="both"))
        assert body["imported"] == 2
        assert next_event(ws, "lead_update")["data"] == {"action": "imported", "count": 2}
        assert next_event(ws, "contact_update")["data"] == {"action": "imported", "count": 2}
        assert_silent(foreign)
    assert not r.exists(key)
    assert len(client.get("/api/leads", headers=tenant.headers).json()["leads"]) == 2
    assert lead_rows(database, other.account_id) == []


# -- volume -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_100k_rows_with_bounded_memory(database: str, log_dir: Path, make_tenant: Any) -> None:
    tenant = make_tenant()
    rows = 100_000
    content = ("telefono;nombre;correo;etapa\n" + "".join(
        f"51{900000000 + i};Lead {i};lead{i}@example.test;Contactado\n" for i in range(rows))).encode()
    with support.running_server(support.base_env(database), log_dir, "volume") as srv, \
            httpx.Client(base_url=srv.url, timeout=300) as c:
        warm = c.post("/api/import/csv", files={"file": ("w.csv", b"phone\n51999999990\n", "text/csv")},
                      headers=tenant.headers)
        assert warm.status_code == 200
        pids = descendants(srv.proc.pid)
        before = {pid: memory_kib(pid, "VmHWM") for pid in pids}
        started = time.monotonic()
        response = c.post("/api/import/csv", files={"file": ("big.csv", content, "text/csv")}, headers=tenant.headers)
        elapsed = time.monotonic() - started
        after = {pid: memory_kib(pid, "VmHWM") for pid in pids}
    body = imported(response)
    assert (body["imported"], body["skipped"], body["errors"]) == (rows, 0, None)
    count = sql(database, "SELECT count(*) AS n FROM leads WHERE account_id = $1 AND source = 'csv_import'",
                uuid.UUID(tenant.account_id))[0]["n"]
    assert count == rows + 1
    growth_mib = max(after[pid] - before[pid] for pid in pids) / 1024
    assert growth_mib < 150, f"server peak RSS grew by {growth_mib:.0f} MiB"
    print(f"100k-row import: {elapsed:.1f}s, peak RSS growth {growth_mib:.1f} MiB")


# -- pure parsing rules (integrations.md D.2–D.5) -----------------------------------------------------
def test_separator_detection_rules() -> None:
    from clarin.crm.csv_rows import detect_separator

    assert detect_separator("a,b;c") == ","  # tie → fixed priority , > ; > tab
    assert detect_separator("a;b\tc") == ";"
    assert detect_separator("a\tb\tc,d") == "\t"
    assert detect_separator('"a;b;c",d') == ","  # separators inside quotes do not count
    assert detect_separator("abc") == ","


def test_phone_heuristic_scores() -> None:
    from clarin.crm.csv_rows import guess_phone_column

    assert guess_phone_column(["contacto", ""], ["+51 987 654 321", "'+51987654321"]) == 1  # 13 < 18
    assert guess_phone_column(["código", ""], ["12345678", "987654321"]) == 1  # 1 < 6
    assert guess_phone_column(["dni", "x"], ["45678912", "(01) 2345678"]) is None
    assert guess_phone_column(["a", "b"], ["12345678", "87654321"]) == 0  # tie → leftmost


def test_row_phone_cleaning() -> None:
    from clarin.crm.csv_rows import clean_phone

    assert clean_phone("'+51987654321") == "51987654321"
    assert clean_phone("+51 987-654-321") == "51987654321"
    assert clean_phone("987654321") == "987654321"
    assert clean_phone("\"'987 654 321'\"") == "987654321"
    assert clean_phone("`51987654321`") == "51987654321"
    assert clean_phone("(01) 234-5678") == "012345678"
