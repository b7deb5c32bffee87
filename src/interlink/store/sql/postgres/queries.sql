-- Named queries of the PostgreSQL store (loaded once by interlink.store._sqlfiles).
-- Parameters are %(name)s; the same names are used by ../sqlite/queries.sql.

-- name: insert_run
-- Idempotent by id and by start key: a scheduled run's key names its flow and fire time, so two
-- schedulers firing the same time insert one run (the second changes no row).
INSERT INTO runs (id, flow, status, trigger, input, flow_spec, created_at, retry_of, retry_count,
                  step_index, bucket, error, started_at, finished_at, updated_at, redrive,
                  variables, wake, start_key, parent_id)
VALUES (%(id)s, %(flow)s, %(status)s, %(trigger)s, %(input)s, %(flow_spec)s, %(created_at)s, %(retry_of)s, %(retry_count)s,
        %(step_index)s, %(bucket)s, %(error)s, %(started_at)s, %(finished_at)s, %(updated_at)s,
        %(redrive)s, %(variables)s, %(wake)s, %(start_key)s, %(parent_id)s)
ON CONFLICT DO NOTHING

-- name: save_step
INSERT INTO steps (run_id, idx, step_id, status, started_at, finished_at, error, output)
VALUES (%(run_id)s, %(idx)s, %(step_id)s, %(status)s, %(started_at)s, %(finished_at)s, %(error)s, %(output)s)
ON CONFLICT (run_id, idx) DO UPDATE SET
    step_id = excluded.step_id, status = excluded.status, started_at = excluded.started_at,
    finished_at = excluded.finished_at, error = excluded.error, output = excluded.output

-- name: save_attempt
-- An attempt is saved before it is sent (decision 'unknown') and again with its outcome; the
-- second save replaces the first, keeping its row id (the order attempts are listed in).
INSERT INTO attempts (run_id, step_id, n, request, response, code, decision, created_at, message,
                      wait_s, error, item, redrive, reauth, output, page)
VALUES (%(run_id)s, %(step_id)s, %(n)s, %(request)s, %(response)s, %(code)s, %(decision)s, %(created_at)s, %(message)s,
        %(wait_s)s, %(error)s, %(item)s, %(redrive)s, %(reauth)s, %(output)s,
        %(page)s)
ON CONFLICT (run_id, step_id, item, page, n) DO UPDATE SET
    request = excluded.request, response = excluded.response, code = excluded.code,
    decision = excluded.decision, message = excluded.message, wait_s = excluded.wait_s,
    error = excluded.error, redrive = excluded.redrive, reauth = excluded.reauth,
    output = excluded.output, page = excluded.page

-- name: insert_log
INSERT INTO logs (run_id, step_id, level, message, created_at)
VALUES (%(run_id)s, %(step_id)s, %(level)s, %(message)s, %(created_at)s)

-- name: enqueue
-- Idempotent by id: a step that is re-run after a crash may enqueue the same item again.
-- With an owner the item starts leased to it (enqueue-and-claim in one step, for work the
-- caller runs at once but that a worker must finish if the caller dies).
INSERT INTO queue (id, kind, payload, status, priority, run_at, attempts, lease_owner,
                   lease_expires_at, created_at, updated_at)
VALUES (%(id)s, %(kind)s, %(payload)s, %(status)s, %(priority)s, %(run_at)s, %(attempts)s,
        %(owner)s, %(lease_expires_at)s, %(now)s, %(now)s)
ON CONFLICT (id) DO NOTHING

-- name: complete_keep
UPDATE queue
SET status = 'done', result = %(result)s, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = %(now)s
WHERE id = %(id)s AND status = 'leased' AND lease_owner = %(owner)s

-- name: complete_delete
DELETE FROM queue WHERE id = %(id)s AND status = 'leased' AND lease_owner = %(owner)s

-- name: hold_lease
UPDATE queue SET lease_expires_at = CASE WHEN %(exact)s::boolean THEN %(expires_at)s
                                         ELSE GREATEST(lease_expires_at, %(expires_at)s) END
WHERE id = %(id)s AND status = 'leased' AND lease_owner = %(owner)s

-- name: release
UPDATE queue
SET status = 'ready', run_at = %(run_at)s, last_error = %(error)s, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = %(now)s,
    payload = CASE WHEN %(replace_payload)s::boolean THEN %(payload)s ELSE payload END,
    attempts = CASE WHEN %(count_attempt)s::boolean THEN attempts ELSE attempts - 1 END
WHERE id = %(id)s AND status = 'leased' AND lease_owner = %(owner)s

