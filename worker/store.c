/* store: the SQL of the sweep. Claim, ledger and finalise are each one statement per batch;
 * data-modifying CTEs keep the related writes of a step in that one statement, so a
 * database failure leaves each orchestration untouched or fully finalised. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "policy.h"

/* The ledger statuses the statements below spell as SQL literals, each checked against
 * policy's list (POLICY_LEDGER_STATUSES) when this file compiles: a word that is not in it
 * does not build. Statuses that come from the sweep are passed as parameters, by name
 * (policy_ledger_name). */
#define LEDGER_WORD(w) _Static_assert(POLICY_LEDGER_WORD_##w >= 0, "ledger status " #w)
LEDGER_WORD(queued);
LEDGER_WORD(sending);
LEDGER_WORD(sent);
LEDGER_WORD(deferred);
LEDGER_WORD(unknown);
LEDGER_WORD(released);

/* The context of each claimed row: its order, the order's member, the member's consent,
 * loyalty member and pending intents, and what the ledger says. `src` is a relation with
 * columns id, order_id, stage, due_at, created_at. */
#define CONTEXT_SELECT(src)                                                                                     \
    "SELECT l.id::text, l.due_at::text, l.stage::text, o.id::text, o.order_number,"                             \
    "       o.total::text, o.currency::text, u.id::text, u.email, u.display_name,"                              \
    "       np.order_updates, np.marketing_messages,"                                                           \
    "       lm.id IS NOT NULL, COALESCE(pi.n, 0), COALESCE(ls.sent, 0),"                                        \
    "       COALESCE(ls.deferred, 0), ls.cur_status, COALESCE(ls.cur_attempts, 0),"                             \
    "       (EXTRACT(EPOCH FROM l.due_at) * 1000000)::bigint::text,"                                            \
    "       (EXTRACT(EPOCH FROM now() - lp.sent_at) * 1000)::bigint,"                                           \
    "       (EXTRACT(EPOCH FROM now() - l.created_at) * 1000)::bigint"                                          \
    "  FROM " src " l"                                                                                          \
    "  LEFT JOIN orders o ON o.id = l.order_id"                                                                 \
    "  LEFT JOIN users u ON u.id = o.user_id"                                                                   \
    "  LEFT JOIN notification_preferences np ON np.user_id = u.id"                                              \
    "  LEFT JOIN loyalty_members lm ON lm.user_id = u.id"                                                       \
    "  LEFT JOIN LATERAL (SELECT count(*) AS n FROM loyalty_checkout_intents i"                                 \
    "                      WHERE i.member_id = lm.id AND i.status = 'pending'"                                  \
    "                        AND (i.expires_at IS NULL OR i.expires_at > now())) pi ON true" /* The             \
                                                                                              * orchestration's \
                                                                                              * ledger          \
                                                                                              * in              \
                                                                                              * one             \
                                                                                              * look-up:        \
                                                                                              * prompts         \
                                                                                              * sent,           \
                                                                                              * deferrals       \
                                                                                              * since           \
                                                                                              * the             \
                                                                                              * last            \
                                                                                              * row             \
                                                                                              * that            \
                                                                                              * was             \
                                                                                              * not             \
                                                                                              * one,            \
                                                                                              * and             \
                                                                                              * the             \
                                                                                              * row             \
                                                                                              * of              \
                                                                                              * this            \
                                                                                              * occurrence.     \
                                                                                              */                \
    "  LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE d.status = 'sent') AS sent,"                            \
    "                            count(*) FILTER (WHERE d.status = 'deferred'"                                  \
    "                                               AND d.due_at > d.last_ok) AS deferred,"                     \
    "                            min(d.status) FILTER (WHERE d.due_at = l.due_at) AS cur_status,"               \
    "                            min(d.attempts) FILTER (WHERE d.due_at = l.due_at)"                            \
    "                              AS cur_attempts"                                                             \
    "                       FROM (SELECT s.status, s.due_at, s.attempts,"                                       \
    "                                    COALESCE(max(s.due_at) FILTER ("                                       \
    "                                               WHERE s.status <> 'deferred') OVER (),"                     \
    "                                             '-infinity') AS last_ok"                                      \
    "                               FROM recovery_deliveries s"                                                 \
    "                              WHERE s.orchestration_id = l.id) d) ls ON true"                              \
    "  LEFT JOIN LATERAL (SELECT max(p.sent_at) AS sent_at FROM recovery_deliveries p"                          \
    "                      WHERE p.user_id = u.id AND p.status = 'sent') lp ON true"                            \
    " ORDER BY l.due_at, l.id"

