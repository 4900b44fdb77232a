#!/usr/bin/env python3
"""Write Mosquitto's password file for the edge gateway's broker users, from secrets that are never printed.

Runs with a plain python3 (standard library only): in the app image as the one-shot `mqtt-passwd` compose
service, or on a box without docker before starting mosquitto by hand.

Where each user's password comes from (first hit wins), for user `plc_gateway`:

1. env `MQTT_PASSWORD_PLC_GATEWAY` (the value itself; avoid outside tests: env leaks into `ps e`),
2. env `MQTT_PASSWORD_PLC_GATEWAY_FILE` (path of a file holding it),
3. `<secrets-dir>/mqtt_plc_gateway` (compose mounts secrets at /run/secrets/<name>).

Required users (default: plc_gateway mo_planner odoo_sync failure_monitor operator) must all have a password,
optional ones (default: viewer, console) are written when one is found. A missing or empty password, a password with a
line break or a secrets file that is not a regular file stops the tool with a message naming the user and the
source, never the value. Surrounding whitespace (the trailing newline of `echo pw > file`) is stripped, like
the services' `*_FILE` reader (shared/config.py) does, so both sides agree on the password.

Hash: Mosquitto 2's `$7$` format (PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte key), computed here with
hashlib so that no password appears on a command line. `--hasher mosquitto_passwd` lets the broker's own tool
hash instead (`mosquitto_passwd -U` on a private temporary plaintext file, still nothing on argv).

The file is written atomically (temporary file + rename) with mode 0600; `--owner 1883:1883` hands it to the
mosquitto user of the eclipse-mosquitto image (Mosquitto 2.0.16+ warns about password files readable by others
or owned by another user; later versions refuse them).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

REQUIRED_USERS = ("plc_gateway", "mo_planner", "odoo_sync", "failure_monitor", "operator")
OPTIONAL_USERS = ("viewer", "console")
# Mosquitto's own default is 101 iterations. The broker runs PBKDF2 once per CONNECT; with a handful of
# long-lived clients 10000 rounds (a few ms each) cost nothing and make a leaked file much harder to crack.
DEFAULT_ITERATIONS = 10_000
SALT_BYTES = 12  # Mosquitto's SALT_LEN
_USER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class PasswdError(Exception):
    """A problem with the inputs; the message names users and sources, never a password."""


def env_name(user: str) -> str:
    return f"MQTT_PASSWORD_{user.upper().replace('-', '_').replace('.', '_')}"


def _read_secret(path: Path, user: str, source: str) -> str:
    if not path.is_file():
        raise PasswdError(f"{user}: {source} {str(path)!r} is not a regular file")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PasswdError(f"{user}: cannot read {source} {str(path)!r}: {type(exc).__name__}") from None


def find_password(user: str, env: Mapping[str, str], secrets_dir: Path | None) -> tuple[str, str] | None:
    """(password, description of its source) or None when no source exists."""
    name = env_name(user)
    if name in env:
        value, source = env[name], f"env {name}"
    elif env.get(f"{name}_FILE"):
        value, source = _read_secret(Path(env[f"{name}_FILE"]), user, f"{name}_FILE"), f"file from {name}_FILE"
    elif secrets_dir is not None and (secrets_dir / f"mqtt_{user}").exists():
        path = secrets_dir / f"mqtt_{user}"
        value, source = _read_secret(path, user, "secret file"), f"secret file {path}"
    else:
        return None
    value = value.strip()
    if not value:
        raise PasswdError(f"{user}: the password from {source} is empty")
    if "\n" in value or "\r" in value or "\0" in value:
        raise PasswdError(f"{user}: the password from {source} contains a line break or NUL")
    return value, source


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> str:
    """Mosquitto 2 `$7$<iterations>$<salt b64>$<hash b64>` (what `mosquitto_passwd` writes)."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, dklen=64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when `encoded` (a `$7$` hash from this tool or mosquitto_passwd) matches `password`."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != "7":
        raise ValueError("not a Mosquitto $7$ hash")
    salt = base64.b64decode(parts[3])
    return secrets.compare_digest(hash_password(password, int(parts[2]), salt), encoded)


