-- Idempotency-Key: the command's outcome is recorded with the claim, in the command's own transaction: the
-- process that ran it (boot), the resource its first event belongs to, and (already a column) its position.
-- A retry that finds no stored answer from a process that is gone is told at once what was done.
ALTER TABLE idempotency_keys ADD COLUMN boot TEXT;
ALTER TABLE idempotency_keys ADD COLUMN resource_type TEXT;
ALTER TABLE idempotency_keys ADD COLUMN resource_id TEXT;