enum {
    COL_ID,
    COL_DUE,
    COL_STAGE,
    COL_ORDER,
    COL_ORDER_NUMBER,
    COL_TOTAL,
    COL_CURRENCY,
    COL_USER,
    COL_EMAIL,
    COL_NAME,
    COL_ORDER_UPDATES,
    COL_MARKETING,
    COL_HAS_MEMBER,
    COL_PENDING,
    COL_SENT,
    COL_DEFERRED,
    COL_LEDGER_STATUS,
    COL_LEDGER_ATTEMPTS,
    COL_DUE_US,
    COL_SINCE_PROMPT,
    COL_AGE,
};

/* After a `due` CTE of ids: lease them ($2 ms) to run $3, record the claims, read the
 * context. */
#define LEASE_AND_READ                                                                             \
    ", leased AS ("                                                                                \
    "  UPDATE checkout_orchestrations c"                                                           \
    "     SET locked_until = now() + $2::bigint * interval '1 millisecond'"                        \
    "    FROM due WHERE c.id = due.id"                                                             \
    "  RETURNING c.id, c.order_id, c.current_stage AS stage, c.next_action_at AS due_at,"          \
    "            c.created_at"                                                                     \
    "), claimed AS ("                                                                              \
    "  INSERT INTO recovery_claims (orchestration_id, run_id, due_at, claimed_at, lease_until)"    \
    "  SELECT id, $3, due_at, now(), now() + $2::bigint * interval '1 millisecond' FROM leased"    \
    "  ON CONFLICT (orchestration_id) DO UPDATE"                                                   \
    "     SET run_id = EXCLUDED.run_id, due_at = EXCLUDED.due_at,"                                 \
    "         claimed_at = EXCLUDED.claimed_at, lease_until = EXCLUDED.lease_until"                \
    ") " CONTEXT_SELECT("leased")

/* Due rows, oldest first; FOR UPDATE SKIP LOCKED so concurrent sweeps take disjoint sets. */
static const char SQL_CLAIM_DUE[] =
    "WITH due AS ("
    "  SELECT c.id FROM checkout_orchestrations c"
    "   WHERE c.stage_status = 'waiting' AND c.next_action_at <= now()"
    "     AND (c.locked_until IS NULL OR c.locked_until <= now())"
    "   ORDER BY c.next_action_at"
    "   LIMIT $1"
    "   FOR UPDATE SKIP LOCKED"
    ")" LEASE_AND_READ;

/* One order's waiting orchestration, due or not. smplat's own `waiting` transition sets
 * locked_until = next_action_at, so here only a live worker claim counts as a lease. */
static const char SQL_CLAIM_ORDER[] =
    "WITH due AS ("
    "  SELECT c.id FROM checkout_orchestrations c"
    "   WHERE c.order_id = $4::uuid AND c.stage_status = 'waiting'"
    "     AND c.next_action_at IS NOT NULL"
    "     AND NOT EXISTS (SELECT 1 FROM recovery_claims r"
    "                      WHERE r.orchestration_id = c.id AND r.lease_until > now())"
    "   ORDER BY c.created_at"
    "   LIMIT $1"
    "   FOR UPDATE SKIP LOCKED"
    ")" LEASE_AND_READ;

static const char SQL_PEEK_DUE[] =
    "WITH peek AS ("
    "  SELECT c.id, c.order_id, c.current_stage AS stage, c.next_action_at AS due_at,"
    "         c.created_at"
    "    FROM checkout_orchestrations c"
    "   WHERE c.stage_status = 'waiting' AND c.next_action_at <= now()"
    "     AND (c.locked_until IS NULL OR c.locked_until <= now())"
    "     AND ($2::timestamptz IS NULL OR (c.next_action_at, c.id) > ($2, $3::uuid))"
    "   ORDER BY c.next_action_at, c.id LIMIT $1"
    ") " CONTEXT_SELECT("peek");

