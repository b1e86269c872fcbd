-- Who each delivery went to, so the per-member frequency cap (sweep.member_min_interval)
-- is one index lookup: "is a prompt to this member being sent, or when was the last one
-- sent, from any orchestration?"
ALTER TABLE recovery_deliveries ADD COLUMN IF NOT EXISTS user_id uuid;

UPDATE recovery_deliveries d
   SET user_id = o.user_id
  FROM checkout_orchestrations c JOIN orders o ON o.id = c.order_id
 WHERE c.id = d.orchestration_id AND d.user_id IS NULL;

CREATE INDEX IF NOT EXISTS ix_recovery_deliveries_member
    ON recovery_deliveries (user_id, sent_at) WHERE status IN ('sending', 'sent');