-- name: fail
UPDATE queue
SET status = %(status)s, last_error = %(error)s, result = %(result)s, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = %(now)s
WHERE id = %(id)s AND status = 'leased' AND lease_owner = %(owner)s

-- name: requeue
UPDATE queue
SET status = 'ready', attempts = 0, run_at = %(now)s, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = %(now)s
WHERE id = %(id)s AND status IN ('broken', 'failed')

-- name: put_session
INSERT INTO sessions (id, data, expires_at, principal)
VALUES (%(id)s, %(data)s, %(expires_at)s, %(principal)s)
ON CONFLICT (id) DO UPDATE SET
    data = excluded.data, expires_at = excluded.expires_at, principal = excluded.principal

-- name: delete_session
DELETE FROM sessions WHERE id = %(id)s

-- name: insert_nonce
-- A replay-proof request's signature, recorded once: a second insert changes no row.
INSERT INTO nonces (key, expires_at) VALUES (%(key)s, %(expires_at)s)
ON CONFLICT (key) DO NOTHING

-- name: put_credential
INSERT INTO credentials (name, token, version, expires_at) VALUES (%(name)s, %(token)s, 1, %(expires_at)s)
ON CONFLICT (name) DO UPDATE SET
    token = excluded.token, version = credentials.version + 1, expires_at = excluded.expires_at

-- name: claim
-- Two index walks — due ready items in claim order (queue_ready), expired leases — each
-- locking at most :limit rows with SKIP LOCKED (so any number of workers claim at once
-- without waiting on each other) and stopping there, then a primary-key update of the first
-- :limit of them: a claim costs the same at any backlog. Each item comes with the run its
-- payload names (`run_id`), looked up by primary key (LATERAL: one probe a claimed item, never a
-- scan of the runs): one round trip, no read after the claim.
WITH ready AS (
    SELECT id, priority, run_at FROM queue
    WHERE status = 'ready' AND run_at <= %(now)s
      AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[]))
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), expired AS (
    SELECT id, priority, run_at FROM queue
    WHERE status = 'leased' AND lease_expires_at <= %(now)s
      AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[]))
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM (SELECT * FROM ready UNION ALL SELECT * FROM expired) AS candidates
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
), claimed AS (
    UPDATE queue AS q
    SET status = 'leased', lease_owner = %(owner)s, lease_expires_at = %(expires_at)s,
        attempts = q.attempts + 1, updated_at = %(now)s
    WHERE q.id = ANY (ARRAY(SELECT id FROM picked))
    RETURNING q.id, q.kind, q.payload, q.status, q.priority, q.run_at, q.attempts,
              q.created_at, q.updated_at, q.lease_owner, q.lease_expires_at, q.last_error,
              q.result
)
SELECT c.id, c.kind, c.payload, c.status, c.priority, c.run_at, c.attempts, c.created_at,
       c.updated_at, c.lease_owner, c.lease_expires_at, c.last_error, c.result,
       r.id, r.flow, r.status, r.trigger, r.input, r.flow_spec, r.created_at, r.retry_of,
       r.retry_count, r.step_index, r.bucket, r.error, r.started_at, r.finished_at,
       r.updated_at, r.redrive, r.variables, r.wake
FROM claimed AS c
LEFT JOIN LATERAL (SELECT * FROM runs WHERE runs.id = c.payload::jsonb ->> 'run_id') AS r ON true

-- name: extend_leases
-- Never shorter: an attempt's write may have made the lease outlast its call (hold_lease).
UPDATE queue SET lease_expires_at = GREATEST(lease_expires_at, %(expires_at)s), updated_at = %(now)s
WHERE id = ANY(%(ids)s::text[]) AND status = 'leased' AND lease_owner = %(owner)s
RETURNING id

-- name: get_item
SELECT id, kind, payload, status, priority, run_at, attempts, created_at, updated_at,
       lease_owner, lease_expires_at, last_error, result
FROM queue WHERE id = %(id)s

-- name: list_items
SELECT id, kind, payload, status, priority, run_at, attempts, created_at, updated_at,
       lease_owner, lease_expires_at, last_error, result
FROM queue
WHERE (%(status)s::text IS NULL OR status = %(status)s::text) AND (%(kind)s::text IS NULL OR kind = %(kind)s::text)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s

-- name: get_run
SELECT id, flow, status, trigger, input, flow_spec, created_at, retry_of, retry_count, step_index,
       bucket, error, started_at, finished_at, updated_at, redrive, variables, wake
FROM runs WHERE id = %(id)s

-- name: get_run_by_key
-- The run queued under a start key (a webhook's delivery key, a schedule's fire time).
SELECT id, flow, status, trigger, input, flow_spec, created_at, retry_of, retry_count, step_index,
       bucket, error, started_at, finished_at, updated_at, redrive, variables, wake
