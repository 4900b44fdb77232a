"""``plc-sim``: a CJ2M on FINS/UDP running the plant's handshakes, until SIGTERM/SIGINT.

Prints one line `READY udp=<port> control=<port|->` on stdout once both ports listen (port 0 = ephemeral).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from simulators.plc.faults import Faults
from simulators.plc.program import ProgramConfig
from simulators.plc.scan import DEFAULT_COMMANDS_PER_SCAN, DEFAULT_PORT_MS, default_scan_ms
from simulators.plc.server import SimConfig, start_simulator


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability (0..1)")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def _scan_ms(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text} outside 0..1000 ms")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="plc-sim", description="Omron CJ2M FINS/UDP simulator running the plant program"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9600, help="UDP port (0 = ephemeral)")
    p.add_argument("--node", type=int, default=1, help="our FINS node; frames to node 0 are accepted too")
    p.add_argument("--slots", type=int, default=None, help="active slots (default: the map's active_slots)")
    p.add_argument("--speed", type=_positive, default=1.0, help="time factor for dosing and random failures")
    p.add_argument("--map", type=Path, default=None, help="memory map YAML (default: the plant's)")
    p.add_argument("--batch-seconds", type=_positive, default=60.0, help="dosing time of one batch at speed 1")
    p.add_argument("--noise", type=_non_negative, default=0.5, help="max |actual - target| kg per silo")
    p.add_argument("--failure-rate", type=_non_negative, default=0.0, help="random equipment failures per hour")
    p.add_argument(
        "--weight-lag-ms",
        type=_non_negative,
        default=0.0,
        help="raise the end status this long before writing the finished weight (a late weigh station)",
    )
    p.add_argument(
        "--mirror-lag-ms",
        type=_non_negative,
        default=0.0,
        help="set W = 1 this long before clearing the READ slot for the new batch (the old one shows meanwhile)",
    )
    p.add_argument("--op-failure-rate", type=_probability, default=0.0, help="probability a batch fails mid-way")
    p.add_argument(
        "--weighing-rate",
        type=_non_negative,
        default=0.0,
        help="random manual weighings per hour (needs products)",
    )
    p.add_argument(
        "--weighing-products",
        type=_product_ids,
        default=(),
        help="comma-separated Odoo product ids the random weighings use (raw components of the MOs)",
    )
    p.add_argument("--control-port", type=int, default=None, help="HTTP control API on localhost (0 = ephemeral)")
    p.add_argument("--drop", type=_probability, default=0.0, help="probability a request is lost")
    p.add_argument("--drop-reply", type=_probability, default=0.0, help="probability a reply is lost")
    p.add_argument("--duplicate", type=_probability, default=0.0, help="probability a reply is sent twice")
    p.add_argument("--delay-ms", type=_non_negative, default=0.0, help="delay of every reply")
    p.add_argument("--wrong-sid", type=_probability, default=0.0, help="probability a reply carries a wrong SID")
    p.add_argument("--armed", action=argparse.BooleanOptionalAction, default=True, help="start with W = 1")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--scan-ms",
        type=_scan_ms,
        default=None,
        help="PLC scan time: FINS is served at the end of a scan (default PLC_SIM_SCAN_MS or 10; 0 = instant)",
    )
    p.add_argument(
        "--commands-per-scan", type=int, default=DEFAULT_COMMANDS_PER_SCAN, help="FINS commands served per scan"
    )
    p.add_argument(
        "--port-ms",
        type=_non_negative,
        default=DEFAULT_PORT_MS,
        help=f"Ethernet port processing each way with a scan time (default {DEFAULT_PORT_MS:g}): a command reaches "
        "the CPU this long after it arrived, a reply leaves this long after it was served",
    )
    p.add_argument("--timezone", default=None, help="PLC clock zone (default PLANT_TIMEZONE or Asia/Jakarta)")
    p.add_argument("--clock-offset", type=float, default=0.0, help="PLC clock minus real time, seconds")
    p.add_argument(
        "--reply-port",
        type=int,
        default=None,
        help="send every reply to this UDP port of the requesting host (an Ethernet unit replying to the FINS port)",
    )
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def _product_ids(text: str) -> tuple[int, ...]:
    try:
        ids = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of product ids") from None
    if any(not 1 <= i <= 0xFFFF for i in ids):
        raise argparse.ArgumentTypeError("product ids must be 1..65535")
    return ids


def config_from_args(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        host=args.host,
        port=args.port,
        node=args.node,
        slots=args.slots,
        map_path=args.map,
        program=ProgramConfig(
            batch_seconds=args.batch_seconds,
            speed=args.speed,
            noise_kg=args.noise,
            failure_rate_per_hour=args.failure_rate,
            op_failure_rate=args.op_failure_rate,
            weight_lag_s=args.weight_lag_ms / 1000.0,
            mirror_lag_s=args.mirror_lag_ms / 1000.0,
            weighing_rate_per_hour=args.weighing_rate,
            weighing_products=tuple(args.weighing_products),
        ),
        faults=Faults(
            drop=args.drop,
            drop_reply=args.drop_reply,
            duplicate=args.duplicate,
            delay_ms=args.delay_ms,
            wrong_sid=args.wrong_sid,
        ),
        control_port=args.control_port,
        armed=args.armed,
        seed=args.seed,
        scan_ms=default_scan_ms() if args.scan_ms is None else args.scan_ms,
        commands_per_scan=args.commands_per_scan,
        port_ms=args.port_ms,
        timezone=args.timezone,
        clock_offset_s=args.clock_offset,
        reply_port=args.reply_port,
    )


async def _serve(config: SimConfig) -> None:
    sim = await start_simulator(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    control = sim.control_port if sim.control_port is not None else "-"
    print(f"READY udp={sim.port} control={control}", flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )
    try:
        config = config_from_args(args)
        asyncio.run(_serve(config))
    except (ValueError, OSError) as exc:
        print(f"plc-sim: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
