"""`odoo-sync` / `python -m services.odoo_sync`."""

from __future__ import annotations

from shared.odoo.client import OdooClient
from shared.service import run_threaded_service

from .app import Syncer
from .settings import SyncSettings


def main() -> None:
    run_threaded_service(
        "odoo_sync",
        SyncSettings,
        lambda s: Syncer(s, OdooClient(s)),
        secrets=lambda s: [s.odoo_password.get_secret_value()],
    )


if __name__ == "__main__":
    main()
