"""`edgectl plc probe`'s reasoning, pure: which FINS addressings to try and what their outcomes say.

"The PLC answers ping but FINS times out" has four usual causes, one per field the probe varies:
- DA1 (PLC_NODE): the Ethernet unit drops a frame addressed to another node, silently.
- SA1 (GATEWAY_NODE): a unit converting node numbers to IP addresses (automatic generation: node = last octet
  of the IP) sends the reply to the IP address SA1 names, i.e. to another host when SA1 is not ours.
- DA2 (PLC_UNIT): 0 is the CPU; another unit number that does not exist is refused (0202 "unit missing").
- The local UDP port (FINS_LOCAL_PORT): a unit set to reply to the FINS port (static conversion) sends every
  reply to port 9600 of the requesting host, not to the port the request came from.
The I/O (one read-only DM read per combination) lives in edgectl/commands/plc_probe.py.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from shared.fins.endcodes import EndCode

# The gateway setting that holds each field: the verdict names what to change (tests check the names exist).
SETTING = {"da1": "PLC_NODE", "sa1": "GATEWAY_NODE", "da2": "PLC_UNIT", "local_port": "FINS_LOCAL_PORT"}
DEFAULT_PROBE_SA1 = 251  # the probe's own node: not the gateway's (10), so both can run at once

OutcomeKind = Literal["ok", "end_code", "timeout", "invalid", "local_error"]


@dataclass(frozen=True, slots=True)
class Combo:
    da1: int
    sa1: int
    da2: int
    local_port: int  # 0 = ephemeral

    def describe(self) -> str:
        port = "ephemeral" if self.local_port == 0 else str(self.local_port)
        return f"DA1={self.da1} SA1={self.sa1} DA2={self.da2} local port {port}"


@dataclass(frozen=True, slots=True)
class Outcome:
    combo: Combo
    kind: OutcomeKind
    end_code: int | None = None
    detail: str = ""
    plc_node: int | None = None  # the SA1 of the reply: the node the PLC calls itself

    @property
    def answered(self) -> bool:
        """The frame reached the PLC's CPU and a reply came back to us (whatever its end code)."""
        return self.kind in ("ok", "end_code")

    def result(self) -> str:
        match self.kind:
            case "ok":
                return f"OK (end code 0000, PLC node {self.plc_node})"
            case "end_code":
                return f"end code {EndCode(self.end_code or 0)}"
            case "timeout":
                return "timeout"
            case _:
                return f"{self.kind.replace('_', ' ')}: {self.detail}"


def _unique(values: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(values))


def ip_last_octet(ip: str) -> int | None:
    """The node number automatic address generation gives an IPv4 address (its last octet), when 1..254."""
    try:
        octet = int(ipaddress.IPv4Address(ip).packed[-1])
    except ValueError:
        return None
    return octet if 1 <= octet <= 254 else None


def combinations(
    *,
    baseline: Combo,
    plc_ip: str | None,
    local_ip: str | None,
    fixed_port: int,
    extra_da1: Sequence[int] = (),
    extra_sa1: Sequence[int] = (),
    extra_da2: Sequence[int] = (),
) -> list[Combo]:
    """Every combination to try, the baseline (the configured addressing) first.

    DA1: configured, 0 ("the PLC I am talking to", accepted by CJ units), the PLC IP's last octet.
    SA1: the probe's own, this host's IP's last octet (what automatic generation expects).
    DA2: configured. Local port: configured, ephemeral, the fixed FINS port.
    """
    da1s = _unique([baseline.da1, 0, *filter(None, [ip_last_octet(plc_ip or "")]), *extra_da1])
    sa1s = _unique([baseline.sa1, *filter(None, [ip_last_octet(local_ip or "")]), *extra_sa1])
    da2s = _unique([baseline.da2, *extra_da2])
    ports = _unique([baseline.local_port, 0, fixed_port])
    for name, values in (("DA1", da1s), ("SA1", sa1s), ("DA2", da2s)):
        bad = [v for v in values if not 0 <= v <= 255]
        if bad:
            raise ValueError(f"{name} {bad[0]} does not fit a byte")
    if any(not 0 <= p <= 65535 for p in ports):
        raise ValueError("a local UDP port is outside 0..65535")
    combos = [Combo(*c) for c in itertools.product(da1s, sa1s, da2s, ports)]
    combos.remove(baseline)
    return [baseline, *combos]