static const char SQL_PEEK_ORDER[] =
    "WITH peek AS ("
    "  SELECT c.id, c.order_id, c.current_stage AS stage, c.next_action_at AS due_at,"
    "         c.created_at"
    "    FROM checkout_orchestrations c"
    "   WHERE c.order_id = $2::uuid AND c.stage_status = 'waiting'"
    "     AND c.next_action_at IS NOT NULL"
    "   ORDER BY c.created_at LIMIT $1"
    ") " CONTEXT_SELECT("peek");

static char *
dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static long
to_long(const char *s)
{
    return s != NULL ? strtol(s, NULL, 10) : 0;
}

static bool
to_bool(const char *s)
{
    return s != NULL && s[0] == 't';
}

/* A preference column: NULL (no preference row, or none stored) is unset; policy says
 * what that counts as. */
static enum policy_pref
to_pref(const char *s)
{
    if (s == NULL)
        return POLICY_PREF_UNSET;
    return to_bool(s) ? POLICY_PREF_ON : POLICY_PREF_OFF;
}

static int
read_batch(struct db_res *r, struct store_batch *out, struct err *e)
{
    size_t n = db_res_rows(r);
    out->rows = n ? calloc(n, sizeof *out->rows) : NULL;
    out->n = 0;
    if (n && out->rows == NULL)
        return err_set(e, ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        struct store_row *row = &out->rows[i];
        row->id = dup_or_null(db_res_get(r, i, COL_ID));
        row->due_at = dup_or_null(db_res_get(r, i, COL_DUE));
        row->stage = dup_or_null(db_res_get(r, i, COL_STAGE));
        row->order_id = dup_or_null(db_res_get(r, i, COL_ORDER));
        row->order_number = dup_or_null(db_res_get(r, i, COL_ORDER_NUMBER));
        row->total = dup_or_null(db_res_get(r, i, COL_TOTAL));
        row->currency = dup_or_null(db_res_get(r, i, COL_CURRENCY));
        row->user_id = dup_or_null(db_res_get(r, i, COL_USER));
        row->email = dup_or_null(db_res_get(r, i, COL_EMAIL));
        row->display_name = dup_or_null(db_res_get(r, i, COL_NAME));
        row->order_updates = to_pref(db_res_get(r, i, COL_ORDER_UPDATES));
        row->marketing_messages = to_pref(db_res_get(r, i, COL_MARKETING));
        const char *since = db_res_get(r, i, COL_SINCE_PROMPT);
        row->since_last_prompt_ms = since != NULL ? strtoll(since, NULL, 10) : -1;
        row->has_member = to_bool(db_res_get(r, i, COL_HAS_MEMBER));
        row->pending_intents = to_long(db_res_get(r, i, COL_PENDING));
        row->prompts_sent = to_long(db_res_get(r, i, COL_SENT));
        row->deferrals = to_long(db_res_get(r, i, COL_DEFERRED));
        row->ledger_status = dup_or_null(db_res_get(r, i, COL_LEDGER_STATUS));
        row->ledger_attempts = to_long(db_res_get(r, i, COL_LEDGER_ATTEMPTS));
        row->due_us = dup_or_null(db_res_get(r, i, COL_DUE_US));
        const char *age = db_res_get(r, i, COL_AGE);
        row->age_ms = age != NULL ? strtoll(age, NULL, 10) : -1;
        out->n++;
        if (row->id == NULL || row->due_at == NULL || row->stage == NULL)
            return err_set(e, ERR_INTERNAL, "out of memory");
    }
    return ERR_OK;
}

int
store_claim(struct db *db, const char *run_id, int limit, long long lease_ms, const char *order_id,
            struct store_batch *out, struct err *e)
{
    char lim[16], lease[24];
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(lease, sizeof lease, "%lld", lease_ms);
    const char *params[] = {lim, lease, run_id, order_id};
    struct db_res *r = NULL;
    out->rows = NULL;
    out->n = 0;
    int rc = order_id != NULL ? db_exec(db, SQL_CLAIM_ORDER, 4, params, &r, e)
                              : db_exec(db, SQL_CLAIM_DUE, 3, params, &r, e);
    if (rc == ERR_OK)
        rc = read_batch(r, out, e);
    db_res_free(r);
    if (rc != ERR_OK)
        err_prefix(e, "claim");
    return rc;
}

