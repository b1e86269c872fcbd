-- The database floor: the database work of a sweep, done by set-based SQL alone, with no
-- program in between and no email. bench.py runs the sections below in this order, once per
-- batch (truncate, claim, ledger_begin, ledger_finish, finalise) until claim inserts nothing;
-- each statement commits on its own, as the worker's do. Parameters are psycopg2's
-- %(name)s: run (the run id), batch (rows per claim), lease_ms, retry_ms, max_prompts and
-- domain (of the Message-ID).
--
-- The statements mirror worker/store.c: the same claim (due rows, FOR UPDATE SKIP LOCKED,
-- lease UPDATE, claims INSERT … ON CONFLICT, the context joins), the same ledger INSERT …
-- SELECT guarded by the claim, the same ledger UPDATE … FROM and the same finalise (claims
-- DELETE, orchestration UPDATE … FROM with the metadata merge, event INSERT … SELECT). What
-- the worker decides in C (worker/policy.c) is a CASE here, and what it passes as arrays is
-- read from the batch table the claim filled; every relay reply is taken to be
-- "250 2.0.0 Ok".

-- name: setup
CREATE TEMP TABLE bench_batch (
    id uuid, due_at timestamptz, stage text, order_id uuid, order_number text, total text,
    currency text, user_id uuid, email text, display_name text, opted_out boolean,
    has_member boolean, pending bigint, sent bigint, deferred bigint, ledger_status text,
    ledger_attempts integer, due_us text, marketing boolean, since_last_prompt_ms bigint,
    action text, ord bigint
);

-- name: truncate
TRUNCATE bench_batch;

-- name: claim
WITH due AS (
  SELECT c.id FROM checkout_orchestrations c
   WHERE c.stage_status = 'waiting' AND c.next_action_at <= now()
     AND (c.locked_until IS NULL OR c.locked_until <= now())
   ORDER BY c.next_action_at
   LIMIT %(batch)s
   FOR UPDATE SKIP LOCKED
), leased AS (
  UPDATE checkout_orchestrations c
     SET locked_until = now() + %(lease_ms)s::bigint * interval '1 millisecond'
    FROM due WHERE c.id = due.id
  RETURNING c.id, c.order_id, c.current_stage AS stage, c.next_action_at AS due_at
), claimed AS (
  INSERT INTO recovery_claims (orchestration_id, run_id, due_at, claimed_at, lease_until)
  SELECT id, %(run)s, due_at, now(), now() + %(lease_ms)s::bigint * interval '1 millisecond'
    FROM leased
  ON CONFLICT (orchestration_id) DO UPDATE
     SET run_id = EXCLUDED.run_id, due_at = EXCLUDED.due_at,
         claimed_at = EXCLUDED.claimed_at, lease_until = EXCLUDED.lease_until
), ctx AS (
  SELECT l.id, l.due_at, l.stage::text AS stage, o.id AS order_id, o.order_number,
         o.total::text AS total, o.currency::text AS currency, u.id AS user_id, u.email,
         u.display_name,
         COALESCE(np.order_updates, true) = false AS opted_out,
         lm.id IS NOT NULL AS has_member, COALESCE(pi.n, 0) AS pending,
         COALESCE(ls.sent, 0) AS sent, COALESCE(ls.deferred, 0) AS deferred,
         cur.status AS ledger_status, COALESCE(cur.attempts, 0) AS ledger_attempts,
         (EXTRACT(EPOCH FROM l.due_at) * 1000000)::bigint::text AS due_us,
         COALESCE(np.marketing_messages, false) AS marketing,
         (EXTRACT(EPOCH FROM now() - lp.sent_at) * 1000)::bigint AS since_last_prompt_ms
    FROM leased l
    LEFT JOIN orders o ON o.id = l.order_id
    LEFT JOIN users u ON u.id = o.user_id
    LEFT JOIN notification_preferences np ON np.user_id = u.id
    LEFT JOIN loyalty_members lm ON lm.user_id = u.id
    LEFT JOIN LATERAL (SELECT count(*) AS n FROM loyalty_checkout_intents i
                        WHERE i.member_id = lm.id AND i.status = 'pending'
                          AND (i.expires_at IS NULL OR i.expires_at > now())) pi ON true
    LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE d.status = 'sent') AS sent,
                              count(*) FILTER (WHERE d.status = 'deferred'
                                AND d.due_at > COALESCE(x.last_ok, '-infinity')) AS deferred
                         FROM recovery_deliveries d,
                              LATERAL (SELECT max(s.due_at) AS last_ok
                                         FROM recovery_deliveries s
                                        WHERE s.orchestration_id = l.id
                                          AND s.status <> 'deferred') x
                        WHERE d.orchestration_id = l.id) ls ON true
    LEFT JOIN LATERAL (SELECT max(p.sent_at) AS sent_at FROM recovery_deliveries p
                        WHERE p.user_id = u.id AND p.status = 'sent') lp ON true
    LEFT JOIN recovery_deliveries cur
           ON cur.orchestration_id = l.id AND cur.due_at = l.due_at
)
INSERT INTO bench_batch
SELECT ctx.*,
       CASE WHEN ledger_status = 'sent' THEN 'already_sent'
            WHEN ledger_status IN ('sending', 'unknown') THEN 'delivery_unknown'
            WHEN order_id IS NULL THEN 'missing_order'
            WHEN user_id IS NULL OR email IS NULL THEN 'missing_member'
            WHEN NOT has_member OR pending <= 0 THEN 'no_intents'
            WHEN opted_out THEN 'skipped_opt_out'
            WHEN sent >= %(max_prompts)s THEN 'max_prompts'
            ELSE 'send' END,
       row_number() OVER (ORDER BY due_at, id)
  FROM ctx;

