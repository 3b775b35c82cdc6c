-- Idempotency-Key: a replay also carries the first response's ETag. Nullable: records kept before this
-- column existed replay as they did, without one.
ALTER TABLE idempotency_keys ADD COLUMN etag TEXT;
