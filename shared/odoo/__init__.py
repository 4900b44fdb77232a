"""Odoo 14 grt_scada client: settings, typed replies, errors and the PLC batch mapping."""

from shared.odoo.client import OdooClient
from shared.odoo.errors import (
    OdooAuthError,
    OdooBusinessError,
    OdooError,
    OdooLoginCooldown,
    OdooProtocolError,
    OdooRouteNotFound,
    OdooServerError,
    OdooSessionExpired,
    OdooTransportError,
)
from shared.odoo.mapping import Batch, NotDosed, consumption_payload, mo_to_batch
from shared.odoo.settings import OdooSettings

__all__ = [
    "Batch",
    "NotDosed",
    "OdooAuthError",
    "OdooBusinessError",
    "OdooClient",
    "OdooError",
    "OdooLoginCooldown",
    "OdooProtocolError",
    "OdooRouteNotFound",
    "OdooServerError",
    "OdooSessionExpired",
    "OdooSettings",
    "OdooTransportError",
    "consumption_payload",
    "mo_to_batch",
]
