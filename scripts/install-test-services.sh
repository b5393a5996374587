#!/usr/bin/env bash
# Installs the servers the tests start for themselves: PostgreSQL (tests/store/postgres.py starts it on a free
# loopback port in a throwaway folder) and Redis (tests/store/redis.py, likewise), and Debian's chromium with its
# WebDriver (tests/console/test_browser.py drives the console in it, headless). Idempotent: installs only what is
# missing. Where it cannot install (no root, no sudo), the tests that need it skip, saying so; with
# GATEWAY_TEST_REQUIRE_POSTGRES=1, GATEWAY_TEST_REQUIRE_REDIS=1 or GATEWAY_TEST_REQUIRE_CHROMIUM=1 (CI sets all
# three) that is an error.
set -uo pipefail
packages=()
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
  packages+=(postgresql)
fi
if ! command -v redis-server > /dev/null; then
  packages+=(redis-server)
fi
if ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null; then
  packages+=(chromium chromium-driver)
fi
if [[ ${#packages[@]} -eq 0 ]]; then
  exit 0
fi
SUDO=
if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${packages[@]}" > /dev/null; then
  # The packages start servers of their own; the tests do not use them.
  $SUDO service postgresql stop > /dev/null 2>&1 || true
  $SUDO service redis-server stop > /dev/null 2>&1 || true
  exit 0
fi
echo "warning: could not install ${packages[*]}; the tests that need them will skip" >&2
[[ "${GATEWAY_TEST_REQUIRE_POSTGRES:-0}" != "1" && "${GATEWAY_TEST_REQUIRE_REDIS:-0}" != "1" &&
  "${GATEWAY_TEST_REQUIRE_CHROMIUM:-0}" != "1" ]]
