"""The generated bootstrap key: made once per state folder, however many processes start at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config.loader import parse_config
from gateway.policy.keys import hash_key
from gateway.policy.tenancy import BOOTSTRAP_HASH_FILE, BOOTSTRAP_KEY_ENV, prepare_bootstrap_key

GENERATE = """
import sys, pathlib
from gateway.policy.tenancy import _generated_bootstrap_hash
print("hash", _generated_bootstrap_hash(pathlib.Path(sys.argv[1])))
"""
CONFIG = "providers: [{name: sim, type: simulated}]\nmodels: [{name: fast, provider: sim}]\n"


def test_processes_starting_at_once_agree_on_one_key_printed_once(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", GENERATE, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    hashes = {line.split()[1] for out in outputs for line in out.splitlines() if line.startswith("hash ")}
    printed = [line.strip() for out in outputs for line in out.splitlines() if line.strip().startswith("gw-")]
    assert len(printed) == 1
    assert hashes == {hash_key(printed[0])}
    assert (tmp_path / BOOTSTRAP_HASH_FILE).read_text().strip() == hash_key(printed[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == [BOOTSTRAP_HASH_FILE]  # no partial file left


def test_prepare_makes_a_key_only_when_the_gateway_will_need_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BOOTSTRAP_KEY_ENV, raising=False)
    with_key = parse_config(CONFIG + "keys: [{name: svc, key_env: SVC_KEY}]\n")
    monkeypatch.setenv("SVC_KEY", "gw-service")
    prepare_bootstrap_key(with_key, tmp_path)
    assert not (tmp_path / BOOTSTRAP_HASH_FILE).exists()
    monkeypatch.setenv(BOOTSTRAP_KEY_ENV, "gw-operator-given")
    monkeypatch.delenv("SVC_KEY")
    prepare_bootstrap_key(with_key, tmp_path)
    assert not (tmp_path / BOOTSTRAP_HASH_FILE).exists()
    monkeypatch.delenv(BOOTSTRAP_KEY_ENV)
    prepare_bootstrap_key(with_key, tmp_path)  # the config's key is unset: the admin key is generated
    assert (tmp_path / BOOTSTRAP_HASH_FILE).exists()
