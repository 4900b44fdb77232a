"""``odoo-sim``: run the grt_scada simulator over HTTP until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from simulators.odoo.domain import DEFAULT_SEED
from simulators.odoo.server import CONTROL_HELP, start_server
from simulators.odoo.sessions import SEVEN_DAYS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="odoo-sim", description="Odoo 14 grt_scada simulator (quirks included)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8069)
    p.add_argument(
        "--seed",
        default=None,
        help="recorded mo-list-detailed reply to load; 'none' for no MOs "
        "(default: the plant's recorded reply in ../shared/reference when it is there)",
    )
    p.add_argument("--extra-mos", type=int, default=0, help="generate N extra confirmed MOs")
    p.add_argument(
        "--started-mos", type=int, default=0, help="generate N more MOs already in progress (never dosed)"
    )
    p.add_argument("--rng-seed", type=int, default=0)
    p.add_argument("--db", default="plant")
    p.add_argument("--login", default="admin")
    p.add_argument("--password", default="admin")
    # A file, so that the password the services use (a compose secret) never shows on a command line.
    p.add_argument("--password-file", type=Path, help="read the password from this file (wins over --password)")
    p.add_argument("--cooldown-after", type=int, default=5, help="failed logins before the lock; 0 = no lock")
    p.add_argument("--cooldown-seconds", type=float, default=60.0)
    p.add_argument("--session-ttl", type=float, default=SEVEN_DAYS, help="session GC age in seconds")
    p.add_argument("--consumption", choices=("warning", "flexible", "strict"), default="warning")
    p.add_argument("--no-list-caps", action="store_true", help="do not cap reserved/consumed at the BoM qty")
    p.add_argument("--no-commit-invalid-duration", action="store_true")
    p.add_argument("--multi-db", action="store_true", help="/api/scada/* answers 404 until a login binds the db")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.seed is None:
        # The recorded reply lives beside the repository (reference material, not copied in): without it the
        # simulator serves generated MOs only.
        seed = DEFAULT_SEED if DEFAULT_SEED.is_file() else None
        if seed is None:
            logging.getLogger("odoo_sim").warning("no recorded reply at %s: generated MOs only", DEFAULT_SEED)
    else:
        seed = None if args.seed.lower() == "none" else Path(args.seed)
    password = args.password
    if args.password_file is not None:
        # Stripped like the services' *_FILE reader (shared/config.py), so both sides agree on the password.
        password = args.password_file.read_text(encoding="utf-8").strip()
    handle = start_server(
        args.host,
        args.port,
        seed=seed,
        extra_mos=args.extra_mos,
        started_mos=args.started_mos,
        rng_seed=args.rng_seed,
        db=args.db,
        login=args.login,
        password=password,
        cooldown_after=args.cooldown_after,
        cooldown_seconds=args.cooldown_seconds,
        session_ttl=args.session_ttl,
        consumption=args.consumption,
        list_caps=not args.no_list_caps,
        commit_invalid_duration=not args.no_commit_invalid_duration,
        multi_db=args.multi_db,
    )
    log = logging.getLogger("odoo-sim")
    log.info("odoo-sim listening on %s (db %r, %d MOs)", handle.url, args.db, len(handle.sim.domain.mos))
    log.info("control API: %s", ", ".join(CONTROL_HELP))
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stop.wait()
    handle.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
