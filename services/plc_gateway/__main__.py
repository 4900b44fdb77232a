"""`plc-gateway` / `python -m services.plc_gateway`."""

from __future__ import annotations

import asyncio
import signal
import sys

from shared.config import ConfigError, load
from shared.logging import setup_logging
from shared.plc.memory_map import MemoryMapError

from .app import Gateway, load_map
from .settings import GatewaySettings


def main() -> None:
    try:
        settings: GatewaySettings = load(GatewaySettings)
        setup_logging("plc_gateway", settings.log_level)
        memory_map = load_map(settings)
        gateway = Gateway(settings, memory_map)
    except (ConfigError, MemoryMapError) as exc:
        print(f"plc-gateway: {exc}", file=sys.stderr)
        sys.exit(2)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await gateway.run(stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
