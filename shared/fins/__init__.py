"""FINS/UDP: pure frame codec (`frames`, `endcodes`), errors, and the asyncio client."""

from shared.fins.client import FinsClient
from shared.fins.endcodes import EndCode, EndCodeKind
from shared.fins.errors import (
    FinsAccessError,
    FinsAddressError,
    FinsConfigError,
    FinsEndCodeError,
    FinsError,
    FinsFormatError,
    FinsModeError,
    FinsNotConnected,
    FinsProtocolError,
    FinsRetryableError,
    FinsTimeout,
    FinsUnsupportedError,
)
from shared.fins.frames import ControllerData, ControllerStatus, Route
from shared.fins.stats import FinsStats

__all__ = [
    "ControllerData",
    "ControllerStatus",
    "EndCode",
    "EndCodeKind",
    "FinsAccessError",
    "FinsAddressError",
    "FinsClient",
    "FinsConfigError",
    "FinsEndCodeError",
    "FinsError",
    "FinsFormatError",
    "FinsModeError",
    "FinsNotConnected",
    "FinsProtocolError",
    "FinsRetryableError",
    "FinsStats",
    "FinsTimeout",
    "FinsUnsupportedError",
    "Route",
]