int
store_peek(struct db *db, int limit, const char *order_id, const struct store_row *after,
           struct store_batch *out, struct err *e)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    struct db_res *r = NULL;
    out->rows = NULL;
    out->n = 0;
    int rc;
    if (order_id != NULL) {
        const char *params[] = {lim, order_id};
        rc = db_exec(db, SQL_PEEK_ORDER, 2, params, &r, e);
    } else {
        const char *params[] = {lim, after != NULL ? after->due_at : NULL,
                                after != NULL ? after->id : NULL};
        rc = db_exec(db, SQL_PEEK_DUE, 3, params, &r, e);
    }
    if (rc == ERR_OK)
        rc = read_batch(r, out, e);
    db_res_free(r);
    return rc;
}

void
store_batch_free(struct store_batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++) {
        struct store_row *row = &b->rows[i];
        free(row->id);
        free(row->due_at);
        free(row->due_us);
        free(row->stage);
        free(row->order_id);
        free(row->order_number);
        free(row->total);
        free(row->currency);
        free(row->user_id);
        free(row->email);
        free(row->display_name);
        free(row->ledger_status);
    }
    free(b->rows);
    b->rows = NULL;
    b->n = 0;
}

/* Array parameters for a batch: one buf per column. */
struct arrays {
    struct buf col[6];
    int ncols;
};

static void
arrays_init(struct arrays *a, int ncols)
{
    a->ncols = ncols;
    for (int i = 0; i < ncols; i++) {
        buf_init(&a->col[i], 0);
        db_array_begin(&a->col[i]);
    }
}

static bool
arrays_end(struct arrays *a)
{
    bool ok = true;
    for (int i = 0; i < a->ncols; i++) {
        db_array_end(&a->col[i]);
        ok = ok && !a->col[i].failed;
    }
    return ok;
}

static void
arrays_free(struct arrays *a)
{
    for (int i = 0; i < a->ncols; i++)
        buf_free(&a->col[i]);
}

/* Ordinals (1-based) come back from statements that report per-row results. */
static size_t
ordinal(const struct db_res *r, size_t row, size_t n)
{
    long k = to_long(db_res_get(r, row, 0));
    return k >= 1 && (size_t)k <= n ? (size_t)k - 1 : n;
}

/* Runs a batch statement that returns the ordinal (1-based) of each input row it applied
 * to, and sets ok[ordinal - 1] for those. */
static int
exec_ordinals(struct db *db, const char *sql, int nparams, const char *const *params, bool *ok,
              size_t n, struct err *e)
{
    struct db_res *r = NULL;
    int rc = db_exec(db, sql, nparams, params, &r, e);
    for (size_t i = 0; rc == ERR_OK && i < db_res_rows(r); i++) {
        size_t k = ordinal(r, i, n);
        if (k < n)
            ok[k] = true;
    }
    db_res_free(r);
    return rc;
}

static const char *
sql_bool(bool b)
{
    return b ? "true" : "false";
}

