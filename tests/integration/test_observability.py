"""deploy/prometheus and deploy/grafana: the alerting rules pass promtool's checks and their
unit tests, the dashboard is well formed and templated by job and instance, and every metric
name (and outcome) the rules and the dashboard use is one a real sweep pushed to a real
Pushgateway, so they cannot drift apart from the worker."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import uuid

import yaml

from harness import SOURCE_DIR, WorkerTestCase
from pushgateway import Pushgateway

PROMETHEUS_DIR = os.path.join(SOURCE_DIR, "deploy", "prometheus")
RULES = os.path.join(PROMETHEUS_DIR, "recovery-worker.rules.yml")
RULES_TEST = os.path.join(PROMETHEUS_DIR, "recovery-worker.rules.test.yml")
PROMETHEUS_EXAMPLE = os.path.join(PROMETHEUS_DIR, "prometheus.example.yml")
DASHBOARD = os.path.join(SOURCE_DIR, "deploy", "grafana", "recovery-worker.dashboard.json")

JOB = "recovery-worker"
SEVERITIES = {"warning", "critical"}

# Names that are not the worker's but may be used all the same. The Pushgateway adds these
# two to every group it holds (the test checks it did, for the groups a sweep pushed).
PUSHGATEWAY_NAMES = {"push_time_seconds", "push_failure_time_seconds"}
# Prometheus makes `up` for every scrape target itself; nothing pushes it.
PROMETHEUS_NAMES = {"up"}

# The outcomes the issue asks the dashboard to show over time.
DASHBOARD_OUTCOMES = {"sent", "skipped_opt_out", "no_intents", "escalated", "deferred", "failed"}

# ---------------------------------------------------------------------------------------------
# PromQL: just enough of a lexer to tell metric names from functions, keywords and label
# names (Prometheus 2.42's functions and operators).

FUNCTIONS = frozenset("""
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes
    clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
    days_in_month deg delta deriv exp floor histogram_count histogram_fraction
    histogram_quantile histogram_sum holt_winters hour idelta increase irate label_join
    label_replace last_over_time ln log10 log2 max_over_time min_over_time minute month pi
    predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin
    sinh sort sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh time
    timestamp vector year start end
""".split())
AGGREGATIONS = frozenset("""
    sum min max avg group stddev stdvar count count_values bottomk topk quantile
""".split())
# Followed by a parenthesised list of label names.
GROUPING = frozenset("by without on ignoring group_left group_right".split())
KEYWORDS = frozenset("and or unless bool offset atan2 inf nan".split())

TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{[^}]*\}|\$\w+|\[\[\w+\]\])
  | (?P<number>\.?[0-9][0-9A-Za-z_.]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=@,(){}\[\]])
""", re.X)


def tokenize(expr):
    toks, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"cannot read PromQL at {expr[pos:pos + 20]!r} in {expr!r}")
        pos = m.end()
        if m.lastgroup != "space":
            toks.append((m.lastgroup, m.group()))
    return toks


def unquote(s):
    """A PromQL string literal's value (raw for backticks; Go escapes otherwise)."""
    if s.startswith("`"):
        return s[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)),
                  s[1:-1])


def skip_group(toks, i):
    """toks[i] opens a bracket; returns the index after the one that closes it."""
    open_, close = toks[i][1], {"(": ")", "[": "]", "{": "}"}[toks[i][1]]
    depth = 0
    for j in range(i, len(toks)):
        if toks[j] == ("op", open_):
            depth += 1
        elif toks[j] == ("op", close):
            depth -= 1
            if depth == 0:
                return j + 1
    raise ValueError(f"unbalanced {open_!r}")


def read_matchers(toks, i):
    """toks[i] is '{'; returns ([(label, op, value)], index after '}')."""
    matchers, i = [], i + 1
    while toks[i] != ("op", "}"):
        if toks[i] == ("op", ","):
            i += 1
            continue
        (k1, label), (k2, op), (k3, value) = toks[i:i + 3]
        if k1 != "ident" or k2 != "op" or op not in ("=", "!=", "=~", "!~") or k3 != "string":
            raise ValueError(f"bad label matcher near {toks[i:i + 3]}")
        matchers.append((label, op, unquote(value)))
        i += 3
    return matchers, i + 1


