"""The PostgreSQL of the unit tests labelled `pg` (a CTest fixture).

    unit_pg.py start STATE_DIR RW_BIN   a throwaway cluster on 127.0.0.1 and a free port,
                                        database rw_unit_store migrated by `RW_BIN migrate`,
                                        database rw_unit_migrate left empty; their URLs go
                                        to STATE_DIR/store.url and STATE_DIR/migrate.url
    unit_pg.py stop STATE_DIR           stops that cluster by PID and removes it

The tests read STATE_DIR from RW_UNIT_PG_DIR (tests/unit/support.h: support_pg_url).
"""
import json
import os
import subprocess
import sys

from pgcluster import PgCluster

DATABASES = {"store": "rw_unit_store", "migrate": "rw_unit_migrate"}


def sanitizer_env():
    supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan.supp")
    return {
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=98",
        "LSAN_OPTIONS": f"suppressions={supp}:print_suppressions=0",
    }


def state_file(state_dir):
    return os.path.join(state_dir, "cluster.json")


def stop(state_dir):
    path = state_file(state_dir)
    if not os.path.exists(path):
        return
    with open(path) as f:
        state = json.load(f)
    # The cluster object of the start step, rebuilt without making a new directory.
    cluster = PgCluster.__new__(PgCluster)
    cluster.dir = state["dir"]
    cluster.pid = state["pid"]
    cluster.destroy()
    for name in [key + ".url" for key in DATABASES] + ["cluster.json"]:
        try:
            os.unlink(os.path.join(state_dir, name))
        except FileNotFoundError:
            pass


def start(state_dir, rw_bin):
    os.makedirs(state_dir, exist_ok=True)
    stop(state_dir)  # what an interrupted run left behind
    cluster = PgCluster().init().start()
    try:
        with open(state_file(state_dir), "w") as f:
            json.dump({"dir": cluster.dir, "pid": cluster.pid, "port": cluster.port}, f)
        for name in DATABASES.values():
            cluster.create_db(name)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SMTP_", "DATABASE_", "RW_", "RECOVERY_WORKER_"))}
        env.update(sanitizer_env())
        env["DATABASE_URL"] = cluster.url(DATABASES["store"])
        proc = subprocess.run([rw_bin, "migrate"], env=env, cwd=cluster.dir,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"migrate exited {proc.returncode}: {proc.stderr[-4000:]}")
        for key, name in DATABASES.items():
            with open(os.path.join(state_dir, key + ".url"), "w") as f:
                f.write(cluster.url(name) + "\n")
    except BaseException:
        stop(state_dir)
        raise
    print(f"PostgreSQL pid {cluster.pid} on 127.0.0.1:{cluster.port}")


def main(argv):
    if len(argv) == 4 and argv[1] == "start":
        start(argv[2], argv[3])
    elif len(argv) == 3 and argv[1] == "stop":
        stop(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
