"""Manual weighing's pure decisions: item selection, what a snapshot offers, whether an MO can take a
weighing, and the verdict on a post of unknown outcome (the exactly-once rule)."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest

from services.failure_monitor.weighing_rules import (
    cannot_take,
    earlier_post_verdict,
    parse_item_selection,
    product_consumption,
    short_applied,
    weighings_from_snapshot,
)
from shared.mqtt.payloads import PayloadError
from shared.mqtt.snapshots import WeighingSnapshot
from shared.mqtt.wire import parse_message
from shared.odoo.mapping import material_consumption_payload
from shared.odoo.models import Mo
from tests.support.messages import weighing_area
from tests.unit.test_plc_manual_weighing import GOLDEN

D = Decimal


def test_item_selection() -> None:
    assert parse_item_selection("ALL") == frozenset(range(1, 11))
    assert parse_item_selection(" manual01, MANUAL10 ") == frozenset({1, 10})
    for bad in ("", "MANUAL00", "MANUAL11", "MANUAL1", "ITEM01", "ALL,MANUAL01"):
        with pytest.raises(ValueError):
            parse_item_selection(bad)


def test_only_valid_pending_items_of_the_selection_are_offered() -> None:
    pending, shown = weighings_from_snapshot(weighing_area(list(GOLDEN)), parse_item_selection("ALL"))
    assert [(w.item, w.product_id, w.kg, w.mo_id) for w in pending] == [
        (1, 61, D("832.00"), "WH/MO/00011"),
        (6, 64, D("380.69"), "WH/MO/00011"),
    ]
    by_item = {s.item: s for s in shown}
    assert by_item[2].flag == 1 and by_item[2].event_id is not None  # taken, still identifiable
    assert by_item[3].event_id is None and by_item[7].event_id is None  # rejected / empty
    only_six, _ = weighings_from_snapshot(weighing_area(list(GOLDEN)), parse_item_selection("MANUAL06"))
    assert [w.item for w in only_six] == [6]


def test_a_malformed_message_is_refused_before_any_rule_sees_it() -> None:
    genuine = weighing_area(list(GOLDEN)).wire()
    forged_kg = copy.deepcopy(genuine)
    forged_kg["fields"]["items"][0]["kg"] = "lots"
    taken_but_pending = copy.deepcopy(genuine)
    taken_but_pending["fields"]["items"][1]["pending"] = True  # item 2's flag reads 1: it is not pending
    for body in (
        {},
        genuine | {"area": "failure"},
        genuine | {"fields": {"items": "x"}},
        forged_kg,
        taken_but_pending,
    ):
        with pytest.raises(PayloadError):
            parse_message(WeighingSnapshot, json.dumps(body).encode())
    assert parse_message(WeighingSnapshot, json.dumps(genuine).encode()).wire() == genuine


def _mo(state: str = "confirmed", consumed: float = 4.0) -> Mo:
    component = {"product_tmpl_id": 1, "product_id": 997, "product_name": "CaCO3", "uom": "kg"}
    return Mo.model_validate(
        {
            "mo_id": "WH/MO/00023",
            "state": state,
            "product_tmpl_id": 5,
            "product_id": 6,
            "product_name": "FEED",
            "quantity": 1000.0,
            "produced_qty": 0.0,
            "bom_components": [{**component, "quantity": 16.0}],
            "components_consumption": [
                {**component, "to_consume": 16.0, "reserved": 0.0, "consumed": consumed},
                {**component, "to_consume": 4.0, "reserved": 0.0, "consumed": 1.5},  # the same product twice
            ],
        }
    )


def test_consumption_sums_every_entry_and_refusals_name_the_reason() -> None:
    assert product_consumption(_mo(), 997) == D("5.50")
    assert product_consumption(_mo(), 998) is None
    assert cannot_take(_mo(), 997) is None
    assert cannot_take(_mo("done"), 997) == "MO WH/MO/00023 is done in Odoo: it takes no more consumption"
    assert cannot_take(_mo("cancel"), 997) is not None
    assert cannot_take(_mo(), 998) == "product 998 is not a raw component of WH/MO/00023"


@pytest.mark.parametrize(
    ("before", "now", "kg", "cap", "verdict"),
    [
        ("5.50", "7.85", "2.35", "20", "applied"),
        ("5.50", "5.50", "2.35", "20", "not_applied"),
        ("5.50", "5.504", "2.35", "20", "not_applied"),  # rounding, not a booking
        ("5.50", "6.50", "2.35", "20", "undecidable"),  # cut short or someone else booked
        ("5.50", "10.20", "2.35", "20", "undecidable"),  # more than this weighing
        ("19.00", "19.00", "2.35", "20", "undecidable"),  # mo-detail caps consumed: a booking may not show
    ],
)
def test_verdict_on_an_unknown_outcome(before: str, now: str, kg: str, cap: str, verdict: str) -> None:
    assert earlier_post_verdict(D(before), D(now), D(kg), D(cap))[0] == verdict


def test_short_applied_and_payload() -> None:
    assert short_applied(D("2.35"), D("2.35")) is None
    assert short_applied(D("1.00"), D("2.35")) == (
        "Odoo applied 1.00 of 2.35 kg (the MO's moves needed less); 1.35 kg not booked"
    )
    body = material_consumption_payload(
        equipment_code="WEIGH_SCALE_01",
        product_id=997,
        quantity=2.35,
        mo_id="WH/MO/00023",
        timestamp="2026-12-02 02:21:23",
    )
    assert body == {
        "equipment_id": "WEIGH_SCALE_01",
        "product_id": 997,
        "quantity": 2.35,
        "mo_id": "WH/MO/00023",
        "timestamp": "2026-12-02 02:21:23",
        "update_mode": "add",
    }
    for bad in ({"product_id": 0}, {"quantity": 0.0}, {"quantity": float("nan")}, {"mo_id": ""}):
        args: dict[str, Any] = {
            "equipment_code": "S",
            "product_id": 1,
            "quantity": 1.0,
            "mo_id": "M",
            "timestamp": "t",
        }
        with pytest.raises(ValueError):
            material_consumption_payload(**{**args, **bad})