def vector_selectors(expr):
    """Every vector selector in a PromQL expression, as (metric name, [(label, op, value)])."""
    toks = tokenize(expr)
    out, i = [], 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if (kind, text) == ("op", "["):
            i = skip_group(toks, i)  # range, subquery step: durations and variables
        elif (kind, text) == ("op", "{"):
            matchers, i = read_matchers(toks, i)
            names = [v for l, o, v in matchers if l == "__name__" and o == "="]
            if not names:
                raise ValueError(f"selector without a metric name in {expr!r}")
            out.append((names[0], [m for m in matchers if m[0] != "__name__"]))
        elif kind == "ident":
            if text in GROUPING:
                i = skip_group(toks, i + 1) if nxt == "(" else i + 1  # label names
            elif text in AGGREGATIONS or text.lower() in KEYWORDS:
                i += 1
            elif nxt == "(":
                if text not in FUNCTIONS:
                    raise ValueError(f"unknown PromQL function {text!r} in {expr!r}")
                i += 1
            elif nxt == "{":
                matchers, i = read_matchers(toks, i + 1)
                out.append((text, matchers))
            else:
                out.append((text, []))
                i += 1
        else:
            i += 1
    return out


def template_query_expr(query):
    """The PromQL inside a Grafana variable query (label_values, query_result)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", query, re.S)
    if m:
        return m.group(1)
    if re.fullmatch(r"\s*label_values\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", query):
        return ""
    m = re.fullmatch(r"\s*query_result\((.*)\)\s*", query, re.S)
    if m:
        return m.group(1)
    raise ValueError(f"unsupported Grafana variable query {query!r}")


# ---------------------------------------------------------------------------------------------
# What the rules, their tests and the dashboard use.

def load_rules():
    with open(RULES) as f:
        return [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]


def load_rules_test():
    with open(RULES_TEST) as f:
        return yaml.safe_load(f)


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def all_panels(dashboard):
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])  # collapsed rows


def panel_exprs(dashboard):
    for p in all_panels(dashboard):
        for t in p.get("targets", []):
            yield f"panel {p.get('title')!r}", t.get("expr", "")


def variable_exprs(dashboard):
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q
            yield f"variable ${v['name']}", template_query_expr(q)


def used_selectors():
    """[(where, metric name, matchers)] over the rules, the rules' tests and the dashboard."""
    out = []
    for r in load_rules():
        for name, matchers in vector_selectors(str(r["expr"])):
            out.append((f"rule {r.get('alert') or r.get('record')}", name, matchers))
    t = load_rules_test()
    for group in t.get("tests", []):
        for s in group.get("input_series", []):
            for name, matchers in vector_selectors(s["series"]):
                out.append((f"rules test {group.get('name')!r}", name, matchers))
        for e in group.get("promql_expr_test", []):
            for name, matchers in vector_selectors(e["expr"]):
                out.append((f"rules test {group.get('name')!r}", name, matchers))
    d = load_dashboard()
    for where, expr in list(panel_exprs(d)) + list(variable_exprs(d)):
        for name, matchers in vector_selectors(expr):
            out.append((f"dashboard {where}", name, matchers))
    return out


def regex_alternatives(value):
    """'a|b|c' -> ['a', 'b', 'c'] when the regex is only literal alternatives, else None."""
    return value.split("|") if re.fullmatch(r"[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*", value) else None


def promtool():
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if os.access("/usr/bin/promtool", os.X_OK) else None)
    if found is None:
        raise unittest.SkipTest("promtool not found: install the Debian package prometheus "
                                "(it ships /usr/bin/promtool)")
    return found


def run(args, **kw):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=120, **kw)


# ---------------------------------------------------------------------------------------------

class PromqlLexer(unittest.TestCase):
    """The extraction the drift check relies on."""

    def names(self, expr):
        return sorted({n for n, _ in vector_selectors(expr)})

    def test_functions_keywords_and_label_names_are_not_metric_names(self):
        expr = ('sum by (job, instance) (rate(foo_total{a="b", c=~"x|y"}[5m] offset 1h))'
                ' / on (job) group_left (instance, outcome) bar > bool 3 and inf'
                ' or absent(nope{job="x"}) unless count_values("version", build_info)'
                ' or label_replace(q, "dst", "$1", "src", "(.*)") or topk(5, y) @ end()'
                ' or {__name__="baz", job="j"} or time() - push_time_seconds'
                ' or avg_over_time(x[$__rate_interval]) or max_over_time((z > 1)[1h:5m])'
                ' or sum without (outcome) (w) or sum(v) by (job) or NaN # job{x="y"}')
        self.assertEqual(self.names(expr), ["bar", "baz", "build_info", "foo_total", "nope",
                                            "push_time_seconds", "q", "v", "w", "x", "y", "z"])

    def test_matchers_are_read_with_the_name(self):
        self.assertEqual(vector_selectors('m{outcome=~"a|b", job="$job"} > 2 * 1800'),
                         [("m", [("outcome", "=~", "a|b"), ("job", "=", "$job")])])

    def test_an_unknown_function_is_an_error_not_a_metric(self):
        with self.assertRaises(ValueError):
            vector_selectors("rates(foo[5m])")

    def test_grafana_variable_queries(self):
        self.assertEqual(template_query_expr('label_values(m{job=~"$job"}, instance)'),
                         'm{job=~"$job"}')
        self.assertEqual(template_query_expr("label_values(job)"), "")


