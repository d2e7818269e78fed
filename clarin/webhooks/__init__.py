"""Outgoing webhooks (issue 15, docs/WEBHOOKS.md): subscriptions (routes, service), the durable outbox
(outbox), signing (signing), the target-address rule (targets) and the cluster-wide delivery worker (worker)."""