static const char SQL_LEDGER_BEGIN[] =
    "WITH input AS ("
    "  SELECT * FROM unnest($2::uuid[], $3::timestamptz[], $4::text[])"
    "         WITH ORDINALITY AS t(id, due_at, mid, ord)"
    "), ins AS ("
    "  INSERT INTO recovery_deliveries AS d"
    "         (orchestration_id, due_at, message_id, status, attempts, run_id, user_id)"
    "  SELECT i.id, i.due_at, i.mid, 'queued', 1, $1, o.user_id FROM input i"
    "    JOIN checkout_orchestrations c ON c.id = i.id AND c.stage_status = 'waiting'"
    "                                  AND c.next_action_at = i.due_at"
    "    JOIN orders o ON o.id = c.order_id"
    "    JOIN recovery_claims r ON r.orchestration_id = i.id AND r.run_id = $1"
    "                          AND r.due_at = i.due_at"
    "    LEFT JOIN notification_preferences np ON np.user_id = o.user_id"
    /* The re-check of policy_consents, in its terms (policy_consent_terms): $6 and $10 say
     * whether order_updates and marketing_messages must be on, $9 and $11 what an unset
     * one counts as. */
    "   WHERE (NOT $6::boolean OR COALESCE(np.order_updates, $9::boolean))"
    "     AND (NOT $10::boolean OR COALESCE(np.marketing_messages, $11::boolean))"
    /* The re-check of the member frequency cap (policy_member_cap_wait_ms and
     * policy_member_repeats, window $7) across workers: no other prompt to this member is
     * being sent or was sent within the window, and no concurrent statement is deciding the
     * same member (the transaction-scoped advisory lock, keyed by the member). */
    "     AND ($7::bigint <= 0 OR ("
    "          pg_try_advisory_xact_lock(hashtextextended('recovery:' || o.user_id::text, 0))"
    "          AND NOT EXISTS (SELECT 1 FROM recovery_deliveries p"
    "                           WHERE p.user_id = o.user_id"
    "                             AND p.status IN ('queued', 'sending', 'sent')"
    "                             AND p.updated_at > now() - $7::bigint * interval '1 millisecond'"
    "                             AND (p.orchestration_id <> i.id OR p.due_at <> i.due_at))))"
    "  ON CONFLICT (orchestration_id, due_at) DO UPDATE"
    "     SET status = 'queued', run_id = EXCLUDED.run_id, updated_at = now(),"
    "         user_id = EXCLUDED.user_id,"
    "         attempts = d.attempts"
    "                    + CASE WHEN d.status IN ('released', 'queued') THEN 0 ELSE 1 END,"
    "         resent_in_doubt = d.resent_in_doubt OR d.status IN ('sending', 'unknown'),"
    "         smtp_code = NULL, smtp_enhanced = NULL, smtp_text = NULL"
    /* 'queued' here was left by a worker that stopped before sending it: ours now. */
    "   WHERE d.status IN ('released', 'deferred', 'queued')"
    /* the re-check of policy_resend_limit: $5 for 'sending', $8 for 'unknown' */
    "      OR (d.status = 'sending' AND d.attempts < $5::int)"
    "      OR (d.status = 'unknown' AND d.attempts < $8::int)"
    "  RETURNING d.orchestration_id"
    ") SELECT i.ord FROM input i JOIN ins ON ins.orchestration_id = i.id";

int
store_ledger_begin(struct db *db, const char *run_id, const struct store_batch *b,
                   const size_t *idx, char *const *message_ids, size_t n, int limit_sending,
                   int limit_unknown, const struct policy_consent_terms *consent,
                   long long member_window_ms, bool *ok, struct err *e)
{
    char window[24], sending_max[16], unknown_max[16];
    snprintf(window, sizeof window, "%lld", member_window_ms);
    snprintf(sending_max, sizeof sending_max, "%d", limit_sending);
    snprintf(unknown_max, sizeof unknown_max, "%d", limit_unknown);
    struct arrays a;
    arrays_init(&a, 3);
    for (size_t i = 0; i < n; i++) {
        ok[i] = false;
        db_array_add(&a.col[0], b->rows[idx[i]].id);
        db_array_add(&a.col[1], b->rows[idx[i]].due_at);
        db_array_add(&a.col[2], message_ids[i]);
    }
    int rc = ERR_OK;
    if (!arrays_end(&a))
        rc = err_set(e, ERR_INTERNAL, "ledger: batch too large");
    if (rc == ERR_OK) {
        const char *params[] = {run_id,
                                buf_str(&a.col[0]),
                                buf_str(&a.col[1]),
                                buf_str(&a.col[2]),
                                sending_max,
                                sql_bool(consent->needs_order_updates),
                                window,
                                unknown_max,
                                sql_bool(consent->order_updates_unset),
                                sql_bool(consent->needs_marketing),
                                sql_bool(consent->marketing_unset)};
        rc = exec_ordinals(db, SQL_LEDGER_BEGIN, 11, params, ok, n, e);
    }
    arrays_free(&a);
    if (rc != ERR_OK)
        err_prefix(e, "ledger");
    return rc;
}

