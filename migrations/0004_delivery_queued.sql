-- A delivery is 'queued' when the sweep has decided to send it and 'sending' only from the
-- instant its data goes on the wire, so after a crash only the messages that were really in
-- the relay's hands are in doubt; a 'queued' row left behind is ordinary due work.
ALTER TABLE recovery_deliveries DROP CONSTRAINT IF EXISTS recovery_deliveries_status_check;
ALTER TABLE recovery_deliveries ADD CONSTRAINT recovery_deliveries_status_check
    CHECK (status IN ('queued', 'sending', 'sent', 'deferred', 'failed', 'unknown', 'released'));

-- Set when the occurrence was sent again after an attempt whose outcome was unknown (the
-- worker stopped while the data was on the wire): the member may have two copies, both with
-- this row's Message-ID.
ALTER TABLE recovery_deliveries ADD COLUMN IF NOT EXISTS resent_in_doubt boolean NOT NULL DEFAULT false;

-- The journal writes each delivery twice more while it is sent ('sending', then the reply).
-- With no index on status (not even in a predicate) and room left on each page, the first
-- of those is a HOT update that touches no index.
ALTER TABLE recovery_deliveries SET (fillfactor = 80);
DROP INDEX IF EXISTS ix_recovery_deliveries_member;
CREATE INDEX ix_recovery_deliveries_member
    ON recovery_deliveries (user_id, sent_at) WHERE user_id IS NOT NULL;
DROP INDEX IF EXISTS ix_recovery_deliveries_sent_at;
CREATE INDEX ix_recovery_deliveries_sent_at
    ON recovery_deliveries (sent_at) WHERE sent_at IS NOT NULL;
