-- Interlink durable store, PostgreSQL: the initial schema.
-- JSON columns are TEXT holding orjson output (not jsonb: the same bytes on both backends);
-- times are DOUBLE PRECISION epoch seconds from the caller's clock.
-- Must stay logically identical to ../sqlite/0001_init.sql (tests/integration/test_store_schema.py).

CREATE TABLE runs (
    id          TEXT    NOT NULL PRIMARY KEY,
    flow        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    trigger     TEXT    NOT NULL,
    input       TEXT,
    flow_spec   TEXT    NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    retry_of    TEXT,
    retry_count INTEGER NOT NULL DEFAULT 0,
    step_index  INTEGER NOT NULL DEFAULT 0,
    bucket      TEXT,
    error       TEXT,
    started_at  DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    updated_at  DOUBLE PRECISION
);
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_flow_created ON runs (flow, created_at);
CREATE INDEX runs_status_created ON runs (status, created_at);

CREATE TABLE steps (
    run_id      TEXT    NOT NULL,
    idx         INTEGER NOT NULL,
    step_id     TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    started_at  DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    error       TEXT,
    output      TEXT,
    PRIMARY KEY (run_id, idx)
);

CREATE TABLE attempts (
    id          BIGINT  NOT NULL GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      TEXT    NOT NULL,
    step_id     TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    request     TEXT    NOT NULL,
    response    TEXT,
    code        INTEGER NOT NULL,
    decision    TEXT    NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    message     TEXT,
    wait_s      DOUBLE PRECISION NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX attempts_run ON attempts (run_id, id);

CREATE TABLE logs (
    id          BIGINT  NOT NULL GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      TEXT    NOT NULL,
    step_id     TEXT,
    level       TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX logs_run ON logs (run_id, id);

CREATE TABLE queue (
    id               TEXT    NOT NULL PRIMARY KEY,
    kind             TEXT    NOT NULL,
    payload          TEXT,
    status           TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    run_at           DOUBLE PRECISION NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at DOUBLE PRECISION,
    last_error       TEXT,
    result           TEXT,
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL
);
-- The claim walks this index in claim order and stops after LIMIT rows.
CREATE INDEX queue_ready ON queue (priority DESC, run_at, id) WHERE status = 'ready';
-- Finding leases that expired (a worker died) touches only leased rows.
CREATE INDEX queue_leased ON queue (lease_expires_at) WHERE status = 'leased';
CREATE INDEX queue_created ON queue (created_at);
CREATE INDEX queue_status_created ON queue (status, created_at);

CREATE TABLE sessions (
    id          TEXT    NOT NULL PRIMARY KEY,
    data        TEXT    NOT NULL,
    expires_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE credentials (
    name        TEXT    NOT NULL PRIMARY KEY,
    token       TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    expires_at  DOUBLE PRECISION
);

CREATE TABLE locks (
    name        TEXT    NOT NULL PRIMARY KEY,
    owner       TEXT    NOT NULL,
    expires_at  DOUBLE PRECISION NOT NULL
);

-- Wake listening workers whenever an item becomes ready (enqueue, release, requeue), whoever
-- wrote it; NOTIFY is sent at commit and repeated payloads in one transaction are merged.
CREATE FUNCTION interlink_queue_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('interlink_queue', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER queue_ready_notify AFTER INSERT OR UPDATE OF status, run_at ON queue
    FOR EACH ROW WHEN (NEW.status = 'ready') EXECUTE FUNCTION interlink_queue_notify();
