-- Named queries of the SQLite store (loaded once by interlink.store._sqlfiles).
-- Parameters are :name; the same names are used by ../postgres/queries.sql.

-- name: insert_run
-- Idempotent by id and by start key: a scheduled run's key names its flow and fire time, so two
-- schedulers firing the same time insert one run (the second changes no row).
INSERT INTO runs (id, flow, status, trigger, input, flow_spec, created_at, retry_of, retry_count,
                  step_index, bucket, error, started_at, finished_at, updated_at, redrive,
                  variables, wake, start_key, parent_id)
VALUES (:id, :flow, :status, :trigger, :input, :flow_spec, :created_at, :retry_of, :retry_count,
        :step_index, :bucket, :error, :started_at, :finished_at, :updated_at,
        :redrive, :variables, :wake, :start_key, :parent_id)
ON CONFLICT DO NOTHING

-- name: save_step
INSERT INTO steps (run_id, idx, step_id, status, started_at, finished_at, error, output)
VALUES (:run_id, :idx, :step_id, :status, :started_at, :finished_at, :error, :output)
ON CONFLICT (run_id, idx) DO UPDATE SET
    step_id = excluded.step_id, status = excluded.status, started_at = excluded.started_at,
    finished_at = excluded.finished_at, error = excluded.error, output = excluded.output

-- name: save_attempt
-- An attempt is saved before it is sent (decision 'unknown') and again with its outcome; the
-- second save replaces the first, keeping its row id (the order attempts are listed in).
INSERT INTO attempts (run_id, step_id, n, request, response, code, decision, created_at, message,
                      wait_s, error, item, redrive, reauth, output, page)
VALUES (:run_id, :step_id, :n, :request, :response, :code, :decision, :created_at, :message,
        :wait_s, :error, :item, :redrive, :reauth, :output,
        :page)
ON CONFLICT (run_id, step_id, item, page, n) DO UPDATE SET
    request = excluded.request, response = excluded.response, code = excluded.code,
    decision = excluded.decision, message = excluded.message, wait_s = excluded.wait_s,
    error = excluded.error, redrive = excluded.redrive, reauth = excluded.reauth,
    output = excluded.output, page = excluded.page

-- name: insert_log
INSERT INTO logs (run_id, step_id, level, message, created_at)
VALUES (:run_id, :step_id, :level, :message, :created_at)

-- name: enqueue
-- Idempotent by id: a step that is re-run after a crash may enqueue the same item again.
-- With an owner the item starts leased to it (enqueue-and-claim in one step, for work the
-- caller runs at once but that a worker must finish if the caller dies).
INSERT INTO queue (id, kind, payload, status, priority, run_at, attempts, lease_owner,
                   lease_expires_at, created_at, updated_at)
VALUES (:id, :kind, :payload, :status, :priority, :run_at, :attempts,
        :owner, :lease_expires_at, :now, :now)
ON CONFLICT (id) DO NOTHING

-- name: complete_keep
UPDATE queue
SET status = 'done', result = :result, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = :now
WHERE id = :id AND status = 'leased' AND lease_owner = :owner

-- name: complete_delete
DELETE FROM queue WHERE id = :id AND status = 'leased' AND lease_owner = :owner

-- name: hold_lease
UPDATE queue SET lease_expires_at = CASE WHEN :exact THEN :expires_at
                                         ELSE MAX(COALESCE(lease_expires_at, 0), :expires_at) END
WHERE id = :id AND status = 'leased' AND lease_owner = :owner

-- name: release
UPDATE queue
SET status = 'ready', run_at = :run_at, last_error = :error, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = :now,
    payload = CASE WHEN :replace_payload THEN :payload ELSE payload END,
    attempts = CASE WHEN :count_attempt THEN attempts ELSE attempts - 1 END
WHERE id = :id AND status = 'leased' AND lease_owner = :owner

-- name: fail
UPDATE queue
SET status = :status, last_error = :error, result = :result, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = :now
WHERE id = :id AND status = 'leased' AND lease_owner = :owner

