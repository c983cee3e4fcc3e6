"""Storage: connections, schema and migrations, the event log, room state, sessions and their
queries, projects and keys, provider credentials, the webhook outbox. No HTTP here."""
