-- Bookkeeping every read store keeps (the primary's and each edge's).
CREATE TABLE projection_checkpoint (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL
);
INSERT INTO projection_checkpoint (id, position) VALUES (1, 0);

-- Which code version built each read model; a change triggers a rebuild on start.
CREATE TABLE projection_versions (
    name    TEXT PRIMARY KEY,
    version TEXT NOT NULL
) WITHOUT ROWID;