-- name: requeue
UPDATE queue
SET status = 'ready', attempts = 0, run_at = :now, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = :now
WHERE id = :id AND status IN ('broken', 'failed')

-- name: put_session
INSERT INTO sessions (id, data, expires_at, principal)
VALUES (:id, :data, :expires_at, :principal)
ON CONFLICT (id) DO UPDATE SET
    data = excluded.data, expires_at = excluded.expires_at, principal = excluded.principal

-- name: delete_session
DELETE FROM sessions WHERE id = :id

-- name: insert_nonce
-- A replay-proof request's signature, recorded once: a second insert changes no row.
INSERT INTO nonces (key, expires_at) VALUES (:key, :expires_at)
ON CONFLICT (key) DO NOTHING

-- name: put_credential
INSERT INTO credentials (name, token, version, expires_at) VALUES (:name, :token, 1, :expires_at)
ON CONFLICT (name) DO UPDATE SET
    token = excluded.token, version = credentials.version + 1, expires_at = excluded.expires_at

-- name: claim
-- Two index walks (due ready items in claim order, expired leases) merged and cut to :limit;
-- INDEXED BY because without statistics the planner may pick a status index and sort.
-- the caller runs this inside BEGIN IMMEDIATE, so two processes never claim the same row.
UPDATE queue
SET status = 'leased', lease_owner = :owner, lease_expires_at = :expires_at,
    attempts = attempts + 1, updated_at = :now
WHERE id IN (
    SELECT id FROM (
        SELECT * FROM (
            SELECT id, priority, run_at FROM queue INDEXED BY queue_ready
            WHERE status = 'ready' AND run_at <= :now
              AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds)))
            ORDER BY priority DESC, run_at, id
            LIMIT :limit
        )
        UNION ALL
        SELECT * FROM (
            SELECT id, priority, run_at FROM queue INDEXED BY queue_leased
            WHERE status = 'leased' AND lease_expires_at <= :now
              AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds)))
            ORDER BY priority DESC, run_at, id
            LIMIT :limit
        )
    )
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
)
RETURNING id, kind, payload, status, priority, run_at, attempts, created_at, updated_at,
          lease_owner, lease_expires_at, last_error, result

