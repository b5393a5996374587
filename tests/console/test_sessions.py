"""Session cookies: signed with a secret every worker shares, idle expiry, tampering."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gateway.console.sessions import SecretMissing, SessionSigner, load_secret


def test_a_session_lasts_while_used_and_ends_after_the_idle_time() -> None:
    signer = SessionSigner(b"s" * 32, idle_s=1800)
    session = signer.new("key_1", now=1000.0)
    cookie = signer.dump(session)
    assert signer.load(cookie, now=1000.0 + 1800) == session
    assert signer.load(cookie, now=1000.0 + 1801) is None


def test_another_workers_signer_with_the_same_secret_honours_it_and_another_secret_does_not() -> None:
    cookie = SessionSigner(b"a" * 32, 60).dump(SessionSigner(b"a" * 32, 60).new("key_1", 0.0))
    assert SessionSigner(b"a" * 32, 60).load(cookie, 1.0) is not None
    assert SessionSigner(b"b" * 32, 60).load(cookie, 1.0) is None


def test_the_secret_is_made_once_in_the_state_folder(tmp_path: Path) -> None:
    first = load_secret(None, tmp_path)
    assert len(first) == 32
    assert load_secret(None, tmp_path) == first
    assert (tmp_path / "console-secret").stat().st_mode & 0o077 == 0


def test_a_worker_finding_the_secret_file_before_its_maker_wrote_it_waits_for_the_secret(tmp_path: Path) -> None:
    """Workers start together: one creates the file, and another may read it before the first one has written it
    (for as long as a loaded machine keeps the first one off the CPU)."""
    path = tmp_path / "console-secret"
    path.touch(mode=0o600)  # made, not yet written
    writer = threading.Timer(0.2, path.write_bytes, args=(b"k" * 32,))
    writer.start()
    try:
        assert load_secret(None, tmp_path) == b"k" * 32
    finally:
        writer.join()


def test_a_secret_file_that_stays_broken_is_refused(tmp_path: Path) -> None:
    (tmp_path / "console-secret").write_bytes(b"short")
    with pytest.raises(SecretMissing, match="is not a console secret; delete it"):
        load_secret(None, tmp_path)


def test_the_secret_comes_from_the_named_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSOLE_SECRET", "x" * 40)
    assert load_secret("CONSOLE_SECRET", tmp_path) == b"x" * 40
    monkeypatch.setenv("CONSOLE_SECRET", "short")
    with pytest.raises(SecretMissing, match="at least 16 characters"):
        load_secret("CONSOLE_SECRET", tmp_path)