/* An outcome (status, SMTP reply) from the input row i onto the ledger row d. */
#define SET_OUTCOME                                                                                \
    "   SET status = i.status, smtp_code = i.code, smtp_enhanced = i.enh, smtp_text = i.txt,"      \
    "       updated_at = now(),"                                                                   \
    "       sent_at = CASE WHEN i.status = 'sent' THEN now() ELSE d.sent_at END"

/* Adds one outcome to the six arrays both outcome statements take (id, due_at, status,
 * code, enhanced, text). */
static void
add_outcome(struct arrays *a, const char *id, const char *due_at, const char *status, int code,
            const char *enhanced, const char *text)
{
    char c[16];
    snprintf(c, sizeof c, "%d", code);
    db_array_add(&a->col[0], id);
    db_array_add(&a->col[1], due_at);
    db_array_add(&a->col[2], status);
    db_array_add(&a->col[3], code > 0 ? c : NULL);
    db_array_add(&a->col[4], enhanced != NULL && enhanced[0] ? enhanced : NULL);
    db_array_add(&a->col[5], text != NULL && text[0] ? text : NULL);
}

static const char SQL_LEDGER_FINISH[] =
    "UPDATE recovery_deliveries d" SET_OUTCOME
    "  FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::int[], $5::text[],"
    "              $6::text[]) AS i(id, due_at, status, code, enh, txt)"
    " WHERE d.orchestration_id = i.id AND d.due_at = i.due_at"
    "   AND d.status IN ('queued', 'sending', 'unknown')"
    /* a worker records only its own rows; orphans of a dead one are recorded with NULL */
    "   AND ($7::text IS NULL OR d.run_id = $7)";

/* Runs one of the two outcome statements over the six arrays of add_outcome and run_id
 * ($7); with applied, which of the n outcomes it applied. Frees the arrays. */
static int
exec_outcomes(struct db *db, const char *sql, struct arrays *a, const char *run_id, bool *applied,
              size_t n, struct err *e)
{
    int rc = ERR_OK;
    if (!arrays_end(a))
        rc = err_set(e, ERR_INTERNAL, "ledger: too many outcomes");
    if (rc == ERR_OK) {
        const char *params[] = {buf_str(&a->col[0]),
                                buf_str(&a->col[1]),
                                buf_str(&a->col[2]),
                                buf_str(&a->col[3]),
                                buf_str(&a->col[4]),
                                buf_str(&a->col[5]),
                                run_id};
        rc = applied != NULL ? exec_ordinals(db, sql, 7, params, applied, n, e)
                             : db_exec(db, sql, 7, params, NULL, e);
    }
    arrays_free(a);
    if (rc != ERR_OK)
        err_prefix(e, "ledger");
    return rc;
}

int
store_ledger_finish(struct db *db, const char *run_id, const struct store_batch *b,
                    const struct store_delivery *d, size_t n, struct err *e)
{
    if (n == 0)
        return ERR_OK;
    struct arrays a;
    arrays_init(&a, 6);
    for (size_t i = 0; i < n; i++)
        add_outcome(&a, b->rows[d[i].row].id, b->rows[d[i].row].due_at, d[i].status, d[i].code,
                    d[i].enhanced, d[i].text);
    return exec_outcomes(db, SQL_LEDGER_FINISH, &a, run_id, NULL, n, e);
}

/* The journal's write: 'sending' marks (queued -> sending, just before a message's data goes
 * out) and replies (sending -> outcome) of any rows, in one statement. Both are fenced by
 * run_id, so a worker that lost its lease never writes over the one that took the row. */
static const char SQL_LEDGER_PROGRESS[] =
    "UPDATE recovery_deliveries d" SET_OUTCOME
    "  FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::int[], $5::text[], $6::text[])"
    "       WITH ORDINALITY AS i(id, due_at, status, code, enh, txt, ord)"
    " WHERE d.orchestration_id = i.id AND d.due_at = i.due_at AND d.run_id = $7"
    "   AND CASE WHEN i.status = 'sending'"
    /* a message offered again in the same sweep (the relay's limits held it back) may
     * carry a mark, or a 'released' reply, of its earlier turn */
    "            THEN d.status IN ('queued', 'sending', 'released')"
    "            ELSE d.status = 'sending' END"
    " RETURNING i.ord";

