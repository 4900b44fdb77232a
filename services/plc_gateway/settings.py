"""plc_gateway configuration (env / .env), validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from shared.plant_clock import PlantClockSettings
from shared.plc.memory_map import DEFAULT_MAP_PATH
from shared.settings import ServiceSettings


class GatewaySettings(ServiceSettings, PlantClockSettings):
    plc_host: str = "127.0.0.1"
    plc_port: int = Field(default=9600, ge=1, le=65535)
    plc_node: int = Field(default=1, ge=0, le=254, description="PLC FINS node (DA1)")
    plc_network: int = Field(default=0, ge=0, le=127, description="FINS network (DNA), 0 = local")
    plc_unit: int = Field(default=0, ge=0, le=255, description="DA2, 0 = CPU unit")
    gateway_node: int = Field(
        default=10, ge=1, le=254, description="our FINS node (SA1): unique on the PLC network"
    )
    fins_local_port: int = Field(default=0, ge=0, le=65535, description="0 = ephemeral; 9600 for static mapping")
    fins_timeout_ms: int = Field(default=1000, ge=50, le=30000)
    fins_retries: int = Field(default=2, ge=0, le=10)
    fins_chunk_words: int = Field(
        default=990, ge=1, le=999, description="largest read; a poll splits an area only beyond it"
    )
    poll_mode: Literal["area", "slot"] = Field(
        default="area", description="area: one read per mapped area; slot: one per slot block (comparison only)"
    )
    gateway_state_dir: Path = Field(description="the gateway's own durable state (the weighing-flag journal)")
    plc_map: Path = DEFAULT_MAP_PATH
    plc_slots: int | None = Field(default=None, ge=1, le=99, description="overrides the map's active_slots")
    poll_interval_ms: int = Field(default=500, ge=20, le=60000)
    heartbeat_s: float = Field(default=10.0, gt=0, le=3600)
    reply_cache_size: int = Field(default=2000, ge=10)
    plc_diag_interval_s: float = Field(
        default=30.0, ge=0, le=3600, description="PLC diagnostics (0601/0620/0701) period; 0 = off"
    )
    plc_clock_max_offset_s: float = Field(
        default=10.0, gt=0, le=86400, description="alarm when the PLC clock is further off the gateway's"
    )
