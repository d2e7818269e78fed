"""Poll helpers shared by the inbound ingestion (B.9): body text, chat preview, vote hashes, wire rows.

WhatsApp identifies an option in a vote by SHA-256 of its name; the vote upsert
(``ingest_upsert_poll_votes``) maps the hashes back to names in SQL with
``encode(sha256(convert_to(name, 'UTF8')), 'hex')``, so only hex strings cross the wire.
"""

from __future__ import annotations

from typing import Any

from clarin.wire.messages import PollOption, PollVote

POLL_PREFIX = "📊 "


def poll_body(question: str, options: list[str]) -> str:
    """``📊 ¿Asistes?\\n1. Sí\\n2. No`` (B.9)."""
    return POLL_PREFIX + question + "".join(f"\n{i}. {name}" for i, name in enumerate(options, 1))


def poll_preview(question: str) -> str:
    """The chat's ``last_message`` for a poll."""
    return POLL_PREFIX + question


def hashes_hex(hashes: list[bytes]) -> list[str]:
    return [bytes(h).hex() for h in hashes]


def option_from_row(row: dict[str, Any]) -> PollOption:
    return PollOption(id=str(row["id"]), message_id=str(row["message_id"]), name=row["name"],
                      vote_count=int(row["vote_count"] or 0))


def vote_from_row(row: dict[str, Any]) -> PollVote:
    return PollVote(id=str(row["id"]), message_id=str(row["message_id"]), voter_jid=row["voter_jid"],
                    selected_names=list(row["selected_names"] or []), timestamp=row["timestamp"])
