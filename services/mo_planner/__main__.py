"""`mo-planner` / `python -m services.mo_planner`."""

from __future__ import annotations

from shared.config import ConfigError
from shared.odoo.client import OdooClient
from shared.plc.memory_map import MemoryMapError, load_memory_map, with_active_slots
from shared.service import run_threaded_service

from .app import Planner
from .settings import PlannerSettings


def build(settings: PlannerSettings) -> Planner:
    try:
        memory_map = with_active_slots(load_memory_map(settings.plc_map), settings.plc_slots)
    except MemoryMapError as exc:
        raise ConfigError(str(exc)) from None
    return Planner(settings, memory_map, OdooClient(settings))


def main() -> None:
    run_threaded_service(
        "mo_planner", PlannerSettings, build, secrets=lambda s: [s.odoo_password.get_secret_value()]
    )


if __name__ == "__main__":
    main()
