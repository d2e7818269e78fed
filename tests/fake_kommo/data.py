"""Deterministic Kommo data: pipelines with statuses, tags, contacts (PHONE/EMAIL custom fields), leads.

Everything is derived from ``random.Random(seed)``, so two calls with the same arguments give equal data.
The phones cover every shape the sync must handle: ``+51 987-654-321``, ``'987654321``, plain, ``(+51) …``,
empty, letters, numbers sent as JSON numbers, no PHONE field, duplicates of another contact's phone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

BASE_UPDATED_AT = 1_700_000_000  # leads/contacts start "old" (2023): outside any overlap window

MAIN_PIPELINE = 7001
SECOND_PIPELINE = 7002


@dataclass
class Dataset:
    account: dict[str, Any]
    pipelines: dict[int, dict[str, Any]] = field(default_factory=dict)  # id → pipeline with statuses
    tags: dict[int, str] = field(default_factory=dict)  # id → name
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)  # id → Kommo contact JSON
    leads: dict[int, dict[str, Any]] = field(default_factory=dict)  # id → internal lead record
    raw_leads: dict[int, list[Any]] = field(default_factory=dict)  # pipeline id → malformed items to inject


def _statuses(pipeline_id: int, names: list[str], first_id: int) -> list[dict[str, Any]]:
    colors = ["#99ccff", "#ffff99", "fffeb2", "#ffcc66", "#ccff66", "#deff81"]  # one without '#'
    out = [
        {"id": first_id + i, "name": name, "sort": 10 * (i + 1), "color": colors[i % len(colors)],
         "pipeline_id": pipeline_id, "is_editable": True, "type": 0}
        for i, name in enumerate(names)
    ]
    out.append({"id": 142, "name": "Logrado con éxito", "sort": 10000, "color": "#CCFF66",
                "pipeline_id": pipeline_id, "type": 0})
    out.append({"id": 143, "name": "Venta perdida", "sort": 11000, "color": "#D5D8DB",
                "pipeline_id": pipeline_id, "type": 0})
    return out


def _digits(rnd: random.Random) -> str:
    return "9" + "".join(str(rnd.randrange(10)) for _ in range(8))


def _phone_value(rnd: random.Random, index: int, used: list[str]) -> Any:
    """A PHONE value in one of many shapes (None = the contact has no PHONE field at all)."""
    kind = index % 20
    d = _digits(rnd)
    if kind == 0:
        return f"+51 {d[:3]}-{d[3:6]}-{d[6:]}"
    if kind == 1:
        return f"'{d}"
    if kind == 2:
        return f"(+51) {d[:3]} {d[3:6]} {d[6:]}"
    if kind == 3:
        return ""
    if kind == 4:
        return "sin número"
    if kind == 5:
        return int("51" + d)  # a JSON number: ignored by the extraction rule (A.12)
    if kind == 6:
        return None
    if kind == 7 and used:
        return used[rnd.randrange(len(used))]  # same phone as an earlier contact
    if kind == 8:
        return f"  51{d}\t"
    return d


def generate(n_leads: int = 10_000, seed: int = 1, n_tags: int = 30) -> Dataset:
    rnd = random.Random(seed)
    data = Dataset(account={"id": 31337, "name": "Fake Kommo", "subdomain": "x", "currency": "PEN",
                            "country": "PE"})
    data.pipelines[MAIN_PIPELINE] = {
        "id": MAIN_PIPELINE, "name": "Ventas", "sort": 1, "is_main": True,
        "statuses": _statuses(MAIN_PIPELINE, ["Incoming", "Contacto inicial", "Negociación", "Propuesta",
                                              "Cierre"], 80001),
    }
    data.pipelines[SECOND_PIPELINE] = {
        "id": SECOND_PIPELINE, "name": "Postventa", "sort": 2, "is_main": False,
        "statuses": _statuses(SECOND_PIPELINE, ["Nuevo", "Seguimiento", "Fidelizado"], 81001),
    }
    for i in range(n_tags):
        data.tags[5001 + i] = f"tag-{i:02d}" if i % 7 else f"'Etiqueta {i}"
    tag_ids = list(data.tags)
    used_phones: list[str] = []
    contact_ids: list[int] = []
    for i in range(n_leads):
        lead_id = 100_000 + i
        pipeline = MAIN_PIPELINE if i % 5 else SECOND_PIPELINE
        statuses = [s["id"] for s in data.pipelines[pipeline]["statuses"]]
        contact_id: int | None
        roll = rnd.random()
        if roll < 0.04:
            contact_id = None  # lead without contact
        elif roll < 0.07 and contact_ids:
            contact_id = contact_ids[rnd.randrange(len(contact_ids))]  # shares a contact
        else:
            contact_id = 500_000 + i
            phone = _phone_value(rnd, i, used_phones)
            if isinstance(phone, str) and phone and len(used_phones) < 1000:
                used_phones.append(phone)
            fields: list[dict[str, Any]] = []
            if phone is not None:
                fields.append({"field_id": 1, "field_name": "Teléfono", "field_code": "PHONE", "field_type": "multitext",
                               "values": [{"value": phone, "enum_id": 1, "enum_code": "WORK"}]})
            if i % 3 == 0:
                fields.insert(0, {"field_id": 2, "field_name": "Email", "field_code": "EMAIL",
                                  "field_type": "multitext", "values": [{"value": f"c{i}@example.test"}]})
            first = "" if i % 11 == 0 else (f"'Nombre {i}" if i % 13 == 0 else f"Nombre {i}")
            name = "" if (i % 11 == 0 and i % 2 == 0) else f"Contacto {i}"
            ctags = [{"id": t, "name": data.tags[t]} for t in rnd.sample(tag_ids, rnd.randrange(0, 2))]
            data.contacts[contact_id] = {
                "id": contact_id, "name": name, "first_name": first, "last_name": f"Apellido{i}" if i % 4 else "",
                "responsible_user_id": 1, "created_at": BASE_UPDATED_AT, "updated_at": BASE_UPDATED_AT + i,
                "custom_fields_values": fields or None, "_embedded": {"tags": ctags},
            }
            contact_ids.append(contact_id)
        lead_name = "" if i % 17 == 0 else (f"  'Lead {i}" if i % 9 == 0 else f"Lead {i}")
        data.leads[lead_id] = {
            "id": lead_id, "name": lead_name, "pipeline_id": pipeline,
            "status_id": statuses[rnd.randrange(len(statuses))],
            "tags": rnd.sample(tag_ids, rnd.choice([0, 0, 1, 1, 2, 3])),
            "contacts": [contact_id] if contact_id is not None else [],
            "updated_at": BASE_UPDATED_AT + i, "price": rnd.randrange(10_000),
        }
    return data