def verdict(outcomes: Sequence[Outcome], baseline: Combo) -> list[str]:
    """Plain-language conclusions, most important first."""
    if not outcomes:
        return ["nothing was tried"]
    by_combo = {o.combo: o for o in outcomes}
    base = by_combo.get(baseline)
    answered = [o for o in outcomes if o.answered]
    ok = [o for o in outcomes if o.kind == "ok"]
    lines: list[str] = []
    if base is not None and base.kind == "ok":
        lines.append(f"FINS works as configured ({baseline.describe()}): the PLC answers as node {base.plc_node}.")
        return lines + _notes(outcomes)
    if not answered:
        if all(o.kind == "local_error" for o in outcomes):
            return [f"nothing could be sent: {outcomes[0].detail}"]
        lines.append(
            "No combination got a FINS reply. A ping proves only that the IP address answers, not FINS: check "
            "the PLC's IP and FINS UDP port (PLC_PORT), that FINS/UDP is enabled on its Ethernet port, an IP "
            "address table or firewall that leaves this host out, and that no other FINS client on this host "
            "uses the same node."
        )
        invalid = [o for o in outcomes if o.kind == "invalid"]
        if invalid:
            lines.append(f"Replies came but did not match the request: {invalid[0].detail}")
        return lines + _notes(outcomes)
    if not ok:
        first = answered[0]
        lines.append(
            f"The PLC answers but refuses the read ({first.result()}): the addressing reaches it; the DM address, "
            "the PLC's mode or its protection is the problem, not FINS routing."
        )
        return lines
    best = _closest(ok, baseline)
    lines.append(f"FINS works with {best.combo.describe()}, not with the configured {baseline.describe()}.")
    lines += _changes(best, baseline)
    return lines + _notes(outcomes)


def _closest(ok: Sequence[Outcome], baseline: Combo) -> Outcome:
    """The working combination that changes the fewest fields (and keeps DA1 = the PLC's real node if it can)."""

    def distance(o: Outcome) -> tuple[int, int]:
        c = o.combo
        changed = sum(getattr(c, f) != getattr(baseline, f) for f in SETTING)
        return changed, 1 if c.da1 == 0 else 0

    return min(ok, key=distance)


def _changes(best: Outcome, baseline: Combo) -> list[str]:
    c, lines = best.combo, []
    if c.da1 != baseline.da1:
        node = best.plc_node if c.da1 == 0 and best.plc_node else c.da1
        lines.append(
            f"The PLC's FINS node is {node}, not {baseline.da1}: it silently drops frames for another node. "
            f"Set {SETTING['da1']}={node}."
        )
    if c.sa1 != baseline.sa1:
        lines.append(
            f"The PLC answers only when our node (SA1) is {c.sa1}: it turns SA1 into the IP address to reply to "
            f"(automatic generation: node = last octet of the IP), so other nodes' replies go to another host. "
            f"Set {SETTING['sa1']}={c.sa1} (unique among the PLC's FINS clients)."
        )
    if c.da2 != baseline.da2:
        lines.append(f"The PLC answers on unit {c.da2} (DA2), not {baseline.da2}: set {SETTING['da2']}={c.da2}.")
    if c.local_port != baseline.local_port:
        where = "an ephemeral port" if c.local_port == 0 else f"UDP port {c.local_port}"
        lines.append(
            f"The PLC replies only to {where}: "
            + (
                "it sends replies to its FINS port, not to the port a request came from. "
                if c.local_port
                else "the fixed port is not answered here. "
            )
            + f"Set {SETTING['local_port']}={c.local_port}"
            + (" (one process per host can bind it)." if c.local_port else ".")
        )
    return lines


def _notes(outcomes: Sequence[Outcome]) -> list[str]:
    notes = []
    busy = [o for o in outcomes if o.kind == "local_error"]
    if busy:
        notes.append(f"Some combinations could not be tried: {busy[0].detail}")
    unit = [o for o in outcomes if o.kind == "end_code" and o.end_code == 0x0202]
    if unit:
        notes.append(f"DA2={unit[0].combo.da2} is refused as 'unit missing': DA2 0 addresses the CPU.")
    return notes
