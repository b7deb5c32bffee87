-- Exactly once: attempts are keyed by (run, step, payload item, n) and saved before they are
-- sent, so a resumed step counts every attempt that may have reached the upstream; a run can
-- be re-driven from its failed step, and only attempts since the last re-drive count.
-- Must stay logically identical to ../sqlite/0002_exactly_once.sql.

ALTER TABLE runs ADD COLUMN redrive INTEGER NOT NULL DEFAULT 0;

ALTER TABLE attempts ADD COLUMN item INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN redrive INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN reauth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN output TEXT;
-- Attempts recorded before this migration did not name their payload; give each its own
-- (negative, never a real index) item so the key below is unique.
UPDATE attempts SET item = -id;
CREATE UNIQUE INDEX attempts_key ON attempts (run_id, step_id, item, n);
