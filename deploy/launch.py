#!/usr/bin/env python3
"""Start one supervised program with the environment written for it by deploy/supervisord.py.

    launch.py ENV_JSON -- COMMAND [ARG...]

supervisord's own `environment=` option cannot carry every value safely (its parser has no escape for a
value holding both quote kinds, and `%` must be doubled), and it would put passwords into the config file.
So the generator writes each program's environment to a private JSON file (mode 0600) and the config only
names that file. This launcher reads it and *replaces itself* (exec) with the program: the program keeps the
pid supervisord knows, so SIGTERM, stop timeouts and exit codes reach it directly.

The program's environment is exactly the JSON file plus a few variables of the host session that describe the
machine rather than the application (PATH, HOME, locale, TZ, TMPDIR, USER): a stray MQTT_URL or password in
the shell that started supervisord does not leak into the services.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence

PASSTHROUGH = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME")


def program_environment(own: Mapping[str, str], host: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in host.items() if k in PASSTHROUGH or k.startswith("LC_")}
    env.update(own)
    return env


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if len(args) < 3 or args[1] != "--":
        print("usage: launch.py ENV_JSON -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    env_file, command = args[0], args[2:]
    try:
        with open(env_file, encoding="utf-8") as fh:
            own = json.load(fh)
    except (OSError, ValueError) as exc:
        print(f"launch.py: cannot read environment file {env_file!r}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(own, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in own.items()):
        print(f"launch.py: {env_file!r} must hold a JSON object of strings", file=sys.stderr)
        return 2
    try:
        os.execvpe(command[0], command, program_environment(own, os.environ))
    except OSError as exc:
        # supervisord logs this and retries (startretries), then marks the program FATAL.
        print(f"launch.py: cannot execute {command[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
