-- Sign-In-with-Ethereum nonces: issued to one user for one address, spent at most once, expiring.
-- Write-side rows (not events): a nonce is a one-time secret of the linking flow, not a fact worth replaying.
CREATE TABLE wallet_nonces (
    nonce      TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    address    TEXT NOT NULL,
    issued_at  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) WITHOUT ROWID;
CREATE INDEX wallet_nonces_expires ON wallet_nonces (expires_at);
