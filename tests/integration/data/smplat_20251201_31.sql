-- Fixture: the smplat storefront (Mvgnu/smplat) schema subset as produced by apps/api/alembic/versions
-- up to and including revision 20251201_31, for 7 tables:
--   users, orders, notification_preferences, loyalty_members,
--   loyalty_checkout_intents, checkout_orchestrations, checkout_orchestration_events
-- Hand-written PostgreSQL equivalent of the Alembic ops (sa.String() -> VARCHAR,
-- sa.JSON() -> json (NOT jsonb), DateTime(timezone=True) -> timestamptz).
-- Constraint names: explicit names kept; unnamed ones get PG default names
-- (<table>_pkey, <table>_<col>_key, <table>_<col>_fkey), as Alembic would
-- (alembic/env.py sets no naming convention).
--
-- NOTE: no id column has a server default in smplat (ORM-side uuid4 only).
-- Inserting rows requires explicit ids, e.g. gen_random_uuid().
--
-- FKs DROPPED because their targets are outside this 7-table subset:
--   loyalty_members.current_tier_id        -> loyalty_tiers(id)        (no ON DELETE)  [rev 20251111_23]
--   loyalty_checkout_intents.redemption_id -> loyalty_redemptions(id)  ON DELETE SET NULL [rev 20251118_25]
-- (the columns themselves are kept)

CREATE EXTENSION IF NOT EXISTS pgcrypto;  -- only for gen_random_uuid() in test inserts

BEGIN;

-- ---------------------------------------------------------------- enum types
-- rev 20251015_02 (orig) / 20251015_03 (later version): preferred_currency_enum
CREATE TYPE preferred_currency_enum AS ENUM ('EUR', 'USD');
-- rev 20251015_03
CREATE TYPE order_status_enum AS ENUM ('pending', 'processing', 'active', 'completed', 'on_hold', 'canceled');
CREATE TYPE order_source_enum AS ENUM ('checkout', 'manual');
-- rev 20251118_25
CREATE TYPE loyalty_checkout_intent_kind AS ENUM ('redemption', 'referral_share');
CREATE TYPE loyalty_checkout_intent_status AS ENUM ('pending', 'resolved', 'cancelled', 'expired');
-- rev 20251201_31
CREATE TYPE checkout_orchestration_stage_enum AS ENUM ('payment', 'verification', 'loyalty_hold', 'fulfillment', 'completed');
CREATE TYPE checkout_orchestration_status_enum AS ENUM ('not_started', 'in_progress', 'waiting', 'completed', 'failed');

-- ---------------------------------------------------------------- users
-- rev 20251015_01 (latest stored version, commit 45f02e0): role/status are VARCHAR(16) + CHECK.
-- (Original version, commit 4bcae53, instead used enum types:
--    CREATE TYPE user_role_enum AS ENUM ('client','admin','finance');
--    CREATE TYPE user_status_enum AS ENUM ('active','invited','suspended');
--  with role user_role_enum DEFAULT 'client', status user_status_enum DEFAULT 'active', no CHECKs.)
CREATE TABLE users (
    id                UUID NOT NULL,
    email             VARCHAR NOT NULL,
    password_hash     VARCHAR,
    display_name      VARCHAR,
    role              VARCHAR(16) DEFAULT 'client' NOT NULL,
    status            VARCHAR(16) DEFAULT 'active' NOT NULL,
    is_email_verified BOOLEAN DEFAULT false NOT NULL,
    created_at        TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at        TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (email),
    CONSTRAINT ck_users_role_valid CHECK (role IN ('client','admin','finance')),
    CONSTRAINT ck_users_status_valid CHECK (status IN ('active','invited','suspended'))
);
CREATE UNIQUE INDEX ix_users_email ON users (email);
-- rev 20251128_30
ALTER TABLE users ADD COLUMN phone_number VARCHAR(32);
ALTER TABLE users ADD COLUMN push_token VARCHAR(128);

