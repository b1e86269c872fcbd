-- The worker's own objects: the index behind the due query, the claims that fence
-- finalisation, and the delivery ledger (one row per due occurrence).

-- gen_random_uuid() is built in from PostgreSQL 13 on; nothing to install.

-- Serves "stage_status = 'waiting' AND next_action_at <= now() ORDER BY next_action_at".
CREATE INDEX IF NOT EXISTS ix_checkout_orchestrations_recovery_due
    ON checkout_orchestrations (next_action_at)
    WHERE stage_status = 'waiting';

-- smplat looks orchestrations up by order; without this every `status`/`event` scans.
CREATE INDEX IF NOT EXISTS ix_checkout_orchestrations_order_id
    ON checkout_orchestrations (order_id);

-- Who holds the lease on an orchestration. Finalise and release only touch rows whose claim
-- is still theirs (run_id and due_at match), so a worker whose lease expired while it was
-- slow cannot overwrite the work of the worker that took the row after it.
CREATE TABLE IF NOT EXISTS recovery_claims (
    orchestration_id uuid PRIMARY KEY
        REFERENCES checkout_orchestrations (id) ON DELETE CASCADE,
    run_id           text NOT NULL,
    due_at           timestamptz NOT NULL,
    claimed_at       timestamptz NOT NULL,
    lease_until      timestamptz NOT NULL
);

-- One row per due occurrence (orchestration, next_action_at that made it due). The row is
-- written as 'sending' before the message goes to SMTP and updated with the reply, so a
-- retry or a crash is recognisable and the Message-ID built from the key stays the same.
CREATE TABLE IF NOT EXISTS recovery_deliveries (
    orchestration_id uuid NOT NULL
        REFERENCES checkout_orchestrations (id) ON DELETE CASCADE,
    due_at           timestamptz NOT NULL,
    message_id       text NOT NULL UNIQUE,
    status           text NOT NULL
        CHECK (status IN ('sending', 'sent', 'deferred', 'failed', 'unknown', 'released')),
    attempts         integer NOT NULL DEFAULT 1,
    smtp_code        integer,
    smtp_enhanced    text,
    smtp_text        text,
    run_id           text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    PRIMARY KEY (orchestration_id, due_at)
);
CREATE INDEX IF NOT EXISTS ix_recovery_deliveries_sent_at
    ON recovery_deliveries (sent_at) WHERE status = 'sent';
