-- Every transaction that writes the log takes the next sequence number here. On a libSQL server shared by
-- two writers, the second to claim a number fails on the primary key and its whole transaction with it:
-- a writer whose copy of the log is behind the server's is told so, and never interleaves its writes.
-- Only the most recent numbers are kept.
CREATE TABLE log_commits (
    seq          INTEGER PRIMARY KEY,
    committed_at TEXT NOT NULL
);
