"""Odoo 14 grt_scada simulator: ``start_server`` for tests, ``odoo-sim`` on the command line."""
