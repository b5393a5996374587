#!/usr/bin/env bash
# Installs the database servers the tests start for themselves (tests/store/postgres.py starts PostgreSQL on a free
# loopback port in a throwaway folder). Idempotent: does nothing when the binaries are already there. Where it cannot
# install (no root, no sudo), the tests that need PostgreSQL skip, saying so; with GATEWAY_TEST_REQUIRE_POSTGRES=1
# (CI) that is an error.
set -uo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
  exit 0
fi
SUDO=
if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq postgresql > /dev/null; then
  # The package starts a cluster of its own; the tests do not use it.
  $SUDO service postgresql stop > /dev/null 2>&1 || true
  exit 0
fi
echo "warning: could not install PostgreSQL; its tests will skip" >&2
[[ "${GATEWAY_TEST_REQUIRE_POSTGRES:-0}" != "1" ]]
