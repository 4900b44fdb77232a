"""`failure-monitor` / `python -m services.failure_monitor`."""

from __future__ import annotations

from shared.odoo.client import OdooClient
from shared.service import run_threaded_service

from .app import FailureMonitor
from .settings import FailureSettings


def main() -> None:
    run_threaded_service(
        "failure_monitor",
        FailureSettings,
        lambda s: FailureMonitor(s, OdooClient(s)),
        secrets=lambda s: [s.odoo_password.get_secret_value()],
    )


if __name__ == "__main__":
    main()