-- name: extend_leases
-- Never shorter: an attempt's write may have made the lease outlast its call (hold_lease).
-- (A leased item always has an expiry, but SQLite's MAX of a NULL would be NULL: no expiry.)
UPDATE queue SET lease_expires_at = MAX(COALESCE(lease_expires_at, 0), :expires_at), updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'leased' AND lease_owner = :owner
RETURNING id

-- name: get_item
SELECT id, kind, payload, status, priority, run_at, attempts, created_at, updated_at,
       lease_owner, lease_expires_at, last_error, result
FROM queue WHERE id = :id

-- name: list_items
SELECT id, kind, payload, status, priority, run_at, attempts, created_at, updated_at,
       lease_owner, lease_expires_at, last_error, result
FROM queue
WHERE (:status IS NULL OR status = :status) AND (:kind IS NULL OR kind = :kind)
ORDER BY created_at DESC, id DESC
LIMIT :limit

-- name: get_run
SELECT id, flow, status, trigger, input, flow_spec, created_at, retry_of, retry_count, step_index,
       bucket, error, started_at, finished_at, updated_at, redrive, variables, wake
FROM runs WHERE id = :id

-- name: get_run_by_key
-- The run queued under a start key (a webhook's delivery key, a schedule's fire time).
SELECT id, flow, status, trigger, input, flow_spec, created_at, retry_of, retry_count, step_index,
       bucket, error, started_at, finished_at, updated_at, redrive, variables, wake
FROM runs WHERE start_key = :key

-- name: get_steps
SELECT run_id, idx, step_id, status, started_at, finished_at, error, output
FROM steps WHERE run_id = :run_id ORDER BY idx

-- name: get_attempts
SELECT run_id, step_id, n, request, response, code, decision, created_at, message, wait_s, error,
       item, redrive, reauth, output, page
FROM attempts WHERE run_id = :run_id ORDER BY id

-- name: attempts_after
-- Failure rates per connector (interlink.notifications.watch): a walk of the primary key from
-- the last row seen, so a periodic look costs the attempts made since the last one.
SELECT a.id, a.run_id, r.flow, a.step_id, a.code, a.decision, a.created_at, a.message
FROM attempts a JOIN runs r ON r.id = a.run_id
-- Without a seq: the last :limit attempts (ids are handed out in order, nearly without gaps).
WHERE a.id > COALESCE(CAST(:seq AS BIGINT),
                      (SELECT COALESCE(MAX(id), 0) FROM attempts) - CAST(:limit AS BIGINT))
ORDER BY a.id
LIMIT :limit

-- name: get_logs
SELECT run_id, message, created_at, level, step_id
FROM logs WHERE run_id = :run_id ORDER BY id

-- name: get_session
SELECT id, data, expires_at, principal FROM sessions WHERE id = :id AND expires_at > :now

-- name: get_credential
SELECT name, token, version, expires_at FROM credentials WHERE name = :name

-- name: try_lock
INSERT INTO locks (name, owner, expires_at) VALUES (:name, :owner, :expires_at)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE locks.expires_at <= :now OR locks.owner = excluded.owner
RETURNING name

-- name: unlock
DELETE FROM locks WHERE name = :name AND owner = :owner

-- name: purge_items
-- Each purge_* deletes at most :limit rows (a batch, one writer job each: nothing waits
-- long behind a first purge of a big backlog).
DELETE FROM queue WHERE id IN (
    SELECT id FROM queue INDEXED BY queue_finished
    WHERE status IN ('done', 'failed') AND updated_at < :before LIMIT :limit)
  AND status IN ('done', 'failed') AND updated_at < :before

-- name: purge_runs
-- Retention (worker.keep_runs): ended runs with one of :statuses (a JSON list) created and last
-- updated before :before, found by runs_status_created, never one a queue item still works on
-- or waits for (index queue_run), never the retry of a run still kept (a bulk retry would
-- take that run for one never retried), never a child of a run still kept (a re-drive of the
-- parent would start it again); RETURNING their ids for the purge_run_* of the job.
DELETE FROM runs WHERE id IN (
    SELECT id FROM runs INDEXED BY runs_status_created
    WHERE status IN (SELECT value FROM json_each(:statuses)) AND created_at < :before
      AND coalesce(updated_at, created_at) < :before
      -- `+runs.id`: without the column's affinity, so queue_run is searched, not scanned.
      AND NOT EXISTS (SELECT 1 FROM queue INDEXED BY queue_run
                      WHERE json_extract(payload, '$.run_id') = +runs.id
                      AND status IN ('ready', 'leased', 'broken'))
      AND NOT EXISTS (SELECT 1 FROM runs AS first WHERE first.id = runs.retry_of)
      AND NOT EXISTS (SELECT 1 FROM runs AS parent WHERE parent.id = runs.parent_id)
    LIMIT :limit)
RETURNING id

-- name: purge_run_steps
DELETE FROM steps WHERE run_id IN (SELECT value FROM json_each(:ids))

-- name: purge_run_attempts
DELETE FROM attempts WHERE run_id IN (SELECT value FROM json_each(:ids))

-- name: purge_run_logs
DELETE FROM logs WHERE run_id IN (SELECT value FROM json_each(:ids))

-- name: purge_sessions
DELETE FROM sessions WHERE rowid IN (
    SELECT rowid FROM sessions WHERE expires_at <= :before LIMIT :limit)
  AND expires_at <= :before

-- name: purge_locks
DELETE FROM locks WHERE rowid IN (
    SELECT rowid FROM locks WHERE expires_at <= :before LIMIT :limit)
  AND expires_at <= :before

-- name: purge_nonces
DELETE FROM nonces WHERE rowid IN (
    SELECT rowid FROM nonces WHERE expires_at <= :before LIMIT :limit)
  AND expires_at <= :before

-- name: mark_seen
-- A dedupe key: new (inserted), expired (taken over) or already this run's → a row changes;
-- seen by another run within its ttl → none does.
INSERT INTO dedupe (scope, key, run_id, expires_at)
VALUES (:scope, :key, :run_id, :expires_at)
ON CONFLICT (scope, key) DO UPDATE SET run_id = excluded.run_id, expires_at = excluded.expires_at
WHERE dedupe.expires_at <= :now OR dedupe.run_id = excluded.run_id

-- name: put_cache
INSERT INTO cache (scope, key, value, expires_at)
VALUES (:scope, :key, :value, :expires_at)
ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at

-- name: get_cached
SELECT value FROM cache WHERE scope = :scope AND key = :key AND expires_at > :now

-- name: claimable
-- Whether a claim would find anything (of any kind): a due ready item or an expired lease.
SELECT EXISTS (SELECT 1 FROM queue INDEXED BY queue_ready
               WHERE status = 'ready' AND run_at <= :now)
    OR EXISTS (SELECT 1 FROM queue INDEXED BY queue_leased
               WHERE status = 'leased' AND lease_expires_at <= :now)

-- name: wake_item
-- A parent run waiting for its children: due now, if it is waiting for later.
UPDATE queue SET run_at = :now, updated_at = :now
WHERE id = :id AND status = 'ready' AND run_at > :now

-- name: purge_dedupe
DELETE FROM dedupe WHERE rowid IN (
    SELECT rowid FROM dedupe WHERE expires_at <= :before LIMIT :limit)
  AND expires_at <= :before

-- name: purge_cache
DELETE FROM cache WHERE rowid IN (
    SELECT rowid FROM cache WHERE expires_at <= :before LIMIT :limit)
  AND expires_at <= :before

-- name: claimed_runs
-- The runs claimed items name, read in the claim's own job (SQLite only: its UPDATE … RETURNING
-- cannot be joined, as the PostgreSQL claim is).
SELECT id, flow, status, trigger, input, flow_spec, created_at, retry_of, retry_count, step_index,
       bucket, error, started_at, finished_at, updated_at, redrive, variables, wake
