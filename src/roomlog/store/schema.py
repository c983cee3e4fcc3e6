"""The tables, as SQLAlchemy Core sees them. Migrations in `migrations/` create them.

Times are integer microseconds since the epoch, as in the engine. Every row belongs to a
project, and every query is scoped by `project_id` first: the indexes lead with it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    # Signs and verifies VideoSDK-style JWTs; `apikey` in the token is `public_id`.
    Column("public_id", String(64), nullable=False, unique=True),
    Column("secret", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Who a person is in attendance reports: `user_id` (else the participant id), or
    # `user_name` first, for providers that send no user id.
    Column("person_key", String(16), nullable=False, server_default="user_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    # SHA-256 of the key's secret part: keys are 256-bit random, so a fast hash suffices.
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

events = Table(
    "events",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("id", String(256), primary_key=True),
    Column("room", String(256), nullable=False),
    Column("joined", SmallInteger, nullable=False),
    Column("participant_id", String(256), nullable=False),
    Column("user_id", String(1024), nullable=True),
    Column("user_name", String(1024), nullable=True),
    Column("at", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    # Room-wide events (SESSION-RULES step 1b) have `joined` 2 (a room end) or 3 (a snapshot)
    # and an empty `participant_id`; a snapshot's `people` lists who it saw (msgpack).
    Column("people", LargeBinary, nullable=True),
    Index("events_by_room", "project_id", "room", "at"),
)

rooms = Table(
    "rooms",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("name", String(256), primary_key=True),
    # The engine's incremental state and what the service derived from it (msgpack).
    Column("state", LargeBinary, nullable=False),
    # The next instant at which the passage of time alone changes this room's sessions.
    Column("due_at", BigInteger, nullable=True),
    # Who is in the room now (msgpack) and how many: GET /v1/presence reads these.
    Column("occupancy", Integer, nullable=False),
    Column("presence", LargeBinary, nullable=False),
    Column("session_count", Integer, nullable=False),
    # Raised by every write of `state`: a process that kept the decoded state of a room can
    # tell whether another one wrote it since.
    Column("version", BigInteger, nullable=False, server_default="0"),
    Index("rooms_due", "due_at"),
)

# The events a room holds since its checkpoint, in chunks: each write of a room appends the
# events it added as one chunk (`seq`, the room's `version` after that write), and a write
# that settled or rebuilt the room replaces them all. The room's `state` holds the rest of
# the engine's state, so a write costs what it added, not everything the room holds.
room_held = Table(
    "room_held",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("room", String(256), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("events", LargeBinary, nullable=False),  # msgpack: the engine's stamped events
    sqlite_with_rowid=False,
)

sessions = Table(
    "sessions",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("id", String(36), primary_key=True),
    Column("room", String(256), nullable=False),
    Column("start_at", BigInteger, nullable=False),
    Column("end_at", BigInteger, nullable=True),
    Column("max_participants", Integer, nullable=False),
    Column("participant_count", Integer, nullable=False),
    # The participant records (msgpack): [participant_id, user_id, user_name, join, leave].
    Column("participants", LargeBinary, nullable=False),
    # The participant time (µs) of the closed records, for the dashboard's sums.
    Column("attended", BigInteger, nullable=False, server_default="0"),
    Index("sessions_newest", "project_id", "start_at", "room"),
    Index("sessions_by_room", "project_id", "room", "start_at"),
    Index(
        "sessions_ongoing",
        "project_id",
        postgresql_where=text("end_at IS NULL"),
        sqlite_where=text("end_at IS NULL"),
    ),
)

# Where a room settled: the engine's checkpoint there (msgpack) and how many sessions had
# settled before it. A late event re-derives the room from the newest one at or before it.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("room", String(256), primary_key=True),
    Column("at", BigInteger, primary_key=True),
    Column("state", LargeBinary, nullable=False),
    Column("settled", Integer, nullable=False),
)

# Events appended but not yet applied to their rooms: one row per (transaction, project,
# partition), holding those events (msgpack). The partition's applier takes them in order,
# applies them, and deletes them in the same transaction.
pending = Table(
    "pending",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("part", SmallInteger, nullable=False),
    Column("project_id", Integer, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("events", LargeBinary, nullable=False),
    Index("pending_by_part", "part", "id"),
    # Ids only grow, even past deleted rows: the applier takes rows in id order.
    sqlite_autoincrement=True,
)

# The partitions of rooms (a hash of project and room), each applied by one process at a
# time: the one whose lease it holds.
partitions = Table(
    "partitions",
    metadata,
    Column("part", SmallInteger, primary_key=True),
    Column("holder", String(64), nullable=True),
    Column("lease_until", BigInteger, nullable=False),
)

# The appliers alive: each renews its row with its leases, so that the partitions are shared
# among all of them, those holding none yet included.
appliers = Table(
    "appliers",
    metadata,
    Column("holder", String(64), primary_key=True),
    Column("seen_until", BigInteger, nullable=False),
)

# One provider's credentials for one project (JSON): what its receiver verifies with.
provider_credentials = Table(
    "provider_credentials",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
    Column("provider", String(32), primary_key=True),
    Column("config", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# When a room snapshot last showed a participant present: the stale-presence timeout counts
# from the later of this and the participant's join.
sightings = Table(
    "sightings",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("room", String(256), primary_key=True),
    Column("participant_id", String(256), primary_key=True),
    Column("seen_at", BigInteger, nullable=False),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("hmac", String(256), nullable=False),
    Column("basic_auth", String(512), nullable=True),
    Column("retry_type", String(32), nullable=False),
    Column("event_types", Text, nullable=False),  # JSON list
    Column("state", String(16), nullable=False),  # ACTIVE | FAILED
    Column("failed_count", Integer, nullable=False),
    Column("last_moment_pushed", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("webhooks_by_project", "project_id"),
)

# Webhook events waiting to be delivered, and delivered ones (kept as the deliveries' subject).
# The key makes queuing idempotent: the same event is queued once per webhook.
outbox = Table(
    "outbox",
    metadata,
    Column("webhook_id", String(36), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("type", String(32), nullable=False),
    Column("payload", LargeBinary, nullable=False),  # the envelope's `payload`, as JSON
    Column("created_at", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    Index("outbox_due", "status", "next_attempt_at"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("webhook_id", String(36), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("type", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", String(1024), nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Index("deliveries_by_webhook", "webhook_id", "id"),
    Index("deliveries_by_time", "at"),
)

# Chat messages (`chat.message` events): a session's chat is the messages of its room inside
# its bounds, found when read, so it follows the sessions through late events and rebuilds.
chat_messages = Table(
    "chat_messages",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("id", String(256), primary_key=True),
    Column("room", String(256), nullable=False),
    Column("participant_id", String(256), nullable=False),
    Column("user_name", String(1024), nullable=True),
    Column("text", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Index("chat_by_room", "project_id", "room", "at"),
)

# Dashboard sign-ins: the cookie holds a random token, stored here as its SHA-256. Revoking
# the API key that signed in ends the sign-in too.
logins = Table(
    "logins",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)