-- name: ledger_begin
WITH input AS (
  SELECT id, due_at, 'recovery.' || id || '.' || due_us || '@' || %(domain)s AS mid, ord
    FROM bench_batch WHERE action = 'send'
), ins AS (
  INSERT INTO recovery_deliveries AS d
         (orchestration_id, due_at, message_id, status, attempts, run_id, user_id)
  SELECT i.id, i.due_at, i.mid, 'sending', 1, %(run)s, o.user_id FROM input i
    JOIN checkout_orchestrations c ON c.id = i.id AND c.stage_status = 'waiting'
                                  AND c.next_action_at = i.due_at
    JOIN orders o ON o.id = c.order_id
    JOIN recovery_claims r ON r.orchestration_id = i.id AND r.run_id = %(run)s
                          AND r.due_at = i.due_at
    LEFT JOIN notification_preferences np ON np.user_id = o.user_id
   WHERE COALESCE(np.order_updates, true)
     AND pg_try_advisory_xact_lock(hashtextextended('recovery:' || o.user_id::text, 0))
     AND NOT EXISTS (SELECT 1 FROM recovery_deliveries p
                      WHERE p.user_id = o.user_id AND p.status IN ('sending', 'sent')
                        AND p.updated_at > now() - interval '24 hours'
                        AND (p.orchestration_id <> i.id OR p.due_at <> i.due_at))
  ON CONFLICT (orchestration_id, due_at) DO UPDATE
     SET status = 'sending', run_id = EXCLUDED.run_id, updated_at = now(),
         user_id = EXCLUDED.user_id,
         attempts = d.attempts + CASE WHEN d.status = 'released' THEN 0 ELSE 1 END,
         smtp_code = NULL, smtp_enhanced = NULL, smtp_text = NULL
   WHERE d.status IN ('released', 'deferred')
  RETURNING d.orchestration_id
) SELECT i.ord FROM input i JOIN ins ON ins.orchestration_id = i.id;

-- name: ledger_finish
UPDATE recovery_deliveries d
   SET status = 'sent', smtp_code = 250, smtp_enhanced = '2.0.0', smtp_text = 'Ok',
       updated_at = now(), sent_at = now()
  FROM bench_batch i
 WHERE i.action = 'send' AND d.orchestration_id = i.id AND d.due_at = i.due_at
   AND d.status IN ('sending', 'unknown');

-- name: finalise
WITH input AS (
  SELECT b.id, b.due_at, b.ord,
         jsonb_build_object('lastRecoveryOutcome', o.outcome) AS patch,
         jsonb_build_object('outcome', o.outcome, 'runId', %(run)s, 'stage', b.stage,
                            'intentCount', b.pending)
           || CASE WHEN b.action = 'send' THEN jsonb_build_object(
                     'messageId', 'recovery.' || b.id || '.' || b.due_us || '@' || %(domain)s,
                     'smtpCode', 250, 'smtpEnhancedCode', '2.0.0')
                   ELSE '{}'::jsonb END
           || CASE WHEN b.action IN ('send', 'skipped_opt_out')
                   THEN jsonb_build_object('consentBasis', 'order_updates')
                   ELSE '{}'::jsonb END AS payload,
         CASE WHEN b.action IN ('missing_order', 'max_prompts') THEN -1
              ELSE %(retry_ms)s::bigint END AS next_ms
    FROM bench_batch b,
         LATERAL (SELECT CASE WHEN b.action = 'send' THEN 'sent' ELSE b.action END
                         AS outcome) o
), mine AS (
  DELETE FROM recovery_claims r USING input i
   WHERE r.orchestration_id = i.id AND r.run_id = %(run)s AND r.due_at = i.due_at
  RETURNING r.orchestration_id AS id
), fin AS (
  UPDATE checkout_orchestrations c
     SET metadata = (CASE WHEN json_typeof(c.metadata::json) = 'object'
                          THEN c.metadata::jsonb ELSE '{}'::jsonb END
                     || i.patch
                     || jsonb_build_object(
                          'lastRecoverySweepAt',
                          to_char(now() AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                          'lastRecoveryStage', c.current_stage::text)),
         last_transition_at = now(), updated_at = now(),
         next_action_at = CASE WHEN i.next_ms < 0 THEN NULL
                               ELSE now() + i.next_ms * interval '1 millisecond' END,
         locked_until = CASE WHEN i.next_ms < 0 THEN NULL
                             ELSE now() + i.next_ms * interval '1 millisecond' END
    FROM input i JOIN mine m ON m.id = i.id
   WHERE c.id = i.id AND c.stage_status = 'waiting' AND c.next_action_at = i.due_at
  RETURNING c.id, c.current_stage
), ev AS (
  INSERT INTO checkout_orchestration_events
         (id, orchestration_id, stage, status, transition_note, payload, created_at)
  SELECT gen_random_uuid(), f.id, f.current_stage, 'waiting', 'Recovery sweep executed',
         i.payload, now()
    FROM fin f JOIN input i ON i.id = f.id
  RETURNING orchestration_id
) SELECT i.ord, m.id IS NOT NULL, e.orchestration_id IS NOT NULL
    FROM input i LEFT JOIN mine m ON m.id = i.id
    LEFT JOIN ev e ON e.orchestration_id = i.id;
