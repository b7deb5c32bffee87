-- Housekeeping's purge of finished queue items (done, failed) kept past worker.keep_finished:
-- without an index it read every status='done' row each time (a week of kept answers).
-- Partial, so the items being worked on (ready, leased) never touch it.
-- Must stay logically identical to ../sqlite/0007_housekeeping.sql.
CREATE INDEX queue_finished ON queue (updated_at) WHERE status IN ('done', 'failed');
