"""The status message of every service: `{root}/gateway/status` (plc_gateway, with its PLC link) and
`{root}/svc/<service>/status` (the others). Retained: `online` is the birth (republished by the gateway when its
PLC link changes), `offline` the last will or a clean stop. A typed message (shared/mqtt/wire.py): the link
builds it (shared/mqtt/client.py), receivers (edgectl status and watch, the console) validate it.

On the wire a detail the sender does not have is left out (`offline` carries only `state` and `client_id`; a
service sends the details of its own kind), while a detail it has but that is unknown right now is null
(`plc.rtt_ms` before the first reply, `plc.last_error` while all is well).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_serializer

from shared.mqtt.payloads import utc_now
from shared.mqtt.wire import Envelope, WireModel

StatusState = Literal["online", "offline"]


class _AsSent(WireModel):
    """Serialised as the sender built it: fields it never set are left out, a None it set is null."""

    @model_serializer(mode="wrap")
    def _as_sent(self, handler: Any) -> dict[str, Any]:
        body: dict[str, Any] = handler(self)
        given = {(f.alias or name) for name, f in type(self).model_fields.items() if name in self.model_fields_set}
        return {k: v for k, v in body.items() if v is not None or k in given}

    def given(self) -> dict[str, Any]:
        """The fields the sender set, by name (to carry them into another message)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class CycleTimes(WireModel):
    """The PLC's scan time in ms (FINS 0620)."""

    average: float
    max: float
    min: float


class PlcDiagnosticsStatus(_AsSent):
    """The gateway's last PLC diagnostics round (docs/plc-diagnostics.md); before the first successful round
    only `read_at` (null) and `error`."""

    mode: str | None = None
    running: bool | None = None
    fatal_error: int | None = None
    non_fatal_error: int | None = None
    error_message: str | None = None
    cycle_ms: CycleTimes | None = None
    plc_clock: str | None = None  # the PLC's own clock, ISO-8601 in the plant's zone
    clock_offset_s: float | None = None
    read_at: str | None = None  # when that round was read (ISO-8601)
    error: str | None = None  # the last round's failure; the values above are then from the round before


class PlcAlarmStatus(WireModel):
    """An active PLC alarm as the gateway words it (kinds: docs/plc-diagnostics.md)."""

    kind: str
    message: str
    since: str


class PlcLinkStatus(_AsSent):
    """The gateway's PLC link. `diagnostics` null: diagnostics are off (PLC_DIAG_INTERVAL_S=0); both it and
    `alarms` are left out of the birth, which is built before the diagnostics exist."""

    host: str
    port: int
    node: int
    reachable: bool
    rtt_ms: float | None = None
    last_error: str | None = None
    diagnostics: PlcDiagnosticsStatus | None = None
    alarms: list[PlcAlarmStatus] | None = None


class StatusDetails(_AsSent):
    """What a service says about itself while online (each service the details of its kind)."""

    version: str | None = None
    slots: int | None = Field(default=None, ge=1)  # plc_gateway, mo_planner: active PLC slots
    mark_done: bool | None = None  # odoo_sync
    timezone: str | None = None  # failure_monitor: PLANT_TIMEZONE
    weighing_items: str | None = None  # failure_monitor: WEIGHING_ITEMS
    role: str | None = None  # console
    map_version: str | None = None  # plc_gateway: the memory map's version
    poll_interval_ms: int | None = None  # plc_gateway
    plc: PlcLinkStatus | None = None  # plc_gateway


class ServiceStatus(Envelope, StatusDetails):
    state: StatusState
    client_id: str

    @classmethod
    def build(
        cls, source: str, client_id: str, state: StatusState, details: StatusDetails | None
    ) -> ServiceStatus:
        """The message now: `details` go out only with `online`."""
        given = details.given() if details is not None and state == "online" else {}
        return cls(ts=utc_now(), source=source, state=state, client_id=client_id, **given)

    @property
    def online(self) -> bool:
        return self.state == "online"

    def details(self) -> dict[str, Any]:
        """The service's own details as on the wire, without the envelope, state and PLC link."""
        return {k: v for k, v in self.wire().items() if k not in ("schema", "ts", "source", "state", "plc")}
