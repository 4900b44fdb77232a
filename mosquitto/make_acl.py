#!/usr/bin/env python3
"""Render Mosquitto's ACL for a broker shared by several production lines, from the one ACL in this folder.

`mosquitto/acl` is written for one line per broker: its rules use `scada/+`. When several lines (one PLC and
one topic root `scada/<line>` each) share a broker, one line's users must not command another line's PLC. This
tool turns every `user NAME` section of that file into one section per line, `user NAME.<line>`, with every
`scada/+` replaced by `scada/<line>`: `mo_planner.plc01` may publish `scada/plc01/cmd/write_batch` and nothing
under `scada/plc02`. Rules without `scada/+` (e.g. the operator's and viewer's read of `#`) are kept as they
are: they only read. Each service of line L then connects as `<service>.L` (MQTT_URL's user name), with its
password made by make_passwd.py (`--users "mo_planner.plc01 ..."`).

Standard library only, like make_passwd.py.  Usage: make_acl.py --line plc01 --line plc02 --out /path/acl
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

TEMPLATE = Path(__file__).resolve().with_name("acl")
WILDCARD_ROOT = "scada/+"
_LINE_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class AclError(ValueError):
    pass


def split_sections(template: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(lines before the first `user`, [(user, its lines)])."""
    head: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    for line in template.splitlines():
        words = line.split()
        if words[:1] == ["user"] and len(words) == 2:
            sections.append((words[1], []))
        elif sections:
            sections[-1][1].append(line)
        else:
            head.append(line)
    if any(line.split()[:1] == ["topic"] for line in head):
        raise AclError("the template has rules before its first `user` line (anonymous access)")
    return head, sections


def render_acl(template: str, lines: Sequence[str]) -> str:
    if not lines:
        raise AclError("give at least one --line")
    bad = [line for line in lines if not _LINE_RE.match(line)]
    if bad or len(set(lines)) != len(lines):
        raise AclError(f"line names must be unique and use letters, digits, '_' or '-': {list(lines)}")
    head, sections = split_sections(template)
    out = [
        *head,
        "",
        f"# Rendered by mosquitto/make_acl.py for the lines {', '.join(lines)}: one user per service and line.",
    ]
    for line in lines:
        for user, body in sections:
            out.append(f"user {user}.{line}")
            out.extend(text.replace(f"{WILDCARD_ROOT}/", f"scada/{line}/") for text in body)
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--line", action="append", required=True, help="a line's name (its root is scada/<line>)")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        rendered = render_acl(args.template.read_text(encoding="utf-8"), args.line)
    except (AclError, OSError) as exc:
        print(f"make_acl: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(rendered, encoding="utf-8")
    print(f"make_acl: wrote {args.out} for lines {', '.join(args.line)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
