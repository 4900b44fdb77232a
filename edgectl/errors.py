"""Errors a command raises instead of returning an exit code; `edgectl.__main__` maps them to exit codes so
every command reports the same kind of trouble the same way."""

from __future__ import annotations


class EdgectlError(Exception):
    exit_code = 1


class UsageError(EdgectlError):
    """Wrong arguments or connection settings (exit 2)."""

    exit_code = 2


class Unreachable(EdgectlError):
    """The broker, the database, the gateway or the PLC did not answer (exit 3)."""

    exit_code = 3


class Refused(EdgectlError):
    """The request was understood and refused: wrong state, unknown MO, the PLC said no (exit 4)."""

    exit_code = 4
