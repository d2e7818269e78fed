"""Campaign message composition (integrations.md C.5 step 5, C.6) and settings (C.1): pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clarin.campaigns.compose import (
    ATTACHMENT_PAUSE,
    AttachmentData,
    ContactData,
    Part,
    RecipientData,
    personalize,
    plan,
)
from clarin.campaigns.settings import DEFAULT_SETTINGS, Pacing, parse_hhmm, validate
from clarin.campaigns.worker import matched_parts
from clarin.http.errors import HTTPError

ANA = RecipientData(name="Ana", phone="51987654321", metadata={"empresa": "ACME", "ciudad": "Lima", "edad": 30})
CONTACT = ContactData(name="Ana María", last_name="Pérez", short_name="Anita")


# The spec's table (C.6), plus the edge rows.
@pytest.mark.parametrize(
    ("template", "recipient", "contact", "expected"),
    [
        ("Hola {{nombre}}!", ANA, CONTACT, "Hola Ana!"),
        ("Hi {{name}}, tel {{celular}}", ANA, CONTACT, "Hi Ana, tel 51987654321"),
        ("{{telefono}} / {{phone}}", ANA, None, "51987654321 / 51987654321"),
        ("{{nombre_completo}} / {{nombre_corto}}", ANA, CONTACT, "Ana María Pérez / Anita"),
        ("{{empresa}} en {{ciudad}}", ANA, CONTACT, "ACME en Lima"),
        ("Edad {{edad}}", ANA, CONTACT, "Edad {{edad}}"),  # non-string metadata stays literal
        ("Hola {{ nombre }}", ANA, CONTACT, "Hola {{ nombre }}"),  # spaces
        ("Hola {{Nombre}}", ANA, CONTACT, "Hola {{Nombre}}"),  # case
        ("Hola {{nombre}}", RecipientData(name=None), None, "Hola {{nombre}}"),
        ("Hola {{nombre}}", RecipientData(name=""), None, "Hola {{nombre}}"),
        ("{{nombre_completo}}", ANA, None, "{{nombre_completo}}"),  # no linked contact
        ("{{nombre_completo}}", ANA, ContactData(name="Ana", last_name="P", custom_name="Sra. Pérez"), "Sra. Pérez"),
        ("{{nombre_completo}}", ANA, ContactData(last_name="Pérez"), "Pérez"),
        ("{{nombre_completo}}|{{nombre_corto}}", ANA, ContactData(), "{{nombre_completo}}|{{nombre_corto}}"),
        ("Tel: {{phone}}", RecipientData(name="Ana", phone=""), None, "Tel: "),  # "" (not NULL) replaces
        ("Tel: {{phone}}", RecipientData(name="Ana", phone=None), None, "Tel: {{phone}}"),
        ("{{nombre}} {{nombre}} {{name}}", ANA, None, "Ana Ana Ana"),  # every occurrence
        ("{{desconocido}} {{nombre}}", ANA, None, "{{desconocido}} Ana"),  # unknown stays literal
        ("{{vacio}}", RecipientData(metadata={"vacio": ""}), None, "{{vacio}}"),  # empty string ignored
        ("{{ok}}", RecipientData(metadata={"ok": True}), None, "{{ok}}"),  # bools ignored
        ("", ANA, CONTACT, ""),
        ("sin variables", ANA, CONTACT, "sin variables"),
        # single pass in the spec's order: a name holding a later placeholder gets it replaced too
        ("{{nombre}}", RecipientData(name="{{phone}}", phone="123"), None, "123"),
        # metadata may fill a name placeholder left unresolved
        ("{{nombre}}", RecipientData(name="", metadata={"nombre": "Meta"}), None, "Meta"),
    ],
)
def test_personalize_table(template: str, recipient: RecipientData, contact: ContactData | None, expected: str) -> None:
    assert personalize(template, recipient, contact) == expected


IMG = AttachmentData("/api/media/file/a/1.png", "image", "")
DOC = AttachmentData("/api/media/file/a/2.pdf", "document", "Para {{nombre}}")


def test_plan_matrix() -> None:
    r = RecipientData(name="Ana")
    # text + exactly one attachment without caption → one media message, text as caption
    assert plan("Hola {{nombre}}", [IMG], r) == [Part("Hola Ana", IMG.media_url, "image")]
    # text + one attachment WITH caption → text, then the attachment (1.5 s before it, personalised caption)
    assert plan("Hola", [DOC], r) == [Part("Hola"), Part("Para Ana", DOC.media_url, "document", ATTACHMENT_PAUSE)]
    # text + several → text then each, in the given order
    assert plan("Hola", [IMG, DOC], r) == [
        Part("Hola"), Part("", IMG.media_url, "image", ATTACHMENT_PAUSE),
        Part("Para Ana", DOC.media_url, "document", ATTACHMENT_PAUSE),
    ]
    # no text → attachments only, a pause between them (not before the first)
    assert plan("", [IMG, DOC], r) == [Part("", IMG.media_url, "image"),
                                        Part("Para Ana", DOC.media_url, "document", ATTACHMENT_PAUSE)]
    assert plan("", [IMG], r) == [Part("", IMG.media_url, "image")]
    # no attachments: legacy campaign media with the text as caption, else plain text
    assert plan("Hola", [], r, media_url="/x.jpg", media_type="image") == [Part("Hola", "/x.jpg", "image")]
    assert plan("Hola", [], r, media_url="/x.jpg", media_type=None) == [Part("Hola")]
    assert plan("Hola {{nombre}}", [], r) == [Part("Hola Ana")]


def test_reconcile_matches_parts_by_body() -> None:
    parts = [Part("Hola"), Part("Para Ana", "/d.pdf", "document", ATTACHMENT_PAUSE)]
    assert matched_parts(parts, ["Hola", "Para Ana"]) == 2
    assert matched_parts(parts, ["Hola"]) == 1
    assert matched_parts(parts, ["otra cosa"]) == 0  # someone else's message to the same JID
    assert matched_parts([Part("x"), Part("x")], ["x"]) == 1  # each stored message counts once


def test_settings_reading() -> None:
    p = Pacing.from_settings(DEFAULT_SETTINGS, "America/Lima")
    assert (p.min_delay, p.max_delay, p.batch_size, p.batch_pause, p.daily_limit) == (8, 15, 25, 2, 1000)
    # aliases, float truncation, strings and bools ignored, min > max → min = max, no negative
    p = Pacing.from_settings({"min_delay": 9.9, "max_delay_seconds": 5, "batch_size": "10", "batch_pause": True,
                              "daily_limit": -3}, None)
    assert (p.min_delay, p.max_delay, p.batch_size, p.batch_pause, p.daily_limit) == (5, 5, 25, 2, 0)
    assert Pacing.from_settings({"batch_size": 0}, None).batch_size == 1
    assert Pacing.from_settings(None, None).start is None  # no active hours configured → any time


def test_active_hours_in_the_campaign_time_zone() -> None:
    noon_utc = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)  # 07:00 in Lima (UTC-5)
    lima = Pacing.from_settings({"active_hours_start": "07:00", "active_hours_end": "22:00"}, "America/Lima")
    assert lima.in_active_hours(noon_utc)
    assert not lima.in_active_hours(datetime(2030, 1, 15, 11, 59, tzinfo=UTC))  # 06:59 Lima
    assert not lima.in_active_hours(datetime(2030, 1, 16, 3, 0, tzinfo=UTC))  # 22:00 Lima: end excluded
    tokyo = Pacing.from_settings({"active_hours_start": "07:00", "active_hours_end": "22:00",
                                  "timezone": "Asia/Tokyo"}, "America/Lima")
    late = datetime(2030, 1, 15, 14, 0, tzinfo=UTC)  # 09:00 in Lima, 23:00 in Tokyo
    assert lima.in_active_hours(late) and not tokyo.in_active_hours(late)  # settings.timezone wins
    assert tokyo.in_active_hours(datetime(2030, 1, 15, 0, 0, tzinfo=UTC))  # 09:00 Tokyo
    night = Pacing.from_settings({"active_hours_start": "22:00", "active_hours_end": "06:00"}, "UTC")
    assert night.in_active_hours(datetime(2030, 1, 15, 23, 0, tzinfo=UTC))
    assert night.in_active_hours(datetime(2030, 1, 15, 5, 59, tzinfo=UTC))
    assert not night.in_active_hours(datetime(2030, 1, 15, 12, 0, tzinfo=UTC))
    # the daily window starts at local midnight
    assert lima.day_start(noon_utc) == datetime(2030, 1, 15, 5, 0, tzinfo=UTC)
    assert lima.next_day_start(noon_utc) == datetime(2030, 1, 16, 5, 0, tzinfo=UTC)


def test_settings_validation() -> None:
    assert parse_hhmm("7:05") is not None and parse_hhmm("24:00") is not None
    for bad in ("25:00", "7", "ab:cd", 700, "07:60"):
        assert parse_hhmm(bad) is None
    with pytest.raises(HTTPError) as exc:
        validate({"active_hours_start": "late"})
    assert exc.value.status == 400
    with pytest.raises(HTTPError):
        validate({"timezone": "Mars/Olympus"})
    assert validate({"timezone": "Europe/Madrid", "anything": [1, 2]})["anything"] == [1, 2]
