-- Housekeeping (core/housekeeping.py) deletes idempotency records past their 24 h window and refresh tokens
-- past their expiry, oldest first, in bounded batches: each needs its time column indexed.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
