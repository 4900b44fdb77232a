"""FINS end codes (MRES/SRES): masking, classification and text. Pure data, no I/O.

Bit 15 (MRES bit 7) flags a network relay error; SRES bit 7/6 flag a fatal/non-fatal CPU error. They are flags
about the PLC, not part of the code, so they are masked off before classifying (MRES & 0x7F, SRES & 0x3F):
0x0040 is "normal completion, the PLC has a non-fatal error" and counts as success.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EndCodeKind(StrEnum):
    OK = "ok"
    RETRYABLE = "retryable"  # cancelled, destination busy, response timeout: try again later
    NETWORK = "network"  # local node / routing problems: configuration or wiring (alarm)
    CONFIG = "config"  # destination node/unit missing, routing tables: DNA/DA1/DA2 are wrong
    CONTROLLER = "controller"  # controller/unit errors on the PLC side
    UNSUPPORTED = "unsupported"  # undefined command, not supported by this model/version
    FORMAT = "format"  # command too long/short, elements != data, header error: our codec is wrong
    ADDRESS = "address"  # area missing, address/range errors, response too long: wrong address or size
    ACCESS = "access"  # read/write not possible, protected, read-only, no access right
    MODE = "mode"  # wrong PLC mode (e.g. PROGRAM)
    DEVICE = "device"  # file device / memory / clock missing
    ABORTED = "aborted"
    UNKNOWN = "unknown"


# Codes and texts from Omron W342 (FINS command reference), as summarised in docs/fins.md F5.
_TEXTS: dict[int, str] = {
    0x0000: "normal completion",
    0x0001: "service cancelled",
    0x0101: "local node not in network",
    0x0102: "token timeout",
    0x0103: "retries failed",
    0x0104: "too many send frames",
    0x0105: "node address range error",
    0x0106: "node address duplication",
    0x0201: "destination node not in network",
    0x0202: "unit missing",
    0x0203: "third node missing",
    0x0204: "destination node busy",
    0x0205: "response timeout",
    0x0301: "communications controller error",
    0x0302: "CPU unit error",
    0x0303: "controller error",
    0x0304: "unit number error",
    0x0401: "undefined command",
    0x0402: "not supported by model/version",
    0x0501: "destination address setting error",
    0x0502: "no routing tables",
    0x0503: "routing table error",
    0x0504: "too many relays",
    0x1001: "command too long",
    0x1002: "command too short",
    0x1003: "elements/data don't match",
    0x1004: "command format error",
    0x1005: "header error",
    0x1101: "area classification missing",
    0x1102: "access size error",
    0x1103: "address range error (first address in inaccessible area)",
    0x1104: "address range exceeded",
    0x1106: "program missing",
    0x1109: "relational error",
    0x110A: "duplicate data access",
    0x110B: "response too long",
    0x110C: "parameter error",
    0x2002: "protected",
    0x2003: "table missing",
    0x2004: "data missing",
    0x2005: "program missing",
    0x2006: "file missing",
    0x2007: "data mismatch",
    0x2101: "read-only",
    0x2102: "protected (cannot write)",
    0x2103: "cannot register",
    0x2105: "program missing",
    0x2106: "file missing",
    0x2107: "file name already exists",
    0x2108: "cannot change",
    0x2201: "not possible during execution",
    0x2202: "not possible while running",
    0x2203: "wrong PLC mode: PROGRAM",
    0x2204: "wrong PLC mode: DEBUG",
    0x2205: "wrong PLC mode: MONITOR",
    0x2206: "wrong PLC mode: RUN",
    0x2207: "specified node not polling node",
    0x2208: "step cannot be executed",
    0x2301: "file device missing",
    0x2302: "memory missing",
    0x2303: "clock missing",
    0x3001: "no access right",
    0x4001: "service aborted",
}

_BY_MAIN: dict[int, EndCodeKind] = {
    0x01: EndCodeKind.NETWORK,
    0x02: EndCodeKind.CONFIG,
    0x03: EndCodeKind.CONTROLLER,
    0x04: EndCodeKind.UNSUPPORTED,
    0x05: EndCodeKind.CONFIG,
    0x10: EndCodeKind.FORMAT,
    0x11: EndCodeKind.ADDRESS,
    0x20: EndCodeKind.ACCESS,
    0x21: EndCodeKind.ACCESS,
    0x22: EndCodeKind.MODE,
    0x23: EndCodeKind.DEVICE,
    0x24: EndCodeKind.DEVICE,
    0x25: EndCodeKind.CONTROLLER,
    0x26: EndCodeKind.ACCESS,
    0x30: EndCodeKind.ACCESS,
    0x40: EndCodeKind.ABORTED,
}

RETRYABLE_CODES = frozenset({0x0001, 0x0204, 0x0205})
# Codes a node between us and the CPU can give after the command left it: the CPU may have executed it.
# 0205 = a relay (the Ethernet unit) gave up waiting for the CPU's answer; 0001 = the service was cancelled
# on its way. Every other error code is the destination's refusal: the command was not executed.
MAYBE_EXECUTED_CODES = frozenset({0x0001, 0x0205})


@dataclass(frozen=True, slots=True)
class EndCode:
    """The raw 16-bit MRES/SRES pair as received, with its masked code and flags."""

    raw: int

    @property
    def code(self) -> int:
        return ((self.raw >> 8) & 0x7F) << 8 | (self.raw & 0x3F)

    @property
    def relay_error(self) -> bool:
        return bool(self.raw & 0x8000)

    @property
    def fatal_error(self) -> bool:
        """The PLC reports a fatal CPU error (SRES bit 7)."""
        return bool(self.raw & 0x0080)

    @property
    def non_fatal_error(self) -> bool:
        """The PLC reports a non-fatal CPU error (SRES bit 6): the command still succeeded if code == 0."""
        return bool(self.raw & 0x0040)

    @property
    def ok(self) -> bool:
        return self.code == 0x0000

    @property
    def kind(self) -> EndCodeKind:
        return classify(self.code)

    @property
    def proves_not_executed(self) -> bool:
        """An error reply that proves the PLC did not execute the command (docs/fins.md F5): the CPU refused
        it. A relay error, or a code a relay gives after forwarding (MAYBE_EXECUTED_CODES), proves nothing:
        for a write that is the same as a lost reply, and only a read can tell whether it landed."""
        return not self.ok and not self.relay_error and self.code not in MAYBE_EXECUTED_CODES

    @property
    def text(self) -> str:
        return _TEXTS.get(self.code, f"unknown end code 0x{self.code:04X}")

    def __str__(self) -> str:
        flags = [
            name
            for name, on in (
                ("relay error", self.relay_error),
                ("PLC fatal error", self.fatal_error),
                ("PLC non-fatal error", self.non_fatal_error),
            )
            if on
        ]
        extra = f" [{', '.join(flags)}]" if flags else ""
        return f"0x{self.code:04X} {self.text}{extra}"


def classify(code: int) -> EndCodeKind:
    """Class of a masked end code."""
    if code == 0x0000:
        return EndCodeKind.OK
    if code in RETRYABLE_CODES:
        return EndCodeKind.RETRYABLE
    return _BY_MAIN.get(code >> 8, EndCodeKind.UNKNOWN)


def end_code_text(code: int) -> str:
    return _TEXTS.get(code & 0x7F3F, f"unknown end code 0x{code:04X}")
