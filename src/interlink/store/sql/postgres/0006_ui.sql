-- The web UI: a run's queue items (the link from a run to its item), attempts by time (the
-- overview's attempts per connector and decision), and runs by flow and status (the runs
-- list's counts per status for one flow: without it each count walks the status index and
-- reads every row to check its flow, 150 ms at 1,000,000 runs; with it 12 ms, bench/ui.py).
-- Must stay logically identical to ../sqlite/0006_ui.sql.

CREATE INDEX queue_run ON queue (((payload::jsonb) ->> 'run_id'));
CREATE INDEX attempts_created ON attempts (created_at);
CREATE INDEX runs_flow_status_created ON runs (flow, status, created_at, id);
