-- Flow building blocks: run variables (`set`), waking a parent run when a child ends
-- (`run_flow`), pages of a paginated call, keys seen by `dedupe`, responses kept by `cache`.
-- Must stay logically identical to ../postgres/0004_flow_building_blocks.sql.

ALTER TABLE runs ADD COLUMN variables TEXT;
-- The queue item (a parent run's) made due when this run ends.
ALTER TABLE runs ADD COLUMN wake TEXT;

ALTER TABLE attempts ADD COLUMN page INTEGER NOT NULL DEFAULT 0;
-- Pages of one payload are numbered on their own: the page is part of an attempt's key.
DROP INDEX attempts_key;
CREATE UNIQUE INDEX attempts_key ON attempts (run_id, step_id, item, page, n);

-- A key a dedupe step has seen: by the run (the first of its retry chain) that owns it.
CREATE TABLE dedupe (
    scope       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    run_id      TEXT    NOT NULL,
    expires_at  REAL    NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX dedupe_expires ON dedupe (expires_at);

-- A connector step's accepted response, reused for the same key until it expires.
CREATE TABLE cache (
    scope       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    value       TEXT,
    expires_at  REAL    NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX cache_expires ON cache (expires_at);
