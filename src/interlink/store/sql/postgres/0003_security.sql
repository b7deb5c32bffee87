-- Engine API security.
-- Scheduled runs: one run per fire time by a unique key, not by a run id derived from the flow
-- and the time (which anyone could compute). Other runs have no key.
-- Sessions: the hash of the principal that authenticated the session; a session stored before
-- this migration has none, so it matches no caller and its next request gets a new session.
-- Nonces: the signatures of replay-proof HMAC requests seen, kept until their timestamp is
-- out of the tolerance anyway (then `Store.purge` deletes them).
-- Must stay logically identical to ../sqlite/0003_security.sql.

ALTER TABLE runs ADD COLUMN start_key TEXT;
CREATE UNIQUE INDEX runs_start_key ON runs (start_key) WHERE start_key IS NOT NULL;

ALTER TABLE sessions ADD COLUMN principal TEXT;

CREATE TABLE nonces (
    key         TEXT    NOT NULL PRIMARY KEY,
    expires_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX nonces_expires ON nonces (expires_at);
