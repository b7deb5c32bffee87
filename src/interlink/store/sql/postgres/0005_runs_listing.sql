-- Runs listings are keyset-paginated on (created_at, id), newest first (store/_listing.py):
-- the id joins each index so a page after a cursor is one index range, ties included.
-- Must stay logically identical to ../sqlite/0005_runs_listing.sql.

DROP INDEX runs_created;
DROP INDEX runs_flow_created;
DROP INDEX runs_status_created;
CREATE INDEX runs_created ON runs (created_at, id);
CREATE INDEX runs_flow_created ON runs (flow, created_at, id);
CREATE INDEX runs_status_created ON runs (status, created_at, id);
