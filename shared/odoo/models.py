"""Typed views of grt_scada replies (docs/odoo-api.md O4). Strict: wrong types are rejected, never coerced.

Odoo writes an empty Char/Selection field as JSON ``false`` (O1.4, O7.13); ``OdooChar`` turns exactly that
``false`` into ``None`` and rejects every other non-string (``true``, numbers, objects). Datetimes are naive UTC
ISO strings (O1.3); an offset is rejected because Odoo never sends one and guessing would shift times.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

MoState = Literal["draft", "confirmed", "progress", "to_close", "done", "cancel"]


def _false_to_none(value: Any) -> Any:
    # Only the literal JSON false means "empty"; True or numbers stay wrong and fail validation.
    return None if value is False else value


def _naive_utc(value: Any) -> Any:
    if value is None or value is False:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a naive ISO datetime string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO datetime: {value!r}") from None
    if parsed.tzinfo is not None:
        raise ValueError(f"expected a naive UTC datetime, got an offset: {value!r}")
    return parsed


OdooChar = Annotated[str | None, BeforeValidator(_false_to_none)]
"""A Char that Odoo may send as ``false`` when empty."""
OdooId = Annotated[int | None, BeforeValidator(_false_to_none)]
"""A Many2one id that Odoo may send as ``false`` when unset."""
NaiveUtc = Annotated[datetime | None, BeforeValidator(_naive_utc)]
RequiredNaiveUtc = Annotated[datetime, BeforeValidator(_naive_utc)]


class OdooModel(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", allow_inf_nan=False)


class Equipment(OdooModel):
    """``_get_equipment_details`` (O3.1). Only id/code/name are required; the rest is informative."""

    id: int
    code: str
    name: str
    equipment_type: OdooChar = None
    manufacturer: OdooChar = None
    model_number: OdooChar = None
    serial_number: OdooChar = None
    ip_address: OdooChar = None
    port: int = 0
    protocol: OdooChar = None
    is_active: bool = True
    connection_status: OdooChar = None
    sync_status: OdooChar = None
    last_connected: NaiveUtc = None


class BomComponent(OdooModel):
    product_tmpl_id: int
    product_id: int
    product_name: str
    quantity: float  # raw BoM line qty, not scaled to the MO (O4.4)
    uom: OdooChar = None


class ComponentConsumption(OdooModel):
    """One ``components_consumption`` entry. ``to_consume`` is the unscaled BoM qty; ``consumed`` is capped
    for BoM entries (O4.4, O7.11): compare writes with ``applied_qty``, not with these."""

    product_tmpl_id: int
    product_id: int
    product_name: str
    to_consume: float
    reserved: float
    consumed: float
    uom: OdooChar = None
    equipment: Equipment | None = None


class Mo(OdooModel):
    """An MO as ``mo-list-detailed`` and ``mo-detail`` return it (O4.4/O4.5)."""

    mo_id: str
    reference: OdooChar = None
    state: MoState
    schedule_start: NaiveUtc = None
    schedule_end: NaiveUtc = None
    equipment: Equipment | None = None
    product_tmpl_id: int
    product_id: int
    product_name: str  # display_name: may carry a "[CODE] " prefix (O7.13)
    quantity: float
    produced_qty: float
    uom: OdooChar = None
    bom_id: OdooId = None
    bom_code: OdooChar = None
    bom_components: list[BomComponent]
    components_consumption: list[ComponentConsumption]


class MoListReply(OdooModel):
    status: Literal["success"]
    count: int
    data: list[Mo]


class MoDetailReply(OdooModel):
    status: Literal["success"]
    data: Mo


class ConsumedItem(OdooModel):
    equipment_code: str
    equipment_name: str
    applied_qty: float
    move_ids: list[int]
    products: list[str]


class UpdateReply(OdooModel):
    """``update-with-consumptions`` result (O4.6). ``errors`` is absent on full success."""

    status: Literal["success"]
    message: str
    mo_id: str
    mo_state: MoState
    consumed_items: list[ConsumedItem]
    errors: list[str] = Field(default_factory=list)
    updated_quantity: float | None = None
    updated_finished_qty: float | None = None


class UpdateOutcome(OdooModel):
    """What ``OdooClient.update_consumption`` returns.

    ``status`` is "partial" when Odoo said success but listed ``errors`` (O7.7): some keys were not applied.
    ``mo`` is the MO re-read after a partial result (None on full success).
    """

    status: Literal["success", "partial"]
    mo_id: str
    mo_state: MoState
    message: str
    consumed_items: list[ConsumedItem]
    errors: list[str]
    updated_finished_qty: float | None = None
    mo: Mo | None = None

    @property
    def partial(self) -> bool:
        return self.status == "partial"


class MarkDoneReply(OdooModel):
    status: Literal["success"]
    message: str
    mo_id: str


class MarkDoneOutcome(OdooModel):
    """``done`` comes from re-reading the MO, never from the mark-done reply (O4.7: success != done)."""

    mo_id: str
    done: bool
    state: MoState
    already_done: bool = False  # the MO was done before this call (e.g. an earlier reply was lost)
    message: str = ""
    mo: Mo


class CancelReply(OdooModel):
    status: Literal["success"]
    message: str
    mo_id: str
    mo_state: MoState


class CancelOutcome(OdooModel):
    mo_id: str
    state: MoState
    already_cancelled: bool


class MaterialConsumptionReply(OdooModel):
    """``material-consumption`` result (docs/odoo-api.md O4.9). ``applied_qty`` may be less than the quantity sent: in add mode
    each open move takes at most what it still needs and the rest after the last move is dropped."""

    status: Literal["success"]
    message: str
    mo_id: str
    mo_state: MoState
    applied_qty: float
    move_ids: list[int]
    update_mode: str
    can_update_again: bool = True


class FailureRecord(OdooModel):
    """A ``scada.equipment.failure`` record (O4.10). ``date`` is naive UTC."""

    id: int
    equipment_id: OdooId = None
    equipment_code: str
    equipment_name: OdooChar = None
    description: str
    date: RequiredNaiveUtc
    duration: OdooChar = None
    duration_minutes: int = 0
    reported_by: OdooChar = None


class FailureCreateReply(OdooModel):
    status: Literal["success"]
    message: str
    data: FailureRecord


class FailureListReply(OdooModel):
    status: Literal["success"]
    count: int
    data: list[FailureRecord]


class SessionInfo(OdooModel):
    """The parts of ``/web/session/authenticate``'s ``session_info`` the client uses (O2.2)."""

    uid: int
    db: str
    username: OdooChar = None
    server_version: OdooChar = None
