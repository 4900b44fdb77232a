"""The plant's wall clock: the PLC keeps naive local time in the plant's zone (failure times, the 0701 clock).

One setting, PLANT_TIMEZONE, read by every service that turns PLC times into real instants (failure_monitor for
Odoo, plc_gateway for the PLC clock offset), so the two can never disagree about the zone.
"""

from __future__ import annotations

import zoneinfo

from pydantic import Field, field_validator

from shared.config import Settings

DEFAULT_PLANT_TIMEZONE = "Asia/Jakarta"


class PlantClockSettings(Settings):
    plant_timezone: str = Field(
        default=DEFAULT_PLANT_TIMEZONE, description="timezone of the PLC clock (IANA name)"
    )

    @field_validator("plant_timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"PLANT_TIMEZONE {v!r} is not an IANA timezone") from None
        return v