FROM runs WHERE id IN (SELECT value FROM json_each(:ids))

-- ui overview
-- The web UI's overview (interlink.store._stats): runs and attempts since a time, counted.

-- name: ui_run_slots
-- Runs per flow, status and slot of :width seconds from :since (the overview's bar charts).
SELECT flow, CAST((created_at - :since) / :width AS INTEGER) AS slot, status, count(*)
FROM runs WHERE created_at >= :since
GROUP BY flow, slot, status

-- name: ui_run_outcomes
SELECT flow, status, count(*) FROM runs WHERE created_at >= :since GROUP BY flow, status

-- name: ui_run_durations
-- The newest ended runs' durations (percentiles are taken over these).
SELECT flow, finished_at - COALESCE(started_at, created_at)
FROM runs WHERE created_at >= :since AND finished_at IS NOT NULL
ORDER BY created_at DESC
LIMIT :limit

-- name: ui_attempt_decisions
SELECT r.flow, a.step_id, a.decision, count(*)
FROM attempts a JOIN runs r ON r.id = a.run_id
WHERE a.created_at >= :since
GROUP BY r.flow, a.step_id, a.decision

-- name: ui_run_items
-- The queue items that name a run (index queue_run).
SELECT id, kind, payload, status, priority, run_at, attempts, created_at, updated_at,
       lease_owner, lease_expires_at, last_error, result
FROM queue WHERE json_extract(payload, '$.run_id') = :run_id
ORDER BY created_at, id

-- name: lock_owners
-- cli
-- Who holds the unexpired locks whose name starts with a prefix (`worker:` → the live workers).
SELECT owner FROM locks
WHERE substr(name, 1, length(:prefix)) = :prefix AND expires_at > :now
ORDER BY owner