FROM runs WHERE start_key = %(key)s

-- name: get_steps
SELECT run_id, idx, step_id, status, started_at, finished_at, error, output
FROM steps WHERE run_id = %(run_id)s ORDER BY idx

-- name: get_attempts
SELECT run_id, step_id, n, request, response, code, decision, created_at, message, wait_s, error,
       item, redrive, reauth, output, page
FROM attempts WHERE run_id = %(run_id)s ORDER BY id

-- name: attempts_after
-- Failure rates per connector (interlink.notifications.watch): a walk of the primary key from
-- the last row seen, so a periodic look costs the attempts made since the last one.
SELECT a.id, a.run_id, r.flow, a.step_id, a.code, a.decision, a.created_at, a.message
FROM attempts a JOIN runs r ON r.id = a.run_id
-- Without a seq: the last :limit attempts (ids are handed out in order, nearly without gaps).
WHERE a.id > COALESCE(CAST(%(seq)s AS BIGINT),
                      (SELECT COALESCE(MAX(id), 0) FROM attempts) - CAST(%(limit)s AS BIGINT))
ORDER BY a.id
LIMIT %(limit)s

-- name: get_logs
SELECT run_id, message, created_at, level, step_id
FROM logs WHERE run_id = %(run_id)s ORDER BY id

-- name: get_session
SELECT id, data, expires_at, principal FROM sessions WHERE id = %(id)s AND expires_at > %(now)s

-- name: get_credential
SELECT name, token, version, expires_at FROM credentials WHERE name = %(name)s

-- name: try_lock
INSERT INTO locks (name, owner, expires_at) VALUES (%(name)s, %(owner)s, %(expires_at)s)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE locks.expires_at <= %(now)s OR locks.owner = excluded.owner
RETURNING name

-- name: unlock
DELETE FROM locks WHERE name = %(name)s AND owner = %(owner)s

-- name: purge_items
-- Each purge_* deletes at most %(limit)s rows (a batch, one statement each: no long statement
-- behind a first purge of a big backlog).
-- The condition again outside the subquery: a row changed meanwhile by another transaction
-- (an item requeued, a dedupe key or a lock taken over) is checked anew before it is deleted,
-- and kept; the subquery alone is not rechecked.
DELETE FROM queue WHERE id IN (
    SELECT id FROM queue
    WHERE status IN ('done', 'failed') AND updated_at < %(before)s LIMIT %(limit)s)
  AND status IN ('done', 'failed') AND updated_at < %(before)s

-- name: purge_runs
-- Retention (worker.keep_runs): ended runs with one of the statuses given, created and last
-- updated before the cut-off, found by runs_status_created, never one a queue item still
-- works on or waits for (index queue_run), never the retry of a run still kept (a bulk retry
-- would take that run for one never retried), never a child of a run still kept (a re-drive
-- of the parent would start it again); deleted with their steps, attempts and log lines
-- in one statement, whose row count is the runs deleted. The conditions again outside the
-- subquery: a run re-driven meanwhile (queued again) is checked anew, and kept.
WITH gone AS (
    -- `= ANY(ARRAY(…))`: the batch's ids first, then each run by its key (an `IN` was
    -- hash-joined with a scan of runs); the checks as scalar subqueries are index probes per
    -- candidate (a NOT EXISTS was hashed over every live item, or every run).
    DELETE FROM runs WHERE id = ANY(ARRAY(
        SELECT id FROM runs
        WHERE status = ANY(%(statuses)s) AND created_at < %(before)s
          AND coalesce(updated_at, created_at) < %(before)s
          AND NOT (SELECT EXISTS (SELECT 1 FROM queue
                                  WHERE (payload::jsonb) ->> 'run_id' = runs.id
                                    AND status IN ('ready', 'leased', 'broken')))
          AND NOT (SELECT EXISTS (SELECT 1 FROM runs AS first WHERE first.id = runs.retry_of))
          AND NOT (SELECT EXISTS (SELECT 1 FROM runs AS parent WHERE parent.id = runs.parent_id))
        LIMIT %(limit)s))
      AND status = ANY(%(statuses)s) AND coalesce(updated_at, created_at) < %(before)s
      AND NOT (SELECT EXISTS (SELECT 1 FROM queue WHERE (payload::jsonb) ->> 'run_id' = runs.id
                              AND status IN ('ready', 'leased', 'broken')))
    RETURNING id),
  steps_gone AS (DELETE FROM steps WHERE run_id IN (SELECT id FROM gone)),
  attempts_gone AS (DELETE FROM attempts WHERE run_id IN (SELECT id FROM gone)),
  logs_gone AS (DELETE FROM logs WHERE run_id IN (SELECT id FROM gone))
