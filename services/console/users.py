"""``console-users``: write the console's users file (name:role:scrypt hash per line) from password files.

    console-users --out secrets/console_users operator:operator:secrets/console_password_operator \\
                                              viewer:viewer:secrets/console_password_viewer

Each password comes from its own file (one password, trailing newline stripped) and never from the command
line, where `ps` would show it. The users file holds only hashes; it is written atomically with mode 0600.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from services.console.auth import ROLES, AuthConfigError, hash_password, parse_users
from shared.config import ConfigError, read_secret_file


def render(entries: Sequence[str]) -> str:
    lines = ["# Console users (services/console/users.py). name:role:hash; roles: " + ", ".join(ROLES)]
    for entry in entries:
        name, role, path = [*entry.split(":", 2), "", ""][:3]
        if role not in ROLES or not path:
            raise AuthConfigError(f"{entry!r}: expected NAME:ROLE:PASSWORD_FILE with ROLE one of {ROLES}")
        try:
            password = read_secret_file(path, f"password of {name}")
        except ConfigError as exc:
            raise AuthConfigError(str(exc)) from None
        lines.append(f"{name}:{role}:{hash_password(password)}")
    text = "\n".join(lines) + "\n"
    parse_users(text)  # the console must accept what we write (names, duplicates)
    return text


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the console's users file from password files.")
    parser.add_argument("--out", type=Path, required=True, help="users file to write (CONSOLE_USERS_FILE)")
    parser.add_argument("users", nargs="+", metavar="NAME:ROLE:PASSWORD_FILE")
    args = parser.parse_args(argv)
    try:
        write_private(args.out, render(args.users))
    except (AuthConfigError, OSError) as exc:
        print(f"console-users: {exc}", file=sys.stderr)
        return 2
    print(f"console-users: wrote {len(args.users)} users to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
