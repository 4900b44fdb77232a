"""``edgectl plc probe``: FINS addressing diagnostic for "the PLC answers ping but FINS times out".

Sends one read-only DM read (0101, one word, inside the memory map) per combination of DA1, SA1, DA2 and local
UDP port, one at a time, and prints the end code or timeout of each and a verdict (edgectl/probe.py). It speaks
FINS itself, with its own SA1 (not the gateway's), for this diagnostic only: it never writes. Frames come from
shared/fins/frames.py; the exchange is done here rather than with FinsClient because the verdict needs the
reply's header (the node the PLC names itself), which the client does not hand out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from typing import Any

from edgectl.commands import EXIT_DEGRADED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from edgectl.output import table, to_json
from edgectl.probe import DEFAULT_PROBE_SA1, SETTING, Combo, Outcome, combinations, verdict
from shared.fins import frames
from shared.fins.errors import FinsProtocolError
from shared.fins.frames import Route, parse_dm_address
from shared.plc.memory_map import MemoryMapError, load_memory_map


def _setting(args: argparse.Namespace, attr: str, env: str, default: int) -> int:
    """A flag, else the gateway's own variable (same name as in .env), else the gateway's default."""
    value = getattr(args, attr)
    if value is not None:
        return int(value)
    text = os.environ.get(env, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{env}={text!r} is not a number") from None


def _address(text: str) -> int:
    try:
        return parse_dm_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(actions: Any) -> None:
    a: argparse.ArgumentParser = actions.add_parser(
        "probe",
        help="FINS addressing diagnostic: read-only DM reads over DA1/SA1/DA2/local port combinations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("--host", default=os.environ.get("PLC_HOST"), help="the PLC's IP (default PLC_HOST)")
    a.add_argument("--port", type=int, help="its FINS UDP port (default PLC_PORT, else 9600)")
    a.add_argument("--node", type=int, help="configured DA1 (default PLC_NODE, else 1)")
    a.add_argument("--unit", type=int, help="configured DA2 (default PLC_UNIT, else 0)")
    a.add_argument("--network", type=int, help="DNA (default PLC_NETWORK, else 0)")
    a.add_argument("--local-port", type=int, help="configured local port (default FINS_LOCAL_PORT, else 0)")
    a.add_argument(
        "--fixed-port", type=int, default=None, help="the fixed local port to try too (default: the PLC's --port)"
    )
    a.add_argument(
        "--source-node", type=int, default=DEFAULT_PROBE_SA1, help=f"the probe's own SA1 ({DEFAULT_PROBE_SA1})"
    )
    a.add_argument("--da1", type=int, action="append", default=[], help="another DA1 to try (repeatable)")
    a.add_argument("--sa1", type=int, action="append", default=[], help="another SA1 to try (repeatable)")
    a.add_argument("--da2", type=int, action="append", default=[], help="another DA2 to try (repeatable)")
    a.add_argument("--address", type=_address, default=None, help="DM word to read (default: the failure area's)")
    a.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each reply (1.0)")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.set_defaults(func=run)


def local_ip_towards(host: str, port: int) -> str | None:
    """This host's IP address on the route to the PLC (a UDP connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, port))
            return str(s.getsockname()[0])
    except OSError:
        return None