SELECT id FROM gone

-- name: purge_sessions
DELETE FROM sessions WHERE id IN (
    SELECT id FROM sessions WHERE expires_at <= %(before)s LIMIT %(limit)s)
  AND expires_at <= %(before)s

-- name: purge_locks
DELETE FROM locks WHERE name IN (
    SELECT name FROM locks WHERE expires_at <= %(before)s LIMIT %(limit)s)
  AND expires_at <= %(before)s

-- name: purge_nonces
DELETE FROM nonces WHERE key IN (
    SELECT key FROM nonces WHERE expires_at <= %(before)s LIMIT %(limit)s)
  AND expires_at <= %(before)s

-- name: mark_seen
-- A dedupe key: new (inserted), expired (taken over) or already this run's → a row changes;
-- seen by another run within its ttl → none does.
INSERT INTO dedupe (scope, key, run_id, expires_at)
VALUES (%(scope)s, %(key)s, %(run_id)s, %(expires_at)s)
ON CONFLICT (scope, key) DO UPDATE SET run_id = excluded.run_id, expires_at = excluded.expires_at
WHERE dedupe.expires_at <= %(now)s OR dedupe.run_id = excluded.run_id

-- name: put_cache
INSERT INTO cache (scope, key, value, expires_at)
VALUES (%(scope)s, %(key)s, %(value)s, %(expires_at)s)
ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at

-- name: get_cached
SELECT value FROM cache WHERE scope = %(scope)s AND key = %(key)s AND expires_at > %(now)s

-- name: claimable
-- Whether a claim would find anything (of any kind): a due ready item or an expired lease.
-- (SQLite's wait uses it; PostgreSQL's workers are woken by NOTIFY.)
SELECT EXISTS (SELECT 1 FROM queue WHERE status = 'ready' AND run_at <= %(now)s)
    OR EXISTS (SELECT 1 FROM queue WHERE status = 'leased' AND lease_expires_at <= %(now)s)

-- name: wake_item
-- A parent run waiting for its children: due now, if it is waiting for later.
UPDATE queue SET run_at = %(now)s, updated_at = %(now)s
WHERE id = %(id)s AND status = 'ready' AND run_at > %(now)s

-- name: purge_dedupe
DELETE FROM dedupe WHERE (scope, key) IN (
    SELECT scope, key FROM dedupe WHERE expires_at <= %(before)s LIMIT %(limit)s)
  AND expires_at <= %(before)s

-- name: purge_cache
DELETE FROM cache WHERE (scope, key) IN (
    SELECT scope, key FROM cache WHERE expires_at <= %(before)s LIMIT %(limit)s)
  AND expires_at <= %(before)s

-- ui overview
-- The web UI's overview (interlink.store._stats): runs and attempts since a time, counted.

-- name: ui_run_slots
-- Runs per flow, status and slot of :width seconds from :since (the overview's bar charts).
SELECT flow, floor((created_at - %(since)s) / %(width)s)::integer AS slot, status, count(*)
FROM runs WHERE created_at >= %(since)s
GROUP BY flow, slot, status

-- name: ui_run_outcomes
SELECT flow, status, count(*) FROM runs WHERE created_at >= %(since)s GROUP BY flow, status

-- name: ui_run_durations
-- The newest ended runs' durations (percentiles are taken over these).
SELECT flow, finished_at - COALESCE(started_at, created_at)
FROM runs WHERE created_at >= %(since)s AND finished_at IS NOT NULL
ORDER BY created_at DESC
LIMIT %(limit)s

-- name: ui_attempt_decisions
SELECT r.flow, a.step_id, a.decision, count(*)
FROM attempts a JOIN runs r ON r.id = a.run_id
WHERE a.created_at >= %(since)s
GROUP BY r.flow, a.step_id, a.decision

-- name: ui_run_items
-- The queue items that name a run (index queue_run).
SELECT id, kind, payload, status, priority, run_at, attempts, created_at, updated_at,
       lease_owner, lease_expires_at, last_error, result
FROM queue WHERE (payload::jsonb) ->> 'run_id' = %(run_id)s
ORDER BY created_at, id

-- name: lock_owners
-- cli
-- Who holds the unexpired locks whose name starts with a prefix (`worker:` → the live workers).
SELECT owner FROM locks
WHERE substr(name, 1, length(%(prefix)s::text)) = %(prefix)s::text AND expires_at > %(now)s
ORDER BY owner
