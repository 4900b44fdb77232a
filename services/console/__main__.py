"""`console` / `python -m services.console`: validate the settings (exit 2 naming the variable), then serve."""

from __future__ import annotations

import sys

import uvicorn

from services.console.auth import AuthConfigError
from services.console.settings import ConsoleSettings
from shared.config import ConfigError, load
from shared.logging import register_secret, setup_logging


def main() -> None:
    try:
        settings: ConsoleSettings = load(ConsoleSettings)
        setup_logging("console", settings.log_level)
        for secret in settings.secrets():
            register_secret(secret)
        from services.console.app import Console

        console = Console(settings)
    except (ConfigError, AuthConfigError) as exc:
        print(f"console: {exc}", file=sys.stderr)
        sys.exit(2)
    uvicorn.run(
        console.app(),
        host=settings.console_host,
        port=settings.console_port,
        log_level=settings.log_level.lower(),
        # Query strings never carry a secret here, but access lines add nothing the app's own log lacks.
        access_log=False,
        # Open live streams must not hold a restart: they reconnect by themselves.
        timeout_graceful_shutdown=3,
        # Behind a proxy the client address is the proxy's (the per-address login limit then counts the proxy);
        # trusting X-Forwarded-For from anyone would let a client pick its own address.
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
