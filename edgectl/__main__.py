"""``edgectl``: the operator CLI. Each subcommand lives in edgectl/commands/<name>.py (see COMMANDS there).

Exit codes: 0 done, 1 degraded (status: something is offline or needs an operator), 2 bad arguments or settings,
3 the broker, the database, the gateway or the PLC did not answer, 4 refused (the PLC, or a batch in the wrong
state for the action). Connection settings: see edgectl/connection.py.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgectl.commands import COMMANDS
from edgectl.errors import EdgectlError

EPILOG = """\
exit codes: 0 ok, 1 degraded (status), 2 bad arguments or settings, 3 broker/database/gateway/PLC did not
answer, 4 refused (wrong batch state, unknown MO, the PLC said no)

connection: flags --mqtt-url/--database-url/--topic-root, else env MQTT_URL, MQTT_PASSWORD[_FILE],
DATABASE_URL, DATABASE_PASSWORD[_FILE], MQTT_TOPIC_ROOT, else KEY=VALUE lines with the same keys in
$EDGECTL_CONFIG or ~/.config/edgectl/connection.env
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgectl",
        description="Feed-mill edge gateway operator tool",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"edgectl.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc: int = args.func(args)
    except EdgectlError as exc:
        print(f"edgectl {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    return rc


if __name__ == "__main__":
    sys.exit(main())
