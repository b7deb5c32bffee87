-- The run that started a run (a run_flow step's parent), so retention keeps a child as long
-- as its parent: a parent re-driven at its run_flow step after keep_runs would otherwise find
-- a succeeded child gone and start it again — its deliveries a second time. NULL for runs
-- started otherwise (and for children started before this migration).
-- Must stay logically identical to ../postgres/0008_run_parents.sql.
ALTER TABLE runs ADD COLUMN parent_id TEXT;
