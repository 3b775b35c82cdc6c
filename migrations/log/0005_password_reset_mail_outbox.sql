-- Password resets: write-side rows on the primary, never events. A token is kept only as its SHA-256;
-- `mail_token` holds the token in clear from the request's commit until the mailer has sent it, then NULL.
CREATE TABLE password_resets (
    reset_id     TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    requested_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    used_at      TEXT,
    mail_token   TEXT
) WITHOUT ROWID;
CREATE INDEX password_resets_user ON password_resets (user_id, requested_at);
CREATE INDEX password_resets_expires ON password_resets (expires_at);

-- The mail outbox: the mailer follows the log from its own checkpoint and queues one row per message in the
-- same transaction that moves the checkpoint; a row is sent at least once and kept, marked, after.
CREATE TABLE mail_checkpoint (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL
);
-- Mail starts with this migration: a log that existed before it is not mailed about.
INSERT INTO mail_checkpoint (id, position) SELECT 1, COALESCE(MAX(position), 0) FROM events;

CREATE TABLE mail_outbox (
    message_id      TEXT PRIMARY KEY,
    position        INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    context         TEXT NOT NULL CHECK (json_valid(context)),
    queued_at       TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    sent_at         TEXT,
    last_error      TEXT
) WITHOUT ROWID;
CREATE INDEX mail_outbox_due ON mail_outbox (sent_at, next_attempt_at);