-- ---------------------------------------------------------------- orders
-- rev 20251015_03 (no later revision <= _31 alters orders)
CREATE TABLE orders (
    id           UUID NOT NULL,
    order_number VARCHAR NOT NULL,
    user_id      UUID,
    status       order_status_enum DEFAULT 'pending' NOT NULL,
    source       order_source_enum DEFAULT 'checkout' NOT NULL,
    subtotal     NUMERIC(12, 2) DEFAULT '0' NOT NULL,
    tax          NUMERIC(12, 2) DEFAULT '0' NOT NULL,
    total        NUMERIC(12, 2) DEFAULT '0' NOT NULL,
    currency     preferred_currency_enum DEFAULT 'EUR' NOT NULL,
    notes        TEXT,
    created_at   TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at   TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (order_number),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX ix_orders_user_id ON orders (user_id);

-- ---------------------------------------------------------------- notification_preferences
-- rev 20251017_07 (NB: ORM model also declares billing_alerts BOOLEAN NOT NULL DEFAULT false,
-- but no stored migration creates that column)
CREATE TABLE notification_preferences (
    id                     UUID NOT NULL,
    user_id                UUID NOT NULL,
    order_updates          BOOLEAN DEFAULT true NOT NULL,
    payment_updates        BOOLEAN DEFAULT true NOT NULL,
    fulfillment_alerts     BOOLEAN DEFAULT true NOT NULL,
    marketing_messages     BOOLEAN DEFAULT false NOT NULL,
    last_selected_order_id UUID,
    created_at             TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at             TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (user_id),
    CONSTRAINT fk_notification_preferences_user_id_users
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

-- ---------------------------------------------------------------- loyalty_members
-- rev 20251111_23 (+ points_on_hold from rev 20251112_24)
CREATE TABLE loyalty_members (
    id                   UUID NOT NULL,
    user_id              UUID NOT NULL,
    current_tier_id      UUID,              -- FK -> loyalty_tiers(id) DROPPED (outside subset)
    points_balance       NUMERIC(14, 2) DEFAULT '0' NOT NULL,
    lifetime_points      NUMERIC(14, 2) DEFAULT '0' NOT NULL,
    referral_code        VARCHAR,
    last_tier_upgrade_at TIMESTAMP WITH TIME ZONE,
    created_at           TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at           TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    UNIQUE (referral_code),
    CONSTRAINT uq_loyalty_members_user_id UNIQUE (user_id)
);
-- rev 20251112_24
ALTER TABLE loyalty_members ADD COLUMN points_on_hold NUMERIC(14, 2) DEFAULT '0' NOT NULL;

-- ---------------------------------------------------------------- loyalty_checkout_intents
-- rev 20251118_25
CREATE TABLE loyalty_checkout_intents (
    id            UUID NOT NULL,
    member_id     UUID NOT NULL,
    external_id   VARCHAR NOT NULL,
    kind          loyalty_checkout_intent_kind NOT NULL,
    status        loyalty_checkout_intent_status DEFAULT 'pending' NOT NULL,
    order_id      VARCHAR,                  -- plain string, NOT a FK to orders
    redemption_id UUID,                     -- FK -> loyalty_redemptions(id) ON DELETE SET NULL DROPPED
    referral_code VARCHAR,
    channel       VARCHAR,
    expires_at    TIMESTAMP WITH TIME ZONE,
    resolved_at   TIMESTAMP WITH TIME ZONE,
    metadata      JSON,
    created_at    TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at    TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (member_id) REFERENCES loyalty_members (id) ON DELETE CASCADE,
    CONSTRAINT uq_loyalty_checkout_intents_member_external UNIQUE (member_id, external_id)
);
CREATE INDEX ix_loyalty_checkout_intents_member_status ON loyalty_checkout_intents (member_id, status);
CREATE INDEX ix_loyalty_checkout_intents_expires_at ON loyalty_checkout_intents (expires_at);

-- ---------------------------------------------------------------- checkout_orchestrations
-- rev 20251201_31 (no unique constraint/index on order_id)
CREATE TABLE checkout_orchestrations (
    id                 UUID NOT NULL,
    order_id           UUID NOT NULL,
    user_id            UUID,
    current_stage      checkout_orchestration_stage_enum DEFAULT 'payment' NOT NULL,
    stage_status       checkout_orchestration_status_enum DEFAULT 'not_started' NOT NULL,
    metadata           JSON,
    started_at         TIMESTAMP WITH TIME ZONE,
    completed_at       TIMESTAMP WITH TIME ZONE,
    failed_at          TIMESTAMP WITH TIME ZONE,
    last_transition_at TIMESTAMP WITH TIME ZONE,
    next_action_at     TIMESTAMP WITH TIME ZONE,
    locked_until       TIMESTAMP WITH TIME ZONE,
    created_at         TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at         TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL
);

-- ---------------------------------------------------------------- checkout_orchestration_events
-- rev 20251201_31
CREATE TABLE checkout_orchestration_events (
    id               UUID NOT NULL,
    orchestration_id UUID NOT NULL,
    stage            checkout_orchestration_stage_enum NOT NULL,
    status           checkout_orchestration_status_enum NOT NULL,
    transition_note  TEXT,
    payload          JSON,
    created_at       TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (orchestration_id) REFERENCES checkout_orchestrations (id) ON DELETE CASCADE
);
CREATE INDEX ix_checkout_orchestration_events_orchestration_id
    ON checkout_orchestration_events (orchestration_id);

COMMIT;