int
store_ledger_progress(struct db *db, const char *run_id, const struct store_progress *p, size_t n,
                      bool *applied, struct err *e)
{
    for (size_t i = 0; i < n; i++)
        applied[i] = false;
    if (n == 0)
        return ERR_OK;
    struct arrays a;
    arrays_init(&a, 6);
    for (size_t i = 0; i < n; i++)
        add_outcome(&a, p[i].id, p[i].due_at, p[i].status, p[i].code, p[i].enhanced, p[i].text);
    return exec_outcomes(db, SQL_LEDGER_PROGRESS, &a, run_id, applied, n, e);
}

/* metadata may be NULL, an array or a scalar in the storefront's data: only an object is
 * merged into; anything else is replaced by the patch. The column may be json or jsonb. */
static const char SQL_FINALISE[] =
    "WITH input AS ("
    "  SELECT * FROM unnest($2::uuid[], $3::timestamptz[], $4::text[], $5::text[],"
    "                       $6::bigint[]) WITH ORDINALITY AS t(id, due_at, patch, payload,"
    "                                                          next_ms, ord)"
    "), mine AS ("
    "  DELETE FROM recovery_claims r USING input i"
    "   WHERE r.orchestration_id = i.id AND r.run_id = $1 AND r.due_at = i.due_at"
    "  RETURNING r.orchestration_id AS id"
    "), fin AS ("
    "  UPDATE checkout_orchestrations c"
    "     SET metadata = (CASE WHEN json_typeof(c.metadata::json) = 'object'"
    "                          THEN c.metadata::jsonb ELSE '{}'::jsonb END"
    "                     || i.patch::jsonb"
    "                     || jsonb_build_object("
    "                          'lastRecoverySweepAt',"
    "                          to_char(now() AT TIME ZONE 'UTC',"
    "                                  'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'),"
    "                          'lastRecoveryStage', c.current_stage::text)),"
    "         last_transition_at = now(), updated_at = now(),"
    "         next_action_at = CASE WHEN i.next_ms < 0 THEN NULL"
    "                               ELSE now() + i.next_ms * interval '1 millisecond' END,"
    "         locked_until = CASE WHEN i.next_ms < 0 THEN NULL"
    "                             ELSE now() + i.next_ms * interval '1 millisecond' END"
    "    FROM input i JOIN mine m ON m.id = i.id"
    "   WHERE c.id = i.id AND c.stage_status = 'waiting' AND c.next_action_at = i.due_at"
    "  RETURNING c.id, c.current_stage"
    "), ev AS ("
    "  INSERT INTO checkout_orchestration_events"
    "         (id, orchestration_id, stage, status, transition_note, payload, created_at)"
    "  SELECT gen_random_uuid(), f.id, f.current_stage, 'waiting', 'Recovery sweep executed',"
    "         i.payload::jsonb, now()"
    "    FROM fin f JOIN input i ON i.id = f.id"
    "  RETURNING orchestration_id"
    ") SELECT i.ord, m.id IS NOT NULL, e.orchestration_id IS NOT NULL"
    "    FROM input i LEFT JOIN mine m ON m.id = i.id"
    "    LEFT JOIN ev e ON e.orchestration_id = i.id";

