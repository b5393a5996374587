#!/usr/bin/env bash
# Installs the database servers the tests start for themselves (tests/store/postgres.py starts PostgreSQL on a free
# loopback port in a throwaway folder). Idempotent: does nothing when the binaries are already there.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq postgresql > /dev/null
# The package starts a cluster of its own; the tests do not use it.
$SUDO service postgresql stop > /dev/null 2>&1 || true
