#!/usr/bin/env bash
# The sweep benchmark in one command (Debian 12, as root or with sudo):
#
#   bash bench/run.sh                    # N = 10,000 and 100,000, 3 runs, concurrency 4
#   bash bench/run.sh --n 2000 --runs 1  # any bench.py options replace the defaults
#
# Installs what it needs (PostgreSQL, Postfix's smtp-sink and smtp-source, GNU time, the
# build dependencies), builds the worker in Release into build/bench, and runs bench/bench.py.
# Postfix is installed unconfigured ("No configuration"): no mail system is set up or
# started; the benchmark starts only smtp-sink and smtp-source itself, on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

packages=(
  build-essential cmake pkg-config
  libpq-dev libesmtp-dev libjansson-dev libyaml-dev libcurl4-openssl-dev libssl-dev
  postgresql python3 python3-psycopg2 postfix time pgbouncer
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  # Postfix without a mail system: no main.cf, nothing started, nothing on port 25.
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi

# Should the package have started Postfix's master anyway, stop it (by its PID file).
pidfile=/var/spool/postfix/pid/master.pid
if [ -s "$pidfile" ]; then
  pid=$(tr -dc '0-9' < "$pidfile")
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "master" ]; then
    echo "stopping the Postfix master daemon (pid $pid) the package started"
    $SUDO kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
fi
port25='^ *[0-9]+: [0-9A-F]+:0019 [0-9A-F]+:0000 0A'
if grep -qiE "$port25" /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
  echo "warning: something listens on port 25; the benchmark does not use it" >&2
fi

cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build/bench -j"$(nproc)" >/dev/null

if [ $# -eq 0 ]; then
  set -- --n 10000 --n 100000 --runs 3 --concurrency 4
fi
exec /usr/bin/python3 bench/bench.py --bin build/bench/worker/recovery-worker "$@"