int
store_finalise(struct db *db, const char *run_id, const struct store_batch *b,
               const struct store_final *f, size_t n, bool *finalised, bool *lost, struct err *e)
{
    if (n == 0)
        return ERR_OK;
    struct arrays a;
    arrays_init(&a, 5);
    int rc = ERR_OK;
    for (size_t i = 0; i < n && rc == ERR_OK; i++) {
        finalised[i] = false;
        lost[i] = true;
        char *patch = json_dumps(f[i].patch, JSON_COMPACT);
        char *payload = json_dumps(f[i].payload, JSON_COMPACT);
        char next[24];
        snprintf(next, sizeof next, "%lld", f[i].next_ms < 0 ? -1LL : f[i].next_ms);
        if (patch == NULL || payload == NULL)
            rc = err_set(e, ERR_INTERNAL, "out of memory");
        db_array_add(&a.col[0], b->rows[f[i].row].id);
        db_array_add(&a.col[1], b->rows[f[i].row].due_at);
        db_array_add(&a.col[2], patch);
        db_array_add(&a.col[3], payload);
        db_array_add(&a.col[4], next);
        free(patch);
        free(payload);
    }
    if (rc == ERR_OK && !arrays_end(&a))
        rc = err_set(e, ERR_INTERNAL, "finalise: batch too large");
    struct db_res *r = NULL;
    if (rc == ERR_OK) {
        const char *params[] = {run_id,
                                buf_str(&a.col[0]),
                                buf_str(&a.col[1]),
                                buf_str(&a.col[2]),
                                buf_str(&a.col[3]),
                                buf_str(&a.col[4])};
        rc = db_exec(db, SQL_FINALISE, 6, params, &r, e);
    }
    for (size_t i = 0; rc == ERR_OK && i < db_res_rows(r); i++) {
        size_t k = ordinal(r, i, n);
        if (k < n) {
            lost[k] = !to_bool(db_res_get(r, i, 1));
            finalised[k] = to_bool(db_res_get(r, i, 2));
        }
    }
    db_res_free(r);
    arrays_free(&a);
    if (rc != ERR_OK)
        err_prefix(e, "finalise");
    return rc;
}

static const char SQL_RELEASE[] =
    "WITH input AS ("
    "  SELECT * FROM unnest($2::uuid[], $3::timestamptz[]) AS t(id, due_at)"
    "), mine AS ("
    "  DELETE FROM recovery_claims r USING input i"
    "   WHERE r.orchestration_id = i.id AND r.run_id = $1 AND r.due_at = i.due_at"
    "  RETURNING r.orchestration_id AS id, r.due_at"
    ") UPDATE checkout_orchestrations c SET locked_until = NULL FROM mine m"
    "   WHERE $4::boolean AND c.id = m.id AND c.next_action_at = m.due_at"
    "     AND c.stage_status = 'waiting'";

int
store_release(struct db *db, const char *run_id, const struct store_batch *b, const size_t *idx,
              size_t n, bool clear_lease, struct err *e)
{
    if (n == 0)
        return ERR_OK;
    struct arrays a;
    arrays_init(&a, 2);
    for (size_t i = 0; i < n; i++) {
        db_array_add(&a.col[0], b->rows[idx[i]].id);
        db_array_add(&a.col[1], b->rows[idx[i]].due_at);
    }
    int rc = ERR_OK;
    if (!arrays_end(&a))
        rc = err_set(e, ERR_INTERNAL, "release: batch too large");
    if (rc == ERR_OK) {
        const char *params[] = {run_id, buf_str(&a.col[0]), buf_str(&a.col[1]),
                                clear_lease ? "true" : "false"};
        rc = db_exec(db, SQL_RELEASE, 4, params, NULL, e);
    }
    arrays_free(&a);
    if (rc != ERR_OK)
        err_prefix(e, "release");
    return rc;
}

int
store_local_time(struct db *db, const char *zone, int *seconds_of_day, struct err *e)
{
    const char *params[] = {zone};
    struct db_res *r = NULL;
    int rc = db_exec(db, "SELECT EXTRACT(EPOCH FROM (now() AT TIME ZONE $1)::time)::int", 1, params,
                     &r, e);
    if (rc == ERR_OK)
        *seconds_of_day = (int)to_long(db_res_get(r, 0, 0));
    db_res_free(r);
    return rc;
}

int
store_due_stats(struct db *db, long *due, double *oldest_age_s, struct err *e)
{
    struct db_res *r = NULL;
    int rc = db_exec(db,
                     "SELECT count(*),"
                     "       COALESCE(EXTRACT(EPOCH FROM now() - min(next_action_at)), 0)"
                     "  FROM checkout_orchestrations"
                     " WHERE stage_status = 'waiting' AND next_action_at <= now()",
                     0, NULL, &r, e);
    if (rc == ERR_OK) {
        *due = to_long(db_res_get(r, 0, 0));
        *oldest_age_s = strtod(db_res_get(r, 0, 1), NULL);
    }
    db_res_free(r);
    return rc;
}
