"""edgectl subcommands. A module here exposes `register(subparsers)`, which adds its parser and sets
`func(args) -> exit code` as a default; list its name in COMMANDS to enable it."""

from __future__ import annotations

COMMANDS: list[str] = [
    "status",
    "listing",
    "arm",
    "batch_ops",
    "failure_ops",
    "weighing_ops",
    "watch",
    "decode",
    "plc",
]

EXIT_OK = 0
EXIT_DEGRADED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_REFUSED = 4
