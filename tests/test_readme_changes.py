"""The README's "What changed" list stays the one place a dashboard developer reads: every route (R<number>)
that a feature document lists as changed from the original, and every dashboard-visible answer named below,
must appear there too."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUTE = re.compile(r"\bR(\d+)\b")

# (document, heading of its section on differences from the original)
CHANGE_SECTIONS = [
    ("docs/CAMPAIGNS.md", "## Behaviour changes from the original"),
    ("docs/WHATSAPP.md", "## Differences from the original"),
]
# Answers the dashboard sees that differ from the original, each with the text README must carry.
VISIBLE = [
    "409 device not connected", "503 device is reconnecting, retry", "Retry-After: 1",
    "campaign has no recipients", "ws_clients", "Idempotency-Key", "kommo_synced",
    "JSON nested too deeply (max 64 levels)", "Request contains invalid characters", "400 invalid phone",
    "logout ends only that session", "the one that made it keeps working", "over 72 bytes are refused (`400`)",
    "`last_error`", "`duplicates`", "`skipped`", "`total`", "answer `415`",
]


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end >= 0 else None]


def what_changed() -> str:
    return section((ROOT / "README.md").read_text(), "## What changed from the original service")


def test_every_route_a_feature_document_changed_is_in_whats_changed() -> None:
    readme = {int(n) for n in ROUTE.findall(what_changed())}
    for document, heading in CHANGE_SECTIONS:
        routes = {int(n) for n in ROUTE.findall(section((ROOT / document).read_text(), heading))}
        assert routes, (document, heading)  # the section exists and names routes
        assert routes <= readme, f"{document}: R{sorted(routes - readme)} missing from README's What changed"


def test_dashboard_visible_answers_are_in_whats_changed() -> None:
    text = " ".join(what_changed().split())  # line breaks inside the list do not matter
    assert [phrase for phrase in VISIBLE if phrase not in text] == []
