/* cmd_token: `verify-token TOKEN [--purpose resume|unsubscribe]`: checks a resume-link or
 * unsubscribe token against the configured key ring and prints what it carries as JSON. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cmd.h"
#include "links.h"

/* Not a sysexits code: like grep or test, 1 answers the question ("no, not valid"), so a
 * script can tell a bad token from a bad command line (64) or a missing key ring (78). */
#define EXIT_INVALID 1

static void
usage(FILE *out)
{
    fputs(
        "usage: recovery-worker verify-token TOKEN [--purpose resume|unsubscribe]\n"
        "\n"
        "Checks a resume-link or unsubscribe token with the key ring in RESUME_LINK_SECRET\n"
        "(email.resume_link_secret): its format, key id, signature, expiry and, with\n"
        "--purpose, its purpose. Prints one JSON line on stdout:\n"
        "  {\"valid\":true,\"purpose\":...,\"orderId\":...,\"orchestrationId\":...,\"stage\":...,\n"
        "   \"expiresAt\":...,\"issuedAt\":...,\"keyId\":...}\n"
        "  {\"valid\":false,\"reason\":\"malformed|unknown_key|bad_signature|expired|"
        "wrong_purpose\",\n"
        "   \"message\":...} (an expired or wrong-purpose token, being authentic, also shows\n"
        "   what it carries)\n"
        "\n"
        "exit status: 0 valid, 1 invalid, 64 usage, 78 no key ring configured\n",
        out);
}

/* "2026-01-31T12:00:00Z"; times are bounded by LINKS_EXP_MAX, so gmtime_r cannot fail. */
static void
iso8601(long long t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%lld", t);
}

static void
add_claims(json_t *o, const struct links_claims *c)
{
    char exp[32], iat[32];
    iso8601(c->expires_at, exp);
    iso8601(c->issued_at, iat);
    json_object_set_new(o, "purpose", json_string(links_purpose_str(c->purpose)));
    json_object_set_new(o, "orderId", json_string(c->order_id));
    json_object_set_new(o, "orchestrationId", json_string(c->orchestration_id));
    json_object_set_new(o, "stage", json_string(c->stage));
    json_object_set_new(o, "expiresAt", json_string(exp));
    json_object_set_new(o, "issuedAt", json_string(iat));
    json_object_set_new(o, "keyId", json_string(c->kid));
}

static void
print_result(enum links_status st, const struct links_claims *c, const struct err *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "valid", json_boolean(st == LINKS_OK));
    if (st != LINKS_OK) {
        json_object_set_new(o, "reason", json_string(links_status_str(st)));
        json_object_set_new(o, "message", json_string(e->msg));
    }
    if (st == LINKS_OK || st == LINKS_EXPIRED || st == LINKS_WRONG_PURPOSE)
        add_claims(o, c);
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", text != NULL ? text : "{\"valid\":false,\"reason\":\"malformed\"}");
    free(text);
    json_decref(o);
}

/* Returns -1 to go on, else the exit status. */
static int
parse(int argc, char **argv, const char **token, enum links_purpose *want)
{
    static const struct option longopts[] = {
        {"purpose", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 0; /* 0, not 1: glibc then re-reads the option string and permutes again */
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (!links_purpose_parse(optarg, want)) {
                fprintf(stderr, "recovery-worker verify-token: --purpose must be resume or "
                                "unsubscribe\n");
                return err_exit_status(ERR_USAGE);
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return err_exit_status(ERR_USAGE);
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "recovery-worker verify-token: needs exactly one TOKEN (see --help)\n");
        return err_exit_status(ERR_USAGE);
    }
    *token = argv[optind];
    return -1;
}

int
cmd_verify_token(const struct settings *s, int argc, char **argv)
{
    const char *token = NULL;
    enum links_purpose want = LINKS_PURPOSE_ANY;
    int status = parse(argc, argv, &token, &want);
    if (status >= 0)
        return status;
    if (s->resume_link_secret == NULL || s->resume_link_secret[0] == '\0') {
        fprintf(stderr, "recovery-worker verify-token: no key ring configured: set "
                        "RESUME_LINK_SECRET (or email.resume_link_secret)\n");
        return err_exit_status(ERR_CONFIG);
    }
    /* settings_load parsed the ring, or refused the configuration */
    struct err e;
    err_clear(&e);
    struct links_claims c;
    enum links_status st = links_verify(s->link_keys, token, time(NULL), want, &c, &e);
    print_result(st, &c, &e);
    return st == LINKS_OK ? 0 : EXIT_INVALID;
}
