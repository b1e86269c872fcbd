-- Indexes that serve exactly the sweep's statements, so that the journal's two writes per
-- delivery ('sending', then the reply, which sets sent_at) are both HOT updates that touch
-- no index.
--
-- ix_recovery_deliveries_sent_at served no statement of the worker. The member index keeps
-- only the key its two statements look up by (a member has few deliveries; the rows of one
-- member are read and filtered): the claim's "when was this member last prompted" and the
-- ledger step's frequency-cap re-check.
DROP INDEX IF EXISTS ix_recovery_deliveries_sent_at;
DROP INDEX IF EXISTS ix_recovery_deliveries_member;
CREATE INDEX ix_recovery_deliveries_member
    ON recovery_deliveries (user_id) WHERE user_id IS NOT NULL;
