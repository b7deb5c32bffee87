-- Interlink durable store, SQLite: the initial schema.
-- JSON columns are TEXT holding orjson output; times are REAL epoch seconds from the caller.
-- Must stay logically identical to ../postgres/0001_init.sql (tests/integration/test_store_schema.py).

CREATE TABLE runs (
    id          TEXT    NOT NULL PRIMARY KEY,
    flow        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    trigger     TEXT    NOT NULL,
    input       TEXT,
    flow_spec   TEXT    NOT NULL,
    created_at  REAL    NOT NULL,
    retry_of    TEXT,
    retry_count INTEGER NOT NULL DEFAULT 0,
    step_index  INTEGER NOT NULL DEFAULT 0,
    bucket      TEXT,
    error       TEXT,
    started_at  REAL,
    finished_at REAL,
    updated_at  REAL
);
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_flow_created ON runs (flow, created_at);
CREATE INDEX runs_status_created ON runs (status, created_at);

CREATE TABLE steps (
    run_id      TEXT    NOT NULL,
    idx         INTEGER NOT NULL,
    step_id     TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    started_at  REAL    NOT NULL,
    finished_at REAL,
    error       TEXT,
    output      TEXT,
    PRIMARY KEY (run_id, idx)
);

CREATE TABLE attempts (
    id          INTEGER NOT NULL PRIMARY KEY,
    run_id      TEXT    NOT NULL,
    step_id     TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    request     TEXT    NOT NULL,
    response    TEXT,
    code        INTEGER NOT NULL,
    decision    TEXT    NOT NULL,
    created_at  REAL    NOT NULL,
    message     TEXT,
    wait_s      REAL    NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX attempts_run ON attempts (run_id, id);

CREATE TABLE logs (
    id          INTEGER NOT NULL PRIMARY KEY,
    run_id      TEXT    NOT NULL,
    step_id     TEXT,
    level       TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    created_at  REAL    NOT NULL
);
CREATE INDEX logs_run ON logs (run_id, id);

CREATE TABLE queue (
    id               TEXT    NOT NULL PRIMARY KEY,
    kind             TEXT    NOT NULL,
    payload          TEXT,
    status           TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    run_at           REAL    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at REAL,
    last_error       TEXT,
    result           TEXT,
    created_at       REAL    NOT NULL,
    updated_at       REAL    NOT NULL
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
    expires_at  REAL    NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE credentials (
    name        TEXT    NOT NULL PRIMARY KEY,
    token       TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    expires_at  REAL
);

CREATE TABLE locks (
    name        TEXT    NOT NULL PRIMARY KEY,
    owner       TEXT    NOT NULL,
    expires_at  REAL    NOT NULL
);
