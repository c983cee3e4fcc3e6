"""The roomlog service: durable ingest, live sessions in SQLite or PostgreSQL, REST APIs."""
