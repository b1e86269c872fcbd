"""deploy/: the Kubernetes manifests, the systemd units, the Containerfile and the crontab
line parse and say what deploy/README.md promises.

Needs neither the binary nor a database. Where RW_BIN is set (ctest sets it), the
ConfigMap, the Secret's shape and systemd/env.example are also fed to
`recovery-worker check-config`, and the binary's shared libraries are matched against the
Containerfile's runtime stage. `systemd-analyze verify` (Debian's systemd package) checks
the units.
"""
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

try:
    import yaml
except ImportError as exc:  # pragma: no cover
    raise ImportError("test_deploy needs PyYAML for /usr/bin/python3: "
                      "apt-get install python3-yaml") from exc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
K8S = os.path.join(DEPLOY, "k8s")
SYSTEMD = os.path.join(DEPLOY, "systemd")

BINARY = "/usr/local/bin/recovery-worker"
RUNTIME_PACKAGES = {"libpq5", "libesmtp6", "libcurl4", "libjansson4", "libyaml-0-2",
                    "libssl3", "libmicrohttpd12", "ca-certificates", "tzdata"}
BUILD_PACKAGES = {"build-essential", "cmake", "pkg-config", "libpq-dev", "libesmtp-dev",
                  "libjansson-dev", "libyaml-dev", "libcurl4-openssl-dev", "libssl-dev",
                  "libmicrohttpd-dev"}
SECRET_VARS = {"DATABASE_URL", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_PASSWORD_FILE",
               "RESUME_LINK_SECRET", "RESUME_LINK_SECRET_FILE", "HEARTBEAT_URL"}
# Variables with names of their own (worker.yaml's comments, README's table).
NAMED_VARS = SECRET_VARS | {
    "SMTP_HOST", "SMTP_PORT", "SMTP_TLS", "SMTP_CA_FILE", "SMTP_HELO_NAME",
    "SMTP_SENDER_EMAIL", "SMTP_SENDER_NAME", "RESUME_URL", "UNSUBSCRIBE_URL",
    "PUSHGATEWAY_URL", "LOG_LEVEL", "RECOVERY_WORKER_CONFIG", "HTTP_LISTEN"}


def rw_vars():
    """RW_<SECTION>_<KEY> for every key of the repository's worker.yaml."""
    with open(os.path.join(ROOT, "worker.yaml")) as f:
        doc = yaml.safe_load(f)
    return {f"RW_{section}_{key}".upper()
            for section, keys in doc.items() for key in (keys or {})}


def known_var(name):
    return name in NAMED_VARS or name in rw_vars()