class PrometheusRules(unittest.TestCase):

    def test_promtool_check_rules(self):
        r = run([promtool(), "check", "rules", RULES])
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("SUCCESS", r.stdout)

    def test_promtool_test_rules(self):
        r = run([promtool(), "test", "rules", RULES_TEST])
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("SUCCESS", r.stdout)

    def test_example_configuration_scrapes_the_pushgateway_with_honor_labels(self):
        r = run([promtool(), "check", "config", PROMETHEUS_EXAMPLE])
        self.assertEqual(r.returncode, 0, r.stdout)
        with open(PROMETHEUS_EXAMPLE) as f:
            conf = yaml.safe_load(f)
        self.assertEqual([os.path.basename(p) for p in conf["rule_files"]],
                         [os.path.basename(RULES)])
        self.assertTrue(all(s.get("honor_labels") for s in conf["scrape_configs"]))

    def test_every_alert_has_severity_summary_and_a_description_with_commands(self):
        rules = load_rules()
        self.assertGreaterEqual(len(rules), 6)
        for r in rules:
            with self.subTest(alert=r.get("alert")):
                self.assertIn("alert", r)
                self.assertIn(r.get("labels", {}).get("severity"), SEVERITIES)
                ann = r.get("annotations", {})
                self.assertTrue(ann.get("summary"))
                # "what to run": at least one command, in backticks.
                self.assertRegex(ann.get("description", ""), r"`[^`]+`")

    def test_every_alert_is_tested_firing_and_not_firing(self):
        firing, quiet = set(), set()
        for group in load_rules_test()["tests"]:
            for t in group.get("alert_rule_test", []):
                (firing if t.get("exp_alerts") else quiet).add(t["alertname"])
        alerts = {r["alert"] for r in load_rules()}
        self.assertEqual(alerts - firing, set(), "never shown firing")
        self.assertEqual(alerts - quiet, set(), "never shown not firing")
        self.assertEqual((firing | quiet) - alerts, set(), "tests of alerts that do not exist")


