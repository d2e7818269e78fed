"""Spintax in campaign messages (issue 20 goal 4, docs/CAMPAIGNS.md "Spintax"): pure functions of compose.py."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clarin.campaigns.compose import (
    SPIN_MAX_DEPTH,
    AttachmentData,
    ContactData,
    RecipientData,
    plan,
    spin,
    spin_seed,
    variant_count,
)
from clarin.campaigns.worker import matched_parts
from tests import support
from tests.test_campaign_worker import (
    FAST,
    QUICK,
    campaign_with,
    connected_device,
    jid,
    make_tenant,
    sent_calls,
    text_of,
    wait_status,
)

ANA = RecipientData(name="Ana", phone="51987654321", metadata={"empresa": "ACME"})
ON = {"randomize_message": True}


def outcomes(template: str, n: int = 400) -> Counter[str]:
    return Counter(spin(template, f"recipient-{i}") for i in range(n))


@pytest.mark.parametrize(
    ("template", "possible"),
    [
        ("{Hola|Buenas}", {"Hola", "Buenas"}),
        ("{a|{b|c}}!", {"a!", "b!", "c!"}),  # nested
        ("{a||b}", {"a", "", "b"}),  # an empty option is an option
        ("x {a|b} y {c|d}", {"x a y c", "x a y d", "x b y c", "x b y d"}),
        ("{{{nombre}}|{{name}}}", {"{{nombre}}", "{{name}}"}),  # placeholders inside options
    ],
)
def test_every_option_is_reachable_and_nothing_else(template: str, possible: set[str]) -> None:
    assert set(outcomes(template)) == possible


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (r"precio \{oferta\} 10\|20", "precio {oferta} 10|20"),  # escapes are literal characters
        (r"{a\|b|c}", None),  # checked below: an escaped bar does not split
        ("abre { y no cierra", "abre { y no cierra"),  # unmatched { is text
        ("cierra } sin abrir", "cierra } sin abrir"),
        ("{a|b", "{a|b"),  # never closed: the bar is text too
        ("{solo}", "{solo}"),  # a group without | stays as written
        ("a | b", "a | b"),  # a bar outside a group
        ("Hola {{nombre}} de {{empresa}}", "Hola {{nombre}} de {{empresa}}"),  # placeholders are not groups
        ("{{ nombre }}", "{{ nombre }}"),
        ("", ""),
        (r"C:\ruta\n", r"C:\ruta\n"),  # other backslashes are kept
    ],
)
def test_literals(template: str, expected: str | None) -> None:
    if expected is None:
        assert set(outcomes(template)) == {"a|b", "c"}
    else:
        assert set(outcomes(template, 50)) == {expected}


def test_unmatched_brace_next_to_a_group_keeps_all_text() -> None:
    assert set(outcomes("{sin cierre {a|b}")) == {"{sin cierre a", "{sin cierre b"}
    assert set(outcomes("{a|b}} fin")) == {"a} fin", "b} fin"}


def test_same_seed_same_text_different_recipients_vary() -> None:
    template = "{Hola|Buenas|Qué tal} {amigo|amiga|crack}, {mira|revisa} esto"
    assert variant_count(template) == 18
    assert spin(template, "r-1") == spin(template, "r-1")
    seen = outcomes(template, 600)
    assert len(seen) == 18  # every combination shows up
    assert max(seen.values()) < 600 * 3 / 18  # no variant dominates (expected 33 each)


def test_hostile_nesting_is_bounded_and_loses_no_text() -> None:
    deep = "{" * (SPIN_MAX_DEPTH + 1) + "a|b" + "}" * (SPIN_MAX_DEPTH + 1)  # the innermost group is one too deep
    assert spin(deep, "s") == deep
    inner = "{" * SPIN_MAX_DEPTH + "a|b" + "}" * SPIN_MAX_DEPTH  # the deepest group that still chooses
    assert set(outcomes(inner, 50)) == {"{" * (SPIN_MAX_DEPTH - 1) + x + "}" * (SPIN_MAX_DEPTH - 1) for x in "ab"}
    many = "{" * 65_536  # no RecursionError, no lost character
    assert spin(many, "s") == many
    text_groups = "{x " * 20_000 + "y" + "}" * 20_000  # 20k nested groups without |: all text, kept whole
    assert spin(text_groups, "s") == text_groups and variant_count(text_groups) == 1
    nested = "{x|" * 20_000 + "y" + "}" * 20_000  # only the outer SPIN_MAX_DEPTH groups choose
    assert variant_count(nested) == SPIN_MAX_DEPTH + 1
    tail = "{x|" * (20_000 - SPIN_MAX_DEPTH) + "y" + "}" * (20_000 - SPIN_MAX_DEPTH)  # what depth 33+ renders as
    assert set(outcomes(nested, 20)) <= {"x", tail}


def test_plan_spins_only_when_randomize_message_is_true() -> None:
    template = "{Hola|Buenas} {{nombre}}"
    assert spin_seed(None, "r") is None and spin_seed({}, "r") is None
    assert spin_seed({"randomize_message": False}, "r") is None
    assert spin_seed({"randomize_message": "true"}, "r") is None  # JSON true only
    assert plan(template, [], ANA)[0].body == "{Hola|Buenas} Ana"  # off: sent as written
    seed = spin_seed(ON, "recipient-1")
    assert seed is not None
    body = plan(template, [], ANA, spin_seed=seed)[0].body
    assert body in {"Hola Ana", "Buenas Ana"}
    assert plan(template, [], ANA, spin_seed=seed)[0].body == body  # the reconcile rule recomputes the same plan


def test_recipient_data_is_never_spun() -> None:
    odd = RecipientData(name="{Ana|Eva}", metadata={"empresa": r"\{X|Y\}"})
    contact = ContactData(short_name="{a|b}")
    parts = plan("{Hola|Hola} {{nombre}} {{empresa}} {{nombre_corto}}", [], odd, contact, spin_seed="s")
    assert parts[0].body == r"Hola {Ana|Eva} \{X|Y\} {a|b}"


def test_captions_are_spun_and_reconcile_matches_the_recomputed_plan() -> None:
    attachments = [AttachmentData("/m/1.png", "image", "{Mira|Ve} {{nombre}}"),
                   AttachmentData("/m/2.pdf", "document", "{menú|carta}")]
    seeds = [spin_seed(ON, f"rec-{i}") for i in range(200)]
    plans = [plan("{Hola|Buenas} {{nombre}}", attachments, ANA, spin_seed=s) for s in seeds]
    assert {p[1].body for p in plans} == {"Mira Ana", "Ve Ana"}
    assert {p[2].body for p in plans} == {"menú", "carta"}
    assert {p[0].body for p in plans} == {"Hola Ana", "Buenas Ana"}
    first = plans[0]
    again = plan("{Hola|Buenas} {{nombre}}", attachments, ANA, spin_seed=seeds[0])
    assert matched_parts(again, [p.body for p in first]) == len(first)


# -- end to end: the campaign worker spins per recipient ---------------------------------------------------------
@pytest.fixture(scope="module")
def spin_server(services: None, log_dir: Path) -> Iterator[tuple[support.ServerProcess, str]]:
    name, dsn = support.create_database()
    try:
        with support.running_server(support.base_env(dsn, **FAST), log_dir, "spintax") as srv:
            yield srv, dsn
    finally:
        support.drop_database(name)


def test_campaign_sends_one_variant_per_recipient(spin_server: tuple[support.ServerProcess, str]) -> None:
    server, dsn = spin_server
    tenant = make_tenant(server.url)
    with httpx.Client(base_url=server.url, headers=tenant.headers, timeout=30) as api:
        device = connected_device(api)
        template = r"{Hola|Buenas|Qué tal} {{nombre}}, {mira|revisa} \{oferta\}"
        spun = campaign_with(api, device, 30, settings={**QUICK, "randomize_message": True},
                             message_template=template)
        plain = campaign_with(api, device, 2, first=100, settings={**QUICK, "randomize_message": False},
                              message_template=template)
        wait_status(api, spun, "completed", timeout=60)
        wait_status(api, plain, "completed", timeout=60)
        calls = sent_calls(api, device)
    texts = {c["to"]: text_of(c) for c in calls}
    spun_texts = [texts[jid(i)] for i in range(30)]
    for i, text in enumerate(spun_texts):  # one option per group, escapes literal, personalised after spinning
        assert text in {f"{greeting} R{i}, {verb} {{oferta}}" for greeting in ("Hola", "Buenas", "Qué tal")
                        for verb in ("mira", "revisa")}, text
    variants = {text.replace(f" R{i},", " R,") for i, text in enumerate(spun_texts)}
    assert len(variants) >= 3, variants  # 6 possible; 30 independent draws show several of them
    assert [texts[jid(100)], texts[jid(101)]] == [r"{Hola|Buenas|Qué tal} R100, {mira|revisa} \{oferta\}",
                                                  r"{Hola|Buenas|Qué tal} R101, {mira|revisa} \{oferta\}"]  # off
    stored = support.run_sql(dsn, "SELECT body FROM messages WHERE device_id = $1 AND is_from_me", [uuid.UUID(device)])
    assert sorted(row["body"] for row in stored) == sorted(texts.values())  # stored as sent (reconcile matches it)
