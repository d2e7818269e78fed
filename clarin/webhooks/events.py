"""The event names a subscription may ask for: every data-change event of the WebSocket (docs/EVENTS.md).

Ephemeral events (``typing``, ``presence``, ``qr_code``, ``pong``) change no stored data and are not
delivered; ``ping`` is what ``POST /api/webhooks/:id/test`` sends; ``webhook_disabled`` goes to the dashboard
only (the subscription it names is failing)."""

from __future__ import annotations

WEBHOOK_EVENTS: frozenset[str] = frozenset({
    # CRM
    "lead_update", "pipeline_update", "tag_update", "tag_assignment", "contact_update", "event_update",
    "participant_update", "interaction_update", "quick_reply_update",
    # Inbox and WhatsApp
    "new_message", "message_sent", "message_status", "message_update", "message_reaction", "poll_update",
    "chat_update", "contacts_synced", "device_status",
    # Campaigns and scheduled messages
    "campaign_status", "campaign_progress", "scheduled_message",
    # Number health (docs/NUMBER_HEALTH.md)
    "device_health",
})
ALL = "*"
PING = "ping"
DISABLED_EVENT = "webhook_disabled"
