-- The append-only event log, cross-stream uniqueness claims, and write-side secrets.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    stream_type    TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL DEFAULT 1,
    data           TEXT    NOT NULL CHECK (json_valid(data)),
    meta           TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),
    recorded_at    TEXT    NOT NULL,
    UNIQUE (stream_id, version)
);

-- The log is append-only: no UPDATE or DELETE may ever touch it.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

CREATE TABLE claims (
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    owner      TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;

-- Password hashes stay on the primary: they are not events, so they never reach an edge.
CREATE TABLE credentials (
    user_id       TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) WITHOUT ROWID;

-- Refresh tokens: each login opens a family; rotation spends one token and issues the next.
-- Presenting a spent token revokes the whole family (reuse detection).
CREATE TABLE refresh_tokens (
    jti        TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    issued_at  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    spent_at   TEXT,
    revoked_at TEXT
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- Idempotency-Key: the first response to a POST, per user and key, replayed for 24 hours.
CREATE TABLE idempotency_keys (
    user_id     TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      INTEGER,
    body        BLOB,
    position    INTEGER,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID;