class _Catcher(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.inbox.put_nowait((data, (str(addr[0]), int(addr[1]))))

    def error_received(self, exc: Exception) -> None:
        return  # ICMP port unreachable and the like: the exchange times out, which is what is reported


async def probe_one(
    peer: tuple[str, int], combo: Combo, network: int, address: int, sid: int, timeout: float
) -> Outcome:
    """One read of one DM word with this addressing; never raises for what the PLC or the network does."""
    loop = asyncio.get_running_loop()
    try:
        transport, catcher = await loop.create_datagram_endpoint(
            _Catcher, local_addr=("0.0.0.0", combo.local_port), family=socket.AF_INET
        )
    except OSError as exc:
        return Outcome(combo, "local_error", detail=f"local UDP port {combo.local_port}: {exc.strerror}")
    route = Route(dna=network, da1=combo.da1, da2=combo.da2, sna=0, sa1=combo.sa1, sa2=0)
    request = frames.memory_area_read(address, 1)  # the only command the probe sends: read-only
    invalid: str | None = None
    try:
        transport.sendto(frames.encode_command(route, sid, request), peer)
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                data, addr = await asyncio.wait_for(catcher.inbox.get(), left)
            except TimeoutError:
                break
            if addr != peer:
                continue
            try:
                reply = frames.validate_reply(data, route, sid, request)
            except FinsProtocolError as exc:
                invalid = str(exc)
                continue
            node = reply.header.sa1
            if reply.end_code.ok:
                return Outcome(combo, "ok", 0, plc_node=node)
            return Outcome(combo, "end_code", reply.end_code.code, reply.end_code.text, plc_node=node)
    finally:
        transport.close()
    if invalid is not None:
        return Outcome(combo, "invalid", detail=invalid)
    return Outcome(combo, "timeout")


async def probe_all(
    peer: tuple[str, int], combos: list[Combo], network: int, address: int, timeout: float
) -> list[Outcome]:
    # One at a time: the probe must not flood a PLC that is busy with its scan, and a reply can only be ours.
    return [await probe_one(peer, combo, network, address, 1 + i % 255, timeout) for i, combo in enumerate(combos)]


def run(args: argparse.Namespace) -> int:
    from edgectl.commands.plc import mapped_spans  # plc.py imports this module: import at call time

    if not args.host:
        print("edgectl plc probe: give --host or set PLC_HOST", file=sys.stderr)
        return EXIT_USAGE
    try:
        args.port = _setting(args, "port", "PLC_PORT", 9600)
        args.node = _setting(args, "node", "PLC_NODE", 1)
        args.unit = _setting(args, "unit", "PLC_UNIT", 0)
        args.network = _setting(args, "network", "PLC_NETWORK", 0)
        args.local_port = _setting(args, "local_port", "FINS_LOCAL_PORT", 0)
        memory_map = load_memory_map()
        address = memory_map.base_address("failure") if args.address is None else args.address
        # Like `plc read`: a diagnostic of the gateway's areas, not a DM browser.
        if not any(first <= address < first + words for first, words, _ in mapped_spans(memory_map)):
            raise ValueError(f"D{address} is not inside a mapped area (default: the failure area's first word)")
        baseline = Combo(args.node, args.source_node, args.unit, args.local_port)
        fixed = args.port if args.fixed_port is None else args.fixed_port
        ip = socket.gethostbyname(args.host)
        combos = combinations(
            baseline=baseline,
            plc_ip=ip,
            local_ip=local_ip_towards(ip, args.port),
            fixed_port=fixed,
            extra_da1=args.da1,
            extra_sa1=args.sa1,
            extra_da2=args.da2,
        )
        if args.timeout <= 0:
            raise ValueError("--timeout must be positive")
        Route(dna=args.network)  # validates the network byte before anything is sent
    except (ValueError, MemoryMapError, OSError) as exc:
        print(f"edgectl plc probe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    intro = (
        f"edgectl plc probe: talking FINS to {args.host}:{args.port} itself (not through the gateway), with its "
        f"own source node SA1={args.source_node}; read-only: one DM read of D{address} per combination, "
        f"{len(combos)} combinations, {args.timeout:g} s each at most"
    )
    if not args.json:
        print(intro, file=sys.stderr, flush=True)
    outcomes = asyncio.run(probe_all((ip, args.port), combos, args.network, address, args.timeout))
    lines = verdict(outcomes, baseline)
    if args.json:
        print(
            to_json(
                {
                    "note": intro,
                    "host": args.host,
                    "port": args.port,
                    "address": address,
                    "probe_sa1": args.source_node,
                    "settings": SETTING,
                    "results": [
                        {
                            "da1": o.combo.da1,
                            "sa1": o.combo.sa1,
                            "da2": o.combo.da2,
                            "local_port": o.combo.local_port,
                            "result": o.kind,
                            "end_code": None if o.end_code is None else f"{o.end_code:04X}",
                            "plc_node": o.plc_node,
                            "detail": o.detail or None,
                        }
                        for o in outcomes
                    ],
                    "verdict": lines,
                }
            )
        )
    else:
        rows = [
            (o.combo.da1, o.combo.sa1, o.combo.da2, o.combo.local_port or "ephemeral", o.result())
            for o in outcomes
        ]
        print(table(("DA1", "SA1", "DA2", "local port", "result"), rows))
        print()
        print("\n".join(f"verdict: {line}" for line in lines))
    if outcomes[0].kind == "ok":
        return EXIT_OK
    return EXIT_DEGRADED if any(o.kind == "ok" for o in outcomes) else EXIT_UNREACHABLE
