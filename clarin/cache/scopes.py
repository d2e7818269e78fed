"""Page-cache scopes: which data each cached read depends on, and which data each event says changed.

A *scope* is a slice of an account's data with its own generation in Redis (clarin.cache.pages). A cached
read is keyed by the generations of every scope its body is built from; a change moves the scopes it may
have touched to new generations. So an inbound message (messages, chats, the sender's contact) leaves the
cached leads pages alone, while a lead change retires every read that shows leads.

The rule is conservative on both sides:

* a read lists every scope whose tables its SQL reads (joins, filters and counts included);
* an event lists every scope its emitters may have written, including what cascades and syncs rewrite
  (a lead edit syncs into its contact, a merge moves chats and messages, a tag deletion cascades);
* an event not listed here retires every scope, and so does a read not listed here (it depends on all).

Scopes (tables):

=========  ==============================================================================
leads      leads, lead_tags, pipelines, pipeline_stages (leads embed stage name/colour/position)
contacts   contacts, contact_tags, contact_device_names
tags       tags (names and colours embedded in lead and contact pages)
chats      chats
messages   messages, message_reactions, poll_options, poll_votes
devices    devices (name/phone shown in chat pages, connected count in stats)
=========  ==============================================================================

When a read's SQL starts joining another table, or a writer starts touching another table without an event
that names its scope, update the tables below (tests/test_page_cache_scopes.py checks the mapping's shape).
"""

from __future__ import annotations

from collections.abc import Iterable

LEADS = "leads"
CONTACTS = "contacts"
TAGS = "tags"
CHATS = "chats"
MESSAGES = "messages"
DEVICES = "devices"
ALL: tuple[str, ...] = (CHATS, CONTACTS, DEVICES, LEADS, MESSAGES, TAGS)  # sorted: keys are built in this order

# Event name → scopes its emitters may change. docs/EVENTS.md lists the events and who emits them.
EVENT_SCOPES: dict[str, frozenset[str]] = {
    # CRM
    "lead_update": frozenset({LEADS, CONTACTS}),  # R41 syncs lead → contact; Kommo sync writes contacts too
    "pipeline_update": frozenset({LEADS}),  # stages embedded in leads; deletes detach leads
    "tag_update": frozenset({TAGS, LEADS, CONTACTS, CHATS}),  # delete cascades to every tag link
    "tag_assignment": frozenset({LEADS, CONTACTS, CHATS}),  # entity_type lead / contact / chat
    "contact_update": frozenset({CONTACTS, LEADS, CHATS, MESSAGES}),  # syncs into leads; merges move chats
    "contacts_synced": frozenset({CONTACTS}),  # device address book → contacts
    # Inbox and ingestion
    "new_message": frozenset({MESSAGES, CHATS, CONTACTS}),  # the sender's contact is upserted (name, new)
    "message_sent": frozenset({MESSAGES, CHATS}),
    "message_update": frozenset({MESSAGES, CHATS}),  # edit / revoke (the chat preview may follow)
    "message_reaction": frozenset({MESSAGES, CHATS}),  # R29 upserts the chat of the target
    "message_status": frozenset({MESSAGES}),
    "poll_update": frozenset({MESSAGES}),
    "chat_update": frozenset({CHATS, MESSAGES}),  # deletes cascade to messages
    "device_status": frozenset({DEVICES, CHATS, CONTACTS, MESSAGES}),  # a deleted device is SET NULL there
    # Data no cached read shows (events, participants, interactions, quick replies, campaigns, webhooks).
    # Writers of these that also change a cached scope emit that scope's event too (an R94 edit synced
    # into a contact → contact_update; campaign sends → message_sent; recipients creating contacts retire
    # the page cache themselves).
    "event_update": frozenset(),
    "participant_update": frozenset(),
    "interaction_update": frozenset(),
    "quick_reply_update": frozenset(),
    "campaign_status": frozenset(),
    "campaign_progress": frozenset(),
    "device_health": frozenset(),  # devices.health* and campaign pauses: no cached read shows them
    "scheduled_message": frozenset(),  # its send emits message_sent (messages, chats) itself
    "webhook_update": frozenset(),
    "webhook_disabled": frozenset(),
    # No stored change at all.
    "typing": frozenset(),
    "presence": frozenset(),
    "qr_code": frozenset(),
    "pong": frozenset(),
}

# Cached read (handler ``module.qualname``, or a key given to PageCache.fetch) → scopes its body is built from.
READ_SCOPES: dict[str, tuple[str, ...]] = {
    "clarin.crm.leads_routes.list_leads": (LEADS, TAGS),  # board, pages, counts: leads + stages + tags
    "clarin.crm.leads_routes.get_lead": (LEADS, TAGS),
    "clarin.crm.contacts_routes.list_contacts": (CONTACTS, TAGS),
    "clarin.messaging.chats_routes.list_chats": (CHATS, CONTACTS, DEVICES),  # contact/device join, tag filter
    "clarin.messaging.messages_routes.chat_messages": (CHATS, MESSAGES),  # the chat must exist
    "stats:counts": (CONTACTS, DEVICES, LEADS),  # GET /api/stats (clarin.crm.stats_routes.COUNTS_KEY)
}


# Events after which the board cache (``<prefix>:leads:<account>``, clarin.crm.leads_cache) must go too: every
# change of what GET /api/leads shows is announced by one of them (a lead tag link also sends lead_update
# tags_changed; a contact link, tag_assignment alone, leaves the board alone). Unknown events drop it as well.
BOARD_EVENTS = frozenset({"lead_update", "pipeline_update", "tag_update"})


def drops_board(events: Iterable[str]) -> bool:
    return any(event in BOARD_EVENTS or event not in EVENT_SCOPES for event in events)


def changed_scopes(events: Iterable[str]) -> frozenset[str]:
    """The scopes a batch of events may have changed (every scope for an unknown event)."""
    scopes: set[str] = set()
    for event in events:
        known = EVENT_SCOPES.get(event)
        if known is None:
            return frozenset(ALL)
        scopes.update(known)
    return frozenset(scopes)


def read_scopes(name: str) -> tuple[str, ...]:
    """The scopes of a cached read, in key order (every scope for a read not listed)."""
    found = READ_SCOPES.get(name)
    return ALL if found is None else tuple(sorted(found))
