"""The client's `material-consumption` call against the Odoo simulator over real HTTP: add mode with the
JSON-RPC envelope and session, applied_qty cut at the moves' remaining need, state refusals, and never a
replay after a session expiry (a replayed add double-counts)."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.odoo.client import OdooClient
from shared.odoo.errors import OdooBusinessError, OdooSessionExpired
from simulators.odoo.server import SimServer
from tests.support.odoo import control, odoo_client, odoo_sim  # noqa: F401 - fixtures

CACO3 = 997  # an MO-level (PLC01) component of the recorded MOs: hand-weighed
NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(seconds=5)  # naive UTC


def consumed(client: OdooClient, mo_id: str) -> float:
    mo = client.mo_detail(mo_id)
    return round(sum(c.consumed for c in mo.components_consumption if c.product_id == CACO3), 2)


def open_mo(client: OdooClient) -> str:
    for mo in client.list_mos(limit=0):
        if any(c.product_id == CACO3 and c.consumed == 0 for c in mo.components_consumption):
            return mo.mo_id
    raise AssertionError("no confirmed MO with CaCO3")


def add(client: OdooClient, mo_id: str, kg: float) -> float:
    reply = client.add_material_consumption(
        equipment_code="WEIGH_SCALE_01", product_id=CACO3, quantity=kg, mo_id=mo_id, timestamp=NOW
    )
    assert reply.update_mode == "add" and reply.mo_id == mo_id
    return reply.applied_qty


def test_add_applies_exactly_and_adds_up(odoo_client: OdooClient) -> None:  # noqa: F811
    mo = open_mo(odoo_client)
    assert add(odoo_client, mo, 2.35) == pytest.approx(2.35)
    assert add(odoo_client, mo, 1.15) == pytest.approx(1.15)  # add mode: a second post adds (not idempotent)
    assert consumed(odoo_client, mo) == pytest.approx(3.5)


def test_more_than_the_move_needs_is_cut_and_reported_in_applied_qty(odoo_client: OdooClient) -> None:  # noqa: F811
    mo = open_mo(odoo_client)
    applied = add(odoo_client, mo, 999.0)
    assert 0 < applied < 999.0  # the rest after the last move is dropped by Odoo: the caller must compare


def test_done_mo_and_unknown_scale_are_refused_cleanly(odoo_sim: SimServer, odoo_client: OdooClient) -> None:  # noqa: F811
    mo = open_mo(odoo_client)
    with pytest.raises(OdooBusinessError, match='Equipment "NO_SCALE" not found'):
        odoo_client.add_material_consumption(
            equipment_code="NO_SCALE", product_id=CACO3, quantity=1.0, mo_id=mo, timestamp=NOW
        )
    control(odoo_sim.url, "/_sim/mo-state", {"mo_id": mo, "state": "done"})
    with pytest.raises(OdooBusinessError, match="Cannot update consumption for MO in done state"):
        add(odoo_client, mo, 1.0)


def test_a_session_expiry_is_never_replayed(odoo_sim: SimServer, odoo_client: OdooClient) -> None:  # noqa: F811
    mo = open_mo(odoo_client)
    before = consumed(odoo_client, mo)
    control(odoo_sim.url, "/_sim/expire-sessions")
    with pytest.raises(OdooSessionExpired):
        add(odoo_client, mo, 1.0)
    assert consumed(odoo_client, mo) == before  # refused before it ran; the caller posts again knowingly
    assert add(odoo_client, mo, 1.0) == pytest.approx(1.0)
