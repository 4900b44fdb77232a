"""`.env.example` documents every setting a service reads (the integrator's one reference)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from services.console.settings import ConsoleSettings
from services.failure_monitor.settings import FailureSettings
from services.mo_planner.settings import PlannerSettings
from services.odoo_sync.settings import SyncSettings
from services.plc_gateway.settings import GatewaySettings

ENV_EXAMPLE = (Path(__file__).resolve().parents[2] / ".env.example").read_text()


@pytest.mark.parametrize(
    "settings", [GatewaySettings, PlannerSettings, SyncSettings, FailureSettings, ConsoleSettings]
)
def test_every_setting_is_documented(settings: type[BaseSettings]) -> None:
    missing = [
        name.upper()
        for name in settings.model_fields
        if not re.search(rf"^#?\s*{name.upper()}(_FILE)?=", ENV_EXAMPLE, re.MULTILINE)
    ]
    assert missing == []


def test_no_secret_value_in_the_example() -> None:
    for line in ENV_EXAMPLE.splitlines():
        if re.match(r"^\s*[A-Z_]*PASSWORD=", line):
            raise AssertionError(f"a password value in .env.example: {line.split('=')[0]}")
