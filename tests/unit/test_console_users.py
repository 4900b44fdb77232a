"""`console-users`: the users file holds hashes the console accepts, never the passwords."""

from __future__ import annotations

import stat
from pathlib import Path

from services.console import auth, users


def test_users_file_from_password_files(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("alpha-secret\n")
    (tmp_path / "b").write_text("bravo-secret")
    out = tmp_path / "users"
    assert users.main(["--out", str(out), f"alice:operator:{tmp_path / 'a'}", f"bob:viewer:{tmp_path / 'b'}"]) == 0
    text = out.read_text()
    assert "alpha-secret" not in text and "bravo-secret" not in text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    parsed = auth.load_users(out)
    assert auth.authenticate(parsed, "alice", "alpha-secret") == parsed["alice"]  # trailing newline stripped
    assert parsed["bob"].role == "viewer"


def test_bad_entries_are_refused_without_writing(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("pw\n")
    (tmp_path / "empty").write_text("\n")
    out = tmp_path / "users"
    for entry in (f"alice:admin:{tmp_path / 'a'}", "alice:viewer", f"alice:viewer:{tmp_path / 'empty'}"):
        assert users.main(["--out", str(out), entry]) == 2
    assert users.main(["--out", str(out), f"x:viewer:{tmp_path / 'a'}", f"x:operator:{tmp_path / 'a'}"]) == 2
    assert not out.exists()
