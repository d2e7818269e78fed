"""Kommo CRM → Clarin one-way sync (spec integrations.md part A, api.md R105–R112).

``client`` (HTTP + retries) → ``limiter`` (shared request budget) → ``sync`` (data rules, batch writes)
→ ``poller`` (``KommoService``: poller, worker, full sync, status) → ``routes``. ``locks`` and ``status``
hold the cross-process pieces.
"""
