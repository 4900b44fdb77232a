"""`odoo-sync` / `python -m services.odoo_sync`."""

from .app import Syncer

main = Syncer.main

if __name__ == "__main__":
    main()
