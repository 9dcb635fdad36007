"""Webhooks: signed messages about each change, from a transactional outbox, delivered at least once.

- `model`: webhooks, messages, the message types and the errors of the admin API;
- `secrets`: the signing secrets, made and kept encrypted at rest;
- `destinations`: the SSRF guard, at registration and on the address each send connects to;
- `store`: the SQL (registrations, the outbox rows and their delivery state, claims, purge);
- `service`: the admin use cases; `messages`: the body a receiver gets;
- `sender`: one signed HTTP POST; `dispatcher`: the loop that claims, sends and records;
- `metrics`: what the dispatcher counts.

docs/webhooks.md says why the outbox is a table written by a trigger on the ledger.
"""
