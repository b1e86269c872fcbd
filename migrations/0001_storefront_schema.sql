-- The storefront tables the worker reads and writes, created only where missing, in the
-- shape the smplat storefront's migrations (up to revision 20251201_31) give them. On an
-- existing smplat database this migration changes nothing.

DO $$
BEGIN
    IF to_regtype('preferred_currency_enum') IS NULL THEN
        CREATE TYPE preferred_currency_enum AS ENUM ('EUR', 'USD');
    END IF;
    IF to_regtype('order_status_enum') IS NULL THEN
        CREATE TYPE order_status_enum AS ENUM
            ('pending', 'processing', 'active', 'completed', 'on_hold', 'canceled');
    END IF;
    IF to_regtype('order_source_enum') IS NULL THEN
        CREATE TYPE order_source_enum AS ENUM ('checkout', 'manual');
    END IF;
    IF to_regtype('loyalty_checkout_intent_kind') IS NULL THEN
        CREATE TYPE loyalty_checkout_intent_kind AS ENUM ('redemption', 'referral_share');
    END IF;
    IF to_regtype('loyalty_checkout_intent_status') IS NULL THEN
        CREATE TYPE loyalty_checkout_intent_status AS ENUM
            ('pending', 'resolved', 'cancelled', 'expired');
    END IF;
    IF to_regtype('checkout_orchestration_stage_enum') IS NULL THEN
        CREATE TYPE checkout_orchestration_stage_enum AS ENUM
            ('payment', 'verification', 'loyalty_hold', 'fulfillment', 'completed');
    END IF;
    IF to_regtype('checkout_orchestration_status_enum') IS NULL THEN
        CREATE TYPE checkout_orchestration_status_enum AS ENUM
            ('not_started', 'in_progress', 'waiting', 'completed', 'failed');
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS users (
    id                uuid PRIMARY KEY,
    email             varchar NOT NULL UNIQUE,
    password_hash     varchar,
    display_name      varchar,
    role              varchar(16) NOT NULL DEFAULT 'client',
    status            varchar(16) NOT NULL DEFAULT 'active',
    is_email_verified boolean NOT NULL DEFAULT false,
    phone_number      varchar(32),
    push_token        varchar(128),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS orders (
    id           uuid PRIMARY KEY,
    order_number varchar NOT NULL UNIQUE,
    user_id      uuid REFERENCES users (id) ON DELETE SET NULL,
    status       order_status_enum NOT NULL DEFAULT 'pending',
    source       order_source_enum NOT NULL DEFAULT 'checkout',
    subtotal     numeric(12, 2) NOT NULL DEFAULT 0,
    tax          numeric(12, 2) NOT NULL DEFAULT 0,
    total        numeric(12, 2) NOT NULL DEFAULT 0,
    currency     preferred_currency_enum NOT NULL DEFAULT 'EUR',
    notes        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ix_orders_user_id ON orders (user_id);

CREATE TABLE IF NOT EXISTS notification_preferences (
    id                     uuid PRIMARY KEY,
    user_id                uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    order_updates          boolean NOT NULL DEFAULT true,
    payment_updates        boolean NOT NULL DEFAULT true,
    fulfillment_alerts     boolean NOT NULL DEFAULT true,
    marketing_messages     boolean NOT NULL DEFAULT false,
    last_selected_order_id uuid,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS loyalty_members (
    id                   uuid PRIMARY KEY,
    user_id              uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    current_tier_id      uuid,
    points_balance       numeric(14, 2) NOT NULL DEFAULT 0,
    lifetime_points      numeric(14, 2) NOT NULL DEFAULT 0,
    points_on_hold       numeric(14, 2) NOT NULL DEFAULT 0,
    referral_code        varchar UNIQUE,
    last_tier_upgrade_at timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS loyalty_checkout_intents (
    id            uuid PRIMARY KEY,
    member_id     uuid NOT NULL REFERENCES loyalty_members (id) ON DELETE CASCADE,
    external_id   varchar NOT NULL,
    kind          loyalty_checkout_intent_kind NOT NULL,
    status        loyalty_checkout_intent_status NOT NULL DEFAULT 'pending',
    order_id      varchar,
    redemption_id uuid,
    referral_code varchar,
    channel       varchar,
    expires_at    timestamptz,
    resolved_at   timestamptz,
    metadata      json,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (member_id, external_id)
);
CREATE INDEX IF NOT EXISTS ix_loyalty_checkout_intents_member_status
    ON loyalty_checkout_intents (member_id, status);
CREATE INDEX IF NOT EXISTS ix_loyalty_checkout_intents_expires_at
    ON loyalty_checkout_intents (expires_at);

CREATE TABLE IF NOT EXISTS checkout_orchestrations (
    id                 uuid PRIMARY KEY,
    order_id           uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    user_id            uuid REFERENCES users (id) ON DELETE SET NULL,
    current_stage      checkout_orchestration_stage_enum NOT NULL DEFAULT 'payment',
    stage_status       checkout_orchestration_status_enum NOT NULL DEFAULT 'not_started',
    metadata           json,
    started_at         timestamptz,
    completed_at       timestamptz,
    failed_at          timestamptz,
    last_transition_at timestamptz,
    next_action_at     timestamptz,
    locked_until       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS checkout_orchestration_events (
    id               uuid PRIMARY KEY,
    orchestration_id uuid NOT NULL REFERENCES checkout_orchestrations (id) ON DELETE CASCADE,
    stage            checkout_orchestration_stage_enum NOT NULL,
    status           checkout_orchestration_status_enum NOT NULL,
    transition_note  text,
    payload          json,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ix_checkout_orchestration_events_orchestration_id
    ON checkout_orchestration_events (orchestration_id);