class GrafanaDashboard(unittest.TestCase):

    def setUp(self):
        self.d = load_dashboard()

    def test_every_panel_has_a_query_on_the_templated_data_source(self):
        panels = list(all_panels(self.d))
        self.assertGreater(len(panels), 0)
        for p in panels:
            with self.subTest(panel=p.get("title")):
                self.assertNotEqual(p.get("type"), "row", "rows carry no query; none expected")
                self.assertTrue(p.get("title"))
                targets = p.get("targets", [])
                self.assertGreater(len(targets), 0)
                for t in targets:
                    self.assertTrue(t.get("expr", "").strip(), t)
                    ds = t.get("datasource") or p.get("datasource")
                    self.assertEqual(ds, {"type": "prometheus", "uid": "${datasource}"})
        ids = [p["id"] for p in panels]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")

    def test_templated_by_job_and_instance(self):
        variables = {v["name"]: v for v in self.d["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        for name in ("job", "instance"):
            self.assertEqual(variables[name]["type"], "query")
        self.assertTrue(variables["instance"].get("includeAll"))
        # Every selector of every panel is narrowed to the chosen job and instances.
        for where, expr in panel_exprs(self.d):
            for name, matchers in vector_selectors(expr):
                with self.subTest(where=where, metric=name):
                    self.assertIn(("job", "=~", "$job"), matchers)
                    self.assertIn(("instance", "=~", "$instance"), matchers)

    def test_shows_what_the_issue_asks_for(self):
        names, outcomes = set(), set()
        for _, expr in panel_exprs(self.d):
            for name, matchers in vector_selectors(expr):
                names.add(name)
                for label, op, value in matchers:
                    if label == "outcome" and op in ("=", "=~"):
                        outcomes.update(regex_alternatives(value) or [value])
        self.assertLessEqual({"recovery_worker_last_sweep_orchestrations",
                              "recovery_worker_last_sweep_duration_seconds",
                              "recovery_worker_oldest_due_age_seconds",
                              "recovery_worker_last_success_timestamp_seconds"}, names)
        self.assertLessEqual(DASHBOARD_OUTCOMES, outcomes)

    def test_every_query_parses_with_prometheus(self):
        """promtool reads each panel and variable query as a recording rule's expression."""
        tool = promtool()
        exprs = [e for _, e in panel_exprs(self.d)] + [e for _, e in variable_exprs(self.d)
                                                       if e]
        rules = [{"record": f"dashboard:query_{i}:check",
                  "expr": e.replace("$job", JOB).replace("$instance", ".*")}
                 for i, e in enumerate(exprs)]
        with tempfile.TemporaryDirectory(prefix="rw-dash-") as tmp:
            path = os.path.join(tmp, "dashboard.rules.yml")
            with open(path, "w") as f:
                yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
            r = run([tool, "check", "rules", path])
        self.assertEqual(r.returncode, 0, r.stdout)


class MetricNamesMatchWhatTheWorkerPushes(WorkerTestCase):
    """Pushes from real sweeps (one completed, one cut short by the relay) to a real
    Pushgateway, and compares every name the rules and the dashboard use with what is there."""

    maxDiff = None

    def setUp(self):
        super().setUp()
        self.pgw = Pushgateway.start()
        self.addCleanup(self.pgw.cleanup)

    def push_sweeps(self):
        tag = uuid.uuid4().hex[:8]
        ok, failed = f"obs-ok-{tag}", f"obs-failed-{tag}"
        self.seed()
        self.seed(opted_out=True)
        self.seed(intents=0)
        self.seed(next_action="now() - interval '3 hours'")
        # A completed sweep that leaves a backlog (due count and oldest due age).
        self.sweep("--limit", "2", expect=0, PUSHGATEWAY_URL=self.pgw.url,
                   RW_METRICS_INSTANCE=ok)
        # A sweep cut short: a message to send and no relay (exit 69), success 0 and no
        # last-success time.
        self.seed()
        self.sweep(expect=69, SMTP_PORT=9, PUSHGATEWAY_URL=self.pgw.url,
                   RW_METRICS_INSTANCE=failed)
        samples = self.pgw.metrics()
        mine = [(name, dict(labels)) for name, labels in samples
                if dict(labels).get("job") == JOB]
        values = {(name, labels.get("instance")): samples[(name, frozenset(labels.items()))]
                  for name, labels in mine if len(labels) == 2}
        # The sweeps really pushed what they are supposed to have pushed.
        self.assertEqual(values.get(("recovery_worker_last_sweep_success", ok)), 1, mine)
        self.assertEqual(values.get(("recovery_worker_last_sweep_success", failed)), 0, mine)
        self.assertIsNotNone(values.get(("recovery_worker_last_success_timestamp_seconds", ok)))
        self.assertIsNone(values.get(("recovery_worker_last_success_timestamp_seconds",
                                      failed)))
        self.assertGreaterEqual(values.get(("recovery_worker_due_orchestrations", ok)), 1)
        return mine

    def test_every_name_and_outcome_used_is_pushed(self):
        pushed = self.push_sweeps()
        labels_of = {}  # name -> {label: {values}}
        for name, labels in pushed:
            for k, v in labels.items():
                labels_of.setdefault(name, {}).setdefault(k, set()).add(v)
        worker_names = set(labels_of) - PUSHGATEWAY_NAMES
        # The worker's own table of families, as it came out of the real pushes.
        self.assertTrue(worker_names)
        self.assertTrue(all(n.startswith("recovery_worker_") for n in worker_names),
                        worker_names)
        self.assertLessEqual(PUSHGATEWAY_NAMES, set(labels_of),
                             "the Pushgateway no longer adds these to each group")

        used = used_selectors()
        self.assertTrue(used)
        unknown = sorted({f"{name} (in {where})" for where, name, _ in used
                          if name not in worker_names and name not in PUSHGATEWAY_NAMES
                          and name not in PROMETHEUS_NAMES})
        unknown = [f"{u}: never pushed by a sweep" for u in unknown]

        # Label matchers other than the grouping labels name labels and values that exist.
        bad = []
        for where, name, matchers in used:
            if name in PROMETHEUS_NAMES or name not in labels_of:
                continue
            for label, op, value in matchers:
                if label in ("job", "instance"):
                    continue
                have = labels_of[name].get(label)
                if not have:
                    bad.append(f"{where}: {name} has no label {label!r}")
                elif op == "=" and value not in have:
                    bad.append(f"{where}: {name}{{{label}={value!r}}} never pushed "
                               f"(pushed: {sorted(have)})")
                elif op == "=~":
                    alts = regex_alternatives(value)
                    if alts is not None:
                        bad += [f"{where}: {name}{{{label}=~...{a!r}}} never pushed "
                                f"(pushed: {sorted(have)})" for a in alts if a not in have]
                    elif not any(re.fullmatch(value, v) for v in have):
                        bad.append(f"{where}: {name}{{{label}=~{value!r}}} matches nothing "
                                   f"pushed (pushed: {sorted(have)})")
        self.assertEqual(unknown + bad, [], f"pushed: {sorted(worker_names)}")


if __name__ == "__main__":
    unittest.main()