def render(passwords: Mapping[str, str], hasher: str, iterations: int) -> str:
    if hasher == "python":
        return "".join(f"{user}:{hash_password(pw, iterations)}\n" for user, pw in passwords.items())
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise PasswdError("--hasher mosquitto_passwd: mosquitto_passwd is not on PATH")
    # `mosquitto_passwd -U` cuts the plaintext at the next ':' (verified with 2.0.11): refuse rather than
    # hash a different password than the services will send.
    with_colon = [user for user, pw in passwords.items() if ":" in pw]
    if with_colon:
        raise PasswdError(
            f"--hasher mosquitto_passwd cannot hash passwords containing ':' ({', '.join(with_colon)}); "
            "use the default hasher"
        )
    # Plaintext only in a private (0600) temporary file that mosquitto_passwd -U hashes in place.
    fd, tmp = tempfile.mkstemp(prefix="mqtt-passwd-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(f"{user}:{pw}\n" for user, pw in passwords.items())
        done = subprocess.run([tool, "-U", tmp], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PasswdError(f"mosquitto_passwd -U failed (exit {done.returncode})")
        return Path(tmp).read_text(encoding="utf-8")
    finally:
        os.unlink(tmp)


def write_atomically(path: Path, content: str, owner: tuple[int, int] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        if owner is not None:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def collect(
    required: Sequence[str], optional: Sequence[str], env: Mapping[str, str], secrets_dir: Path | None
) -> tuple[dict[str, str], list[str]]:
    """Passwords by user, plus one log line per user (source only). Raises PasswdError listing every problem."""
    passwords: dict[str, str] = {}
    notes: list[str] = []
    problems: list[str] = []
    for user in dict.fromkeys([*required, *optional]):  # ordered, deduplicated
        if not _USER_RE.match(user):
            problems.append(f"{user!r}: user names may only use letters, digits, '_', '.', '-'")
            continue
        try:
            found = find_password(user, env, secrets_dir)
        except PasswdError as exc:
            problems.append(str(exc))
            continue
        if found is None:
            if user in required:
                where = f" or {secrets_dir / f'mqtt_{user}'}" if secrets_dir else ""
                problems.append(f"{user}: no password (set {env_name(user)}_FILE{where})")
            else:
                notes.append(f"{user}: skipped (optional, no password given)")
            continue
        passwords[user], source = found
        notes.append(f"{user}: from {source}")
    if problems:
        raise PasswdError("; ".join(problems))
    return passwords, notes


def _owner(value: str) -> tuple[int, int]:
    uid, _, gid = value.partition(":")
    try:
        return int(uid), int(gid or uid)
    except ValueError:
        raise argparse.ArgumentTypeError("--owner takes numeric UID:GID, e.g. 1883:1883") from None


def _users(value: str) -> list[str]:
    return [u for u in re.split(r"[,\s]+", value) if u]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="password file to write (replaced atomically)")
    parser.add_argument("--secrets-dir", type=Path, help="directory with files mqtt_<user> (e.g. /run/secrets)")
    parser.add_argument("--users", type=_users, default=list(REQUIRED_USERS), help="required users")
    parser.add_argument(
        "--optional-users", type=_users, default=list(OPTIONAL_USERS), help="written only if a password is found"
    )
    parser.add_argument("--hasher", choices=("python", "mosquitto_passwd"), default="python")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS, help="PBKDF2 rounds (python hasher)")
    parser.add_argument("--owner", type=_owner, help="UID:GID to own the file (needs root), e.g. 1883:1883")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be positive")
    try:
        passwords, notes = collect(args.users, args.optional_users, os.environ, args.secrets_dir)
        write_atomically(args.out, render(passwords, args.hasher, args.iterations), args.owner)
    except PasswdError as exc:
        print(f"make_passwd: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"make_passwd: cannot write {str(args.out)!r}: {exc.strerror}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"make_passwd: {note}", file=sys.stderr)
    print(f"make_passwd: wrote {len(passwords)} users to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