def load_yaml(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def k8s_docs(name):
    return load_yaml(os.path.join(K8S, name))


def one(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def duration_s(text):
    """A systemd or worker.yaml duration ("60s", "2min", "25min", "1m", "30s") in seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|sec|m|min|h)?\s*", str(text))
    assert m, f"cannot read duration {text!r}"
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[unit]


def read_unit(path):
    """{section: [(key, value), ...]}; keeps repeated keys, drops comments."""
    sections, current = {}, None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                current = sections.setdefault(line.strip("[]"), [])
                continue
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def unit_value(sections, section, key):
    values = [v for k, v in sections.get(section, []) if k == key]
    return values[-1] if values else None


def env_file_vars(path):
    """The file as podman and docker read it (`--env-file`): per line, leading white space
    dropped, empty lines and lines starting with # skipped, the rest split at the first =,
    the value kept literally (quotes, trailing spaces and all); a name with white space is
    an error (moby opts/envfile.go, containers/common pkg/env)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for raw in f.read().splitlines():  # Go's line scanner drops a trailing \r too
            line = raw.lstrip()
            if not line or line.startswith("#"):
                continue
            key, eq, value = line.partition("=")
            assert eq and key and not re.search(r"\s", key), f"{path}: not KEY=value: {raw!r}"
            out[key] = value
    return out


def systemd_env_file_vars(path):
    """The file as systemd reads an EnvironmentFile=, with systemd's own parser: the user
    environment generator runs it on environment.d/*.conf and prints the result, shell-quoted.
    (It also expands $VAR, which EnvironmentFile= does not; the format allows no $.) Keys
    from the system's own environment.d files are left out."""
    generator = "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator"
    if not os.access(generator, os.X_OK):
        raise unittest.SkipTest(f"{generator} missing: apt-get install systemd")

    def run(conf_text):
        with tempfile.TemporaryDirectory() as home:
            os.mkdir(os.path.join(home, "environment.d"))
            if conf_text is not None:
                with open(os.path.join(home, "environment.d", "99-rw.conf"), "w") as f:
                    f.write(conf_text)
            p = subprocess.run([generator], env={"XDG_CONFIG_HOME": home}, capture_output=True,
                               text=True, timeout=30, check=True)
        out = {}
        for line in p.stdout.splitlines():
            key, _, value = shlex.split(line)[0].partition("=")
            out[key] = value
        return out

    with open(path) as f:
        text = f.read()
    base, mine = run(None), run(text)
    return {k: v for k, v in mine.items() if k not in base or base[k] != v}


def crontab_env_file_vars(command, path):
    """The file as the crontab line reads it: the line run with the binary replaced by
    `env`, so that it prints the environment it would have started the worker with."""
    cmd = command.replace("/etc/recovery-worker/env", path).replace(f"exec {BINARY} sweep",
                                                                    "exec env -0")
    cmd = cmd.split(" 2>&1 |")[0]
    assert cmd.startswith("flock -n /run/lock/recovery-worker.lock sh -c ")
    cmd = cmd[len("flock -n /run/lock/recovery-worker.lock "):]
    p = subprocess.run(["sh", "-c", cmd], env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    out = dict(item.partition("=")[::2] for item in p.stdout.split("\0") if item)
    out.pop("PATH", None)
    out.pop("PWD", None)
    return out


def binary_env():
    """The environment to run RW_BIN with: nothing of this machine's but PATH, plus the
    sanitizer settings the other integration tests use."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=98"}
    lsan = os.path.join(ROOT, "tests", "support", "lsan.supp")
    if os.path.exists(lsan):
        env["LSAN_OPTIONS"] = f"suppressions={lsan}:print_suppressions=0"
    return env


class Yaml(unittest.TestCase):
    """Every YAML file under deploy/ parses and is a Kubernetes object."""

    def test_every_yaml_file_parses(self):
        found = []
        for dirpath, _, files in os.walk(DEPLOY):
            # Prometheus rules and the Grafana dashboard are not Kubernetes objects; their own
            # checks are in test_observability.
            if os.path.relpath(dirpath, DEPLOY).split(os.sep)[0] in ("prometheus", "grafana"):
                continue
            for name in files:
                if name.endswith((".yaml", ".yml")):
                    path = os.path.join(dirpath, name)
                    found.append(os.path.relpath(path, DEPLOY))
                    docs = load_yaml(path)
                    self.assertTrue(docs, f"{path}: no document")
                    for d in docs:
                        self.assertIsInstance(d, dict, path)
                        for field in ("apiVersion", "kind"):
                            self.assertIn(field, d, path)
                        self.assertTrue(d.get("metadata", {}).get("name"), path)
        for expected in ("k8s/cronjob.yaml", "k8s/migrate-job.yaml", "k8s/deployment.yaml",
                         "k8s/configmap.yaml", "k8s/secret.example.yaml",
                         "k8s/dry-run-job.yaml"):
            self.assertIn(expected, found)

    def test_kinds(self):
        expect = {"cronjob.yaml": ["CronJob"], "migrate-job.yaml": ["Job"],
                  "dry-run-job.yaml": ["Job"],
                  "deployment.yaml": ["Deployment", "PodDisruptionBudget", "Service",
                                      "Service"],
                  "ingress.example.yaml": ["Ingress"],
                  "configmap.yaml": ["ConfigMap"], "secret.example.yaml": ["Secret"]}
        for name, kinds in expect.items():
            self.assertEqual([d["kind"] for d in k8s_docs(name)], kinds, name)


class Kubernetes(unittest.TestCase):

    def setUp(self):
        self.configmap = one(k8s_docs("configmap.yaml"), "ConfigMap")
        self.secret = one(k8s_docs("secret.example.yaml"), "Secret")

    def check_pod(self, pod, command):
        """The security, resources and configuration every pod of the worker has."""
        psc = pod.get("securityContext", {})
        self.assertEqual(len(pod["containers"]), 1)
        c = pod["containers"][0]
        csc = c.get("securityContext", {})
        self.assertIn(command, " ".join(c["args"]).split())
        self.assertIs(csc.get("runAsNonRoot", psc.get("runAsNonRoot")), True)
        self.assertEqual(csc.get("runAsUser", psc.get("runAsUser")), 65532)
        self.assertEqual(csc.get("seccompProfile", psc.get("seccompProfile")),
                         {"type": "RuntimeDefault"})
        self.assertIs(csc.get("readOnlyRootFilesystem"), True)
        self.assertIs(csc.get("allowPrivilegeEscalation"), False)
        self.assertEqual(csc.get("capabilities", {}).get("drop"), ["ALL"])
        self.assertNotIn("add", csc.get("capabilities", {}))
        for part in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                self.assertIn(resource, c["resources"][part], f"{part}.{resource}")
        self.assertIs(pod.get("enableServiceLinks"), False)
        self.assertIs(pod.get("automountServiceAccountToken"), False)
        # Settings from the ConfigMap, secrets from the Secret, by their real names.
        refs = c["envFrom"]
        self.assertIn({"secretRef": {"name": self.secret["metadata"]["name"]}}, refs)
        self.assertIn({"configMapRef": {"name": self.configmap["metadata"]["name"]}}, refs)
        for e in c.get("env", []):
            self.assertTrue(known_var(e["name"]) or e["name"] == "POD_NAME", e["name"])
        # The grace period leaves room for the SMTP timeout plus a batch.
        smtp_timeout = duration_s(self.configmap["data"].get("RW_SMTP_TIMEOUT", "30s"))
        self.assertGreaterEqual(pod["terminationGracePeriodSeconds"], smtp_timeout + 30)
        return c

    def check_failure_policy(self, job, container):
        self.assertGreaterEqual(job["backoffLimit"], 1)
        self.assertEqual(job["template"]["spec"]["restartPolicy"], "Never")
        fail = [r for r in job["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
        self.assertEqual(len(fail), 1)
        codes = fail[0]["onExitCodes"]
        self.assertEqual(codes["operator"], "In")
        self.assertEqual(sorted(codes["values"]), [64, 78])
        self.assertEqual(codes["containerName"], container["name"])

    def test_cronjob(self):
        cj = one(k8s_docs("cronjob.yaml"), "CronJob")
        spec = cj["spec"]
        self.assertEqual(spec["schedule"], "*/30 * * * *")
        self.assertEqual(spec["concurrencyPolicy"], "Forbid")
        self.assertGreater(spec["startingDeadlineSeconds"], 0)
        self.assertGreaterEqual(spec["successfulJobsHistoryLimit"], 1)
        self.assertGreaterEqual(spec["failedJobsHistoryLimit"], 1)
        job = spec["jobTemplate"]["spec"]
        # Done, retries included, before the next slot.
        self.assertLess(job["activeDeadlineSeconds"], 30 * 60)
        c = self.check_pod(job["template"]["spec"], "sweep")
        self.assertEqual(c["args"], ["sweep"])
        self.check_failure_policy(job, c)
        # One stable Pushgateway instance for all runs.
        env = {e["name"]: e for e in c.get("env", [])}
        self.assertIn("value", env["RW_METRICS_INSTANCE"])

    def test_migrate_job(self):
        job = one(k8s_docs("migrate-job.yaml"), "Job")
        c = self.check_pod(job["spec"]["template"]["spec"], "migrate")
        self.assertEqual(c["args"], ["migrate"])
        self.check_failure_policy(job["spec"], c)
        self.assertGreater(job["spec"]["activeDeadlineSeconds"], 0)

    def test_dry_run_job(self):
        # What the script does is run in test_sweep_outcomes (DryRunJobRecipe); here, the
        # pod it runs in.
        job = one(k8s_docs("dry-run-job.yaml"), "Job")
        pod = job["spec"]["template"]["spec"]
        c = self.check_pod(pod, "sweep")
        self.assertEqual(c["command"], ["/bin/sh", "-c"])
        script = c["args"][0]
        self.assertIn("--dry-run", script.split())
        self.assertEqual(job["spec"]["backoffLimit"], 0)
        self.assertEqual(pod["restartPolicy"], "Never")
        # The preview is written where the read-only root allows: an emptyDir on /tmp.
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.assertIn("emptyDir", volumes[mounts["/tmp"]])
        self.assertIn("/tmp/preview", script)

    def test_deployment(self):
        docs = k8s_docs("deployment.yaml")
        dep = one(docs, "Deployment")
        spec = dep["spec"]
        self.assertEqual(spec["replicas"], 2)
        labels = spec["template"]["metadata"]["labels"]
        self.assertLessEqual(spec["selector"]["matchLabels"].items(), labels.items())
        c = self.check_pod(spec["template"]["spec"], "run")
        self.assertEqual(c["args"], ["run"])
        # Each replica names itself.
        env = {e["name"]: e for e in c.get("env", [])}
        self.assertEqual(env["RW_METRICS_INSTANCE"]["valueFrom"]["fieldRef"]["fieldPath"],
                         "metadata.name")
        pdb = one(docs, "PodDisruptionBudget")
        self.assertLessEqual(pdb["spec"]["selector"]["matchLabels"].items(), labels.items())
        self.assertLess(pdb["spec"]["minAvailable"], spec["replicas"])
        # The HTTP endpoints: a port, probes on /healthz, a Service in front of the pods.
        port = env["HTTP_LISTEN"]["value"].rsplit(":", 1)[1]
        (cport,) = c["ports"]
        self.assertEqual(str(cport["containerPort"]), port)
        for probe in ("readinessProbe", "livenessProbe"):
            get = c[probe]["httpGet"]
            self.assertEqual((get["path"], get["port"]), ("/healthz", cport["name"]), probe)
            self.assertGreater(c[probe]["timeoutSeconds"], 3)  # http.database_timeout 3s
        # a database outage takes pods out of the Service long before it restarts them
        live, ready = c["livenessProbe"], c["readinessProbe"]
        self.assertGreater(live["periodSeconds"] * live["failureThreshold"],
                           4 * ready["periodSeconds"] * ready["failureThreshold"])
        svc, pods = [d for d in docs if d["kind"] == "Service"]
        self.assertEqual(pods["spec"]["clusterIP"], "None")  # one DNS record per pod
        self.assertLessEqual(pods["spec"]["selector"].items(), labels.items())
        self.assertLessEqual(svc["spec"]["selector"].items(), labels.items())
        self.assertEqual(svc["spec"]["ports"][0]["targetPort"], cport["name"])
        ing = one(k8s_docs("ingress.example.yaml"), "Ingress")
        (rule,) = ing["spec"]["rules"]
        paths = rule["http"]["paths"]
        # only the unsubscribe path goes public; /metrics and /healthz stay inside
        self.assertEqual([p["path"] for p in paths], ["/account/unsubscribe"])
        self.assertEqual(paths[0]["pathType"], "Exact")
        self.assertEqual(paths[0]["backend"]["service"]["name"], svc["metadata"]["name"])
        self.assertEqual(paths[0]["backend"]["service"]["port"]["name"],
                         svc["spec"]["ports"][0]["name"])

    def test_configmap_holds_known_non_secret_settings_as_strings(self):
        data = self.configmap["data"]
        self.assertTrue(data)
        for key, value in data.items():
            self.assertIsInstance(value, str, f"{key}: ConfigMap values must be strings")
            self.assertTrue(known_var(key), f"{key}: no such variable")
            self.assertNotIn(key, SECRET_VARS, f"{key} belongs in the Secret")

    def test_secret_example_holds_placeholders_only(self):
        self.assertEqual(self.secret["type"], "Opaque")
        self.assertNotIn("data", self.secret)
        values = self.secret["stringData"]
        self.assertIn("DATABASE_URL", values)
        for key, value in values.items():
            self.assertIn(key, SECRET_VARS)
            self.assertIsInstance(value, str)
            self.assertIn("REPLACE_ME", value, f"{key}: not a placeholder")

    @unittest.skipUnless(os.environ.get("RW_BIN"), "RW_BIN not set: check-config not run")
    def test_configuration_is_accepted_by_check_config(self):
        env = binary_env()
        env.update(self.configmap["data"])
        env.update(self.secret["stringData"])
        with tempfile.TemporaryDirectory() as tmp:
            # The placeholder secret is too short on purpose: refused.
            p = subprocess.run([os.environ["RW_BIN"], "check-config"], env=env, cwd=tmp,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 78, p.stderr)
            self.assertIn("RESUME_LINK_SECRET", p.stderr)
            env["RESUME_LINK_SECRET"] = "0123456789abcdef" * 4
            p = subprocess.run([os.environ["RW_BIN"], "check-config"], env=env, cwd=tmp,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            for key in self.configmap["data"]:
                self.assertIn(f"env {key}", p.stdout, f"{key} was not taken")


def systemd_analyze():
    path = shutil.which("systemd-analyze")
    if path is None:
        raise unittest.SkipTest("systemd-analyze not found: apt-get install systemd")
    return path


class Systemd(unittest.TestCase):

    UNITS = ("recovery-worker.service", "recovery-worker.timer",
             "recovery-worker-run.service")

    def test_units_pass_systemd_analyze_verify(self):
        analyze = systemd_analyze()
        with tempfile.TemporaryDirectory() as tmp:
            # verify insists that ExecStart's program exists and is executable. Test copies
            # of the units point it at a copy of /bin/true, so the check runs without an
            # installed recovery-worker; everything else is verified as shipped.
            stub = os.path.join(tmp, "recovery-worker")
            shutil.copy("/bin/true", stub)
            os.chmod(stub, stat.S_IRWXU)
            paths = []
            for name in self.UNITS:
                with open(os.path.join(SYSTEMD, name)) as f:
                    text = f.read()
                if name.endswith(".service"):
                    self.assertIn(BINARY, text)
                path = os.path.join(tmp, name)
                with open(path, "w") as f:
                    f.write(text.replace(BINARY, stub))
                paths.append(path)
            p = subprocess.run([analyze, "verify", "--man=no"] + paths,
                               capture_output=True, text=True, timeout=120)
            output = (p.stdout + p.stderr).strip()
            # verify exits 0 on unknown keys and bad values but prints them: any line
            # about these units is a failure. Lines about the host's own units are not ours.
            ours = [line for line in output.splitlines()
                    if "recovery-worker" in line or tmp in line]
            self.assertEqual(p.returncode, 0, output)
            self.assertEqual(ours, [], output)

    def test_timer_fires_every_30_minutes(self):
        analyze = systemd_analyze()
        timer = read_unit(os.path.join(SYSTEMD, "recovery-worker.timer"))
        spec = unit_value(timer, "Timer", "OnCalendar")
        self.assertEqual(spec, "*:0/30")
        self.assertEqual(unit_value(timer, "Timer", "Persistent"), "true")
        self.assertIsNotNone(unit_value(timer, "Timer", "RandomizedDelaySec"))
        self.assertEqual(unit_value(timer, "Install", "WantedBy"), "timers.target")
        p = subprocess.run([analyze, "calendar", "--iterations=4", spec],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("*-*-* *:00/30:00", p.stdout)
        minutes = re.findall(r"\d\d:(\d\d):00 ", p.stdout)
        self.assertTrue(minutes, p.stdout)
        self.assertTrue(set(minutes) <= {"00", "30"}, p.stdout)

    def check_hardening(self, unit):
        s = "Service"
        expect = {
            "EnvironmentFile": "/etc/recovery-worker/env", "DynamicUser": "yes",
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
            "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
            "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
            "ProtectControlGroups": "yes",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
            "RestrictNamespaces": "yes", "LockPersonality": "yes",
            "MemoryDenyWriteExecute": "yes", "SystemCallFilter": "@system-service",
            "SystemCallArchitectures": "native", "CapabilityBoundingSet": "",
            "KillSignal": "SIGTERM"}
        for key, value in expect.items():
            self.assertEqual(unit_value(unit, s, key), value, key)
        self.assertGreaterEqual(duration_s(unit_value(unit, s, "TimeoutStopSec")), 60)
        self.assertEqual(unit_value(unit, s, "Restart"), "on-failure")
        self.assertEqual(set(unit_value(unit, s, "RestartPreventExitStatus").split()),
                         {"64", "78"})
        # 69 (database or relay unavailable) must stay a failure.
        self.assertNotIn("69", (unit_value(unit, s, "SuccessExitStatus") or "").split())

    def test_sweep_service(self):
        unit = read_unit(os.path.join(SYSTEMD, "recovery-worker.service"))
        self.assertEqual(unit_value(unit, "Service", "Type"), "oneshot")
        self.assertEqual(unit_value(unit, "Service", "ExecStart"), f"{BINARY} sweep")
        self.check_hardening(unit)
        # A stuck sweep ends before the next timer slot.
        self.assertLess(duration_s(unit_value(unit, "Service", "TimeoutStartSec")), 30 * 60)

    def test_run_service(self):
        unit = read_unit(os.path.join(SYSTEMD, "recovery-worker-run.service"))
        self.assertEqual(unit_value(unit, "Service", "Type"), "simple")
        self.assertEqual(unit_value(unit, "Service", "ExecStart"), f"{BINARY} run")
        self.assertEqual(unit_value(unit, "Service", "ExecReload"), "/bin/kill -USR1 $MAINPID")
        self.check_hardening(unit)
        self.assertEqual(unit_value(unit, "Install", "WantedBy"), "multi-user.target")

    def test_env_example_names_known_variables_and_placeholders(self):
        env = env_file_vars(os.path.join(SYSTEMD, "env.example"))
        self.assertIn("DATABASE_URL", env)
        for key, value in env.items():
            self.assertTrue(known_var(key), f"{key}: no such variable")
            if key in SECRET_VARS:
                self.assertIn("REPLACE_ME", value, f"{key}: not a placeholder")

    @unittest.skipUnless(os.environ.get("RW_BIN"), "RW_BIN not set: check-config not run")
    def test_env_example_is_accepted_by_check_config(self):
        # The values exactly as podman and docker hand them over.
        values = env_file_vars(os.path.join(SYSTEMD, "env.example"))
        env = binary_env()
        env.update(values)
        env["RESUME_LINK_SECRET"] = "0123456789abcdef" * 4
        with tempfile.TemporaryDirectory() as tmp:
            p = subprocess.run([os.environ["RW_BIN"], "check-config"], env=env, cwd=tmp,
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f'sender_name: "{values["SMTP_SENDER_NAME"]}"', p.stdout)
        for key in values:
            if key not in SECRET_VARS and key != "RECOVERY_WORKER_CONFIG":
                self.assertIn(f"env {key}", p.stdout, f"{key} was not taken")


class EnvFile(unittest.TestCase):
    """systemd/env.example is one file for systemd's EnvironmentFile=, podman and docker's
    --env-file and the crontab line: each of them reads the same values from it."""

    PATH = os.path.join(SYSTEMD, "env.example")

    def crontab_command(self):
        with open(os.path.join(DEPLOY, "crontab")) as f:
            jobs = [l for l in f.read().splitlines() if l.strip() and not l.startswith("#")]
        return jobs[0].split(None, 5)[5]

    def test_every_line_is_in_the_one_format(self):
        with open(self.PATH, "rb") as f:
            data = f.read()
        self.assertNotIn(b"\r", data, "Unix line ends only")
        self.assertTrue(data.endswith(b"\n"))
        for n, line in enumerate(data.decode("utf-8").split("\n")[:-1], 1):
            if line == "" or line.startswith("#"):
                continue
            where = f"env.example:{n}: {line!r}"
            m = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(.*)", line)
            self.assertTrue(m, f"{where}: not KEY=value")
            value = m.group(2)
            self.assertEqual(value, value.strip(), f"{where}: space at an end of the value")
            self.assertFalse(value[:1] in ("'", '"'), f"{where}: quoted value")
            for bad in ("\\", "$", " #", "\t"):
                self.assertNotIn(bad, value, f"{where}: {bad!r} in the value")

    def test_container_engines_systemd_and_the_crontab_read_the_same_values(self):
        engines = env_file_vars(self.PATH)
        self.assertIn("DATABASE_URL", engines)
        self.assertIn(" ", engines["SMTP_SENDER_NAME"], "a value with a space is covered")
        self.assertEqual(systemd_env_file_vars(self.PATH), engines)
        self.assertEqual(crontab_env_file_vars(self.crontab_command(), self.PATH), engines)

    def test_the_comparison_catches_a_quoted_value(self):
        # The mistake this file once made: a shell-style quoted value. systemd strips the
        # quotes, podman and docker keep them.
        with tempfile.NamedTemporaryFile("w", suffix=".env") as f:
            f.write('DATABASE_URL="postgresql://w@db/shop"\nSMTP_SENDER_NAME=Shop Checkout\n')
            f.flush()
            engines = env_file_vars(f.name)
            self.assertEqual(engines["DATABASE_URL"], '"postgresql://w@db/shop"')
            self.assertNotEqual(systemd_env_file_vars(f.name), engines)


class Containerfile(unittest.TestCase):

    def setUp(self):
        with open(os.path.join(DEPLOY, "Containerfile")) as f:
            text = f.read()
        # Instructions, continuation lines joined, comments dropped.
        text = re.sub(r"\\\n", " ", "\n".join(
            line for line in text.splitlines() if not line.lstrip().startswith("#")))
        self.stages = []
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            op, _, rest = line.partition(" ")
            if op.upper() == "FROM":
                self.stages.append([])
            self.assertTrue(self.stages, "an instruction before the first FROM")
            self.stages[-1].append((op.upper(), " ".join(rest.split())))

    def installs(self, stage):
        pkgs = set()
        for op, rest in stage:
            if op == "RUN":
                for m in re.finditer(r"apt-get install ([^&;|]*)", rest):
                    pkgs |= {w for w in m.group(1).split() if not w.startswith("-")}
        return pkgs

    def test_two_stages(self):
        self.assertEqual(len(self.stages), 2)
        build, runtime = self.stages
        self.assertRegex(build[0][1], r"^debian:(12|bookworm)(-slim)? AS build$")
        self.assertRegex(runtime[0][1], r"^debian:(12|bookworm)-slim$")
        self.assertEqual(self.installs(build), BUILD_PACKAGES)
        run = " ".join(rest for op, rest in build if op == "RUN")
        self.assertIn("-DCMAKE_BUILD_TYPE=Release", run)
        self.assertIn("-DBUILD_TESTING=OFF", run)

    def test_runtime_stage_installs_only_runtime_libraries(self):
        runtime = self.stages[-1]
        pkgs = self.installs(runtime)
        self.assertEqual(pkgs, RUNTIME_PACKAGES)
        self.assertFalse([p for p in pkgs if p.endswith("-dev")])
        self.assertIn(("COPY", f"--from=build {BINARY} {BINARY}"), runtime)

    def test_runs_as_non_root_with_entrypoint_and_sweep(self):
        runtime = dict(self.stages[-1])
        self.assertEqual(runtime["USER"], "65532:65532")
        self.assertEqual(runtime["ENTRYPOINT"], f'["{BINARY}"]')
        self.assertEqual(runtime["CMD"], '["sweep"]')

    def test_copies_everything_the_build_reads(self):
        copied = [rest.split()[0].rstrip("/") for op, rest in self.stages[0] if op == "COPY"]
        with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
            cmake = f.read()
        for sub in re.findall(r"add_subdirectory\((\w+)\)", cmake):
            if sub != "tests":  # BUILD_TESTING=OFF
                self.assertIn(sub, copied)
        for src in copied:
            self.assertTrue(os.path.exists(os.path.join(ROOT, src)), src)
        # The ignore file lets through what is copied.
        with open(os.path.join(DEPLOY, "Containerfile.dockerignore")) as f:
            allowed = {line[1:].rstrip("/") for line in f.read().split()
                       if line.startswith("!")}
        self.assertEqual(set(copied), allowed)

    def test_runtime_packages_are_debian_packages(self):
        if shutil.which("dpkg-query") is None:
            self.skipTest("not a Debian system")
        for pkg in sorted(RUNTIME_PACKAGES):
            q = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", pkg],
                               capture_output=True, text=True)
            if "install ok installed" in q.stdout:
                continue
            p = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True)
            m = re.search(r"Candidate: (\S+)", p.stdout)
            if m is None and "Candidate" not in p.stdout:
                self.skipTest(f"apt lists are empty: cannot look up {pkg}")
            self.assertTrue(m and m.group(1) != "(none)", f"{pkg}: no such Debian package")

    def test_runtime_stage_has_the_zoneinfo_the_default_zone_needs(self):
        # sweep.quiet_hours_zone (UTC by default) is looked up in /usr/share/zoneinfo at
        # every start: the package that holds it must be in the image.
        if shutil.which("dpkg") is None:
            self.skipTest("not a Debian system")
        q = subprocess.run(["dpkg", "-S", "/usr/share/zoneinfo/Etc/UTC"],
                           capture_output=True, text=True)
        owners = {line.split(":")[0] for line in q.stdout.splitlines() if ":" in line}
        self.assertTrue(owners, "/usr/share/zoneinfo/Etc/UTC: no package owns it")
        self.assertTrue(owners & self.installs(self.stages[-1]),
                        f"the zoneinfo comes from {owners}, not installed by the runtime stage")

    @unittest.skipUnless(os.environ.get("RW_BIN"), "RW_BIN not set: libraries not matched")
    def test_runtime_stage_has_every_library_the_binary_needs(self):
        if shutil.which("readelf") is None or shutil.which("dpkg") is None:
            self.skipTest("readelf or dpkg missing")
        p = subprocess.run(["readelf", "-d", os.environ["RW_BIN"]],
                           capture_output=True, text=True, check=True)
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout)
        self.assertTrue(needed)
        for lib in needed:
            if re.match(r"lib(asan|ubsan|lsan|tsan)\.", lib):
                continue  # a sanitizer build's; the image builds without
            q = subprocess.run(["dpkg", "-S", f"*/{lib}"], capture_output=True, text=True)
            owners = {line.split(":")[0] for line in q.stdout.splitlines() if ":" in line}
            self.assertTrue(owners, f"{lib}: no package owns it")
            self.assertTrue(owners & (RUNTIME_PACKAGES | {"libc6"}),
                            f"{lib} comes from {owners}, not installed by the runtime stage")


class Crontab(unittest.TestCase):

    FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")

    def setUp(self):
        with open(os.path.join(DEPLOY, "crontab")) as f:
            lines = [line.rstrip("\n") for line in f]
        self.jobs = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]

    def split(self):
        self.assertEqual(len(self.jobs), 1, self.jobs)
        parts = self.jobs[0].split(None, 5)
        self.assertEqual(len(parts), 6, "5 time fields and a command")
        return parts[:5], parts[5]

    def test_line_parses(self):
        fields, command = self.split()
        for f in fields:
            self.assertRegex(f, self.FIELD)
        self.assertEqual(fields, ["*/30", "*", "*", "*", "*"])
        # A sixth time field (or a user name, /etc/cron.d style) would be run as a command.
        self.assertEqual(command.split()[0], "flock")
        self.assertNotIn("%", command, "cron turns % into a newline")
        for part in ("flock -n", "/etc/recovery-worker/env", f"{BINARY} sweep", "logger"):
            self.assertIn(part, command)
        p = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_line_runs_with_the_env_file_and_never_overlaps(self):
        if shutil.which("flock") is None:
            self.skipTest("flock missing (util-linux)")
        _, command = self.split()
        with tempfile.TemporaryDirectory() as tmp:
            # Stand-ins: the binary prints what it got, the env file is env.example, the
            # lock lives in tmp, and the output goes to a file instead of syslog.
            stub = os.path.join(tmp, "recovery-worker")
            with open(stub, "w") as f:
                f.write('#!/bin/sh\necho "$* [$SMTP_SENDER_NAME] [$DATABASE_URL]"\n'
                        'sleep "${STUB_SLEEP:-0}"\n')
            os.chmod(stub, stat.S_IRWXU)
            out = os.path.join(tmp, "out")
            self.assertIn("| logger -t recovery-worker", command)
            cmd = (command.replace("/etc/recovery-worker/env",
                                   os.path.join(SYSTEMD, "env.example"))
                   .replace(BINARY, stub)
                   .replace("/run/lock/recovery-worker.lock", os.path.join(tmp, "lock"))
                   .replace("| logger -t recovery-worker", f"| cat >> {out}"))
            self.assertNotIn("/run/lock", cmd)
            env = {"PATH": "/usr/bin:/bin"}
            first = subprocess.Popen(["sh", "-c", cmd], env={**env, "STUB_SLEEP": "3"})
            try:
                deadline = time.time() + 10
                while not (os.path.exists(out) and os.path.getsize(out)) and time.time() < deadline:
                    time.sleep(0.05)
                # The first still holds the lock: this slot does nothing.
                subprocess.run(["sh", "-c", cmd], env=env, timeout=30)
            finally:
                first.wait(timeout=30)
            with open(out) as f:
                lines = f.read().splitlines()
            expected = env_file_vars(os.path.join(SYSTEMD, "env.example"))
            self.assertEqual(lines, [f"sweep [{expected['SMTP_SENDER_NAME']}] "
                                     f"[{expected['DATABASE_URL']}]"])
            # And once the first is done, the next slot runs.
            subprocess.run(["sh", "-c", cmd], env=env, timeout=30)
            with open(out) as f:
                self.assertEqual(len(f.read().splitlines()), 2)


if __name__ == "__main__":
    unittest.main()
