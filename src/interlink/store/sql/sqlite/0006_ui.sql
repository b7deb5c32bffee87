-- The web UI: a run's queue items (the link from a run to its item) and attempts by time (the
-- overview's attempts per connector and decision).
-- Must stay logically identical to ../postgres/0006_ui.sql.

CREATE INDEX queue_run ON queue (json_extract(payload, '$.run_id'));
CREATE INDEX attempts_created ON attempts (created_at);
