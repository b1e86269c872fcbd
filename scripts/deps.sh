#!/usr/bin/env bash
# Installs what building, testing and the demo need, from Debian's packages (Debian 12).
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  libpq-dev libesmtp-dev libjansson-dev libyaml-dev libcurl4-openssl-dev libssl-dev
  libcmocka-dev libmicrohttpd-dev
  postgresql python3 python3-psycopg2 python3-aiosmtpd python3-yaml openssl tzdata
  prometheus-pushgateway prometheus systemd pgbouncer
  chromium chromium-driver python3-selenium
  postfix stunnel4 util-linux
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# The tests start private Postfix instances; the package must not configure the system one.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
