"""Manual weighing with the real processes (plc-sim, plc_gateway, failure_monitor, Mosquitto, PostgreSQL,
odoo-sim): each weighing is stored, acknowledged on the PLC after storage and booked in Odoo exactly once with
its exact kg, through an Odoo outage and a lost reply; two identical weighings in a row are two; an invalid
item is rejected, never stored or acknowledged, and visible."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shared.odoo.client import OdooClient
from shared.odoo.settings import OdooSettings
from shared.plc.memory_map import load_memory_map
from tests.support.messages import weighing_area
from tests.support.procs import wait_until
from tests.support.system import ROOT, System

MAP = load_memory_map()
CACO3 = 997  # a hand-weighed additive of the generated MOs (a PLC01 component: no silo doses it)
GARAM = 800  # another one (salt), with a small need per MO


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[System]:
    # Short Odoo timeouts keep the unknown-outcome lease short: 4 x (connect + read) + 5 s = 21 s.
    env = {
        "REPORT_RETRY_S": "0.3",
        "REPORT_RETRY_MAX_S": "1",
        "ODOO_CONNECT_TIMEOUT": "1",
        "ODOO_READ_TIMEOUT": "3",
    }
    s = System(tmp_path, extra_mos=5, env=env)
    try:
        s.wait_healthy()
        # Only the weighing path runs: the batch services would only add load to a shared machine.
        for name in ("mo_planner", "odoo_sync"):
            s.procs[name].terminate()
        yield s
    finally:  # also when the start failed: never leave its processes behind
        s.stop()


def odoo_client(s: System) -> OdooClient:
    return OdooClient(
        OdooSettings(
            odoo_url=f"http://127.0.0.1:{s.odoo_port}", odoo_db="plant", odoo_login="admin", odoo_password="admin"
        )
    )


def consumed(s: System, mo_id: str, product_id: int) -> Decimal:
    client = odoo_client(s)
    try:
        mo = client.mo_detail(mo_id)
    finally:
        client.close()
    total = sum(Decimal(str(c.consumed)) for c in mo.components_consumption if c.product_id == product_id)
    return Decimal(total).quantize(Decimal("0.01"))


def an_mo_with(s: System, product_id: int) -> str:
    client = odoo_client(s)
    try:
        for mo in client.list_mos(limit=0):
            if any(c.product_id == product_id and c.consumed == 0 for c in mo.components_consumption):
                return mo.mo_id
    finally:
        client.close()
    raise AssertionError(f"no confirmed MO uses product {product_id}")


def item_flag(s: System, item: int) -> int:
    address = MAP.item_flag_address("manual_weighing", item)
    return int(s.plc("GET", f"/memory?address={address}&count=1")["words"][0])


def rows(s: System) -> list[Any]:
    return s.sql(
        "SELECT id, event_id, item, mo_id, product_id, kg, received_at, acked_at, reported_at, applied_kg, "
        "attention_reason, report_attempts FROM manual_weighing ORDER BY id"
    )


def test_weighings_are_booked_once_two_identical_are_two_and_invalid_is_rejected(plant: System) -> None:
    mo = an_mo_with(plant, CACO3)
    before = consumed(plant, mo, CACO3)
    start = plant.watch.mark()
    weighing = {"mo_id": mo, "product_id": CACO3, "kg": 2.35, "batch": 1, "item": 1}
    plant.plc("POST", "/weighing", weighing)
    plant.plc("POST", "/weighing", weighing)  # the operator weighs the same again: a second weighing
    plant.plc("POST", "/weighing", {**weighing, "item": 3, "product_id": 0})  # a wrong entry at the scale

    wait_until(lambda: len([r for r in rows(plant) if r.reported_at]) == 2, 40, what="two weighings reported")
    stored = rows(plant)
    assert len(stored) == 2, stored
    assert all(r.item == 1 and r.kg == Decimal("2.35") and r.applied_kg == Decimal("2.35") for r in stored)
    assert stored[0].event_id == stored[1].event_id  # the same content id, two weighings
    assert all(r.acked_at is not None and r.acked_at >= r.received_at for r in stored)
    assert stored[1].received_at >= stored[0].acked_at  # the second was read after the first's ack
    assert consumed(plant, mo, CACO3) == before + Decimal("4.70")
    assert plant.plc_state()["weighings"]["acked"] == 2

    # The invalid item: published with its reason, never stored, never acknowledged.
    _, snap = plant.watch.wait_for(
        lambda t, b: t == f"{ROOT}/plc/weighing" and not b["fields"]["items"][2]["valid"], 10, since=start
    )
    assert snap["fields"]["items"][2]["errors"] == ["product_id 0 is below 1"]
    assert "item 3: product_id 0 is below 1" in snap["errors"]
    assert item_flag(plant, 3) == 0
    assert all(r.item != 3 for r in rows(plant))

    events = [
        b["event"]
        for _, t, b, _ in list(plant.watch.messages)[start:]
        if t == f"{ROOT}/events/weighing" and isinstance(b, dict)
    ]
    assert events.count("stored") == 2 and events.count("acked") == 2 and events.count("reported") == 2


def test_odoo_outage_keeps_the_scale_working_and_a_lost_reply_never_double_counts(plant: System) -> None:
    mo = an_mo_with(plant, CACO3)
    before = consumed(plant, mo, CACO3)
    plant.odoo("POST", "/_sim/faults", {"kind": "http_error", "status": 502, "times": None})  # Odoo is down
    for item, kg in ((1, 1.25), (2, 3.5)):
        plant.plc("POST", "/weighing", {"mo_id": mo, "product_id": CACO3, "kg": kg, "item": item})
    # Stored and acknowledged while Odoo is down: the PLC's items are free again for the next weighings.
    wait_until(lambda: item_flag(plant, 1) == 1 and item_flag(plant, 2) == 1, 15, what="items acked")
    wait_until(lambda: all(r.acked_at for r in rows(plant)) and len(rows(plant)) == 2, 10, what="acked_at")
    wait_until(lambda: all(r.report_attempts >= 1 for r in rows(plant)), 15, what="report attempts")
    assert all(r.reported_at is None for r in rows(plant))

    # Odoo is back, but the first reply of material-consumption is lost after Odoo booked it.
    plant.odoo("DELETE", "/_sim/faults")
    plant.odoo(
        "POST",
        "/_sim/faults",
        {
            "kind": "drop",
            "when": "after",
            "route": "/api/scada/material-consumption",
            "method": "POST",
            "times": 1,
        },
    )
    # The lost reply is decided only after the lease (Odoo may still be working on the request).
    try:
        wait_until(lambda: all(r.reported_at for r in rows(plant)), 60, what="both reported")
    except TimeoutError:
        raise AssertionError(f"{rows(plant)}\n{plant.procs['failure_monitor'].log()[-5000:]}") from None
    assert consumed(plant, mo, CACO3) == before + Decimal("4.75")  # 1.25 + 3.50, nothing doubled
    assert [r.applied_kg for r in rows(plant)] == [Decimal("1.25"), Decimal("3.50")]
    assert all(r.attention_reason is None for r in rows(plant))

    # More than the MO's move still needs: Odoo books part of it and drops the rest (add mode). The weighing
    # is reported with what Odoo booked and waits for a person; it is never posted again (that would double).
    plant.plc("POST", "/weighing", {"mo_id": mo, "product_id": GARAM, "kg": 500.0, "item": 3})
    wait_until(lambda: len(rows(plant)) == 3 and rows(plant)[2].reported_at is not None, 30, what="reported")
    short = rows(plant)[2]
    assert short.applied_kg is not None and 0 < short.applied_kg < Decimal("500.00")
    assert short.attention_reason == (
        f"Odoo applied {short.applied_kg} of 500.00 kg (the MO's moves needed less); "
        f"{Decimal('500.00') - short.applied_kg} kg not booked"
    )
    assert short.report_attempts == 1


def edgectl(s: System, *args: str) -> subprocess.CompletedProcess[str]:
    return s.edgectl(*args)


def restart_monitor(s: System, **env: str) -> None:
    s.procs["failure_monitor"].terminate()
    s.env.update(env)
    s.start_service("failure_monitor")


def test_weighings_odoo_cannot_take_are_parked_and_an_operator_hands_them_back(plant: System) -> None:
    client = odoo_client(plant)
    try:
        mos = [
            m.mo_id
            for m in client.list_mos(limit=0)
            if any(c.product_id == CACO3 for c in m.components_consumption)
        ]
    finally:
        client.close()
    done_mo, mo = mos[0], mos[1]
    before = consumed(plant, mo, CACO3)
    restart_monitor(plant, WEIGHING_EQUIPMENT_CODE="NO_SUCH_SCALE")  # an integrator's typo
    plant.odoo("POST", "/_sim/mo-state", {"mo_id": done_mo, "state": "done"})
    plant.plc("POST", "/weighing", {"mo_id": done_mo, "product_id": CACO3, "kg": 0.5, "item": 5})
    plant.plc("POST", "/weighing", {"mo_id": mo, "product_id": 9999, "kg": 0.5, "item": 6})
    plant.plc("POST", "/weighing", {"mo_id": mo, "product_id": CACO3, "kg": 0.75, "item": 4})
    wait_until(lambda: len([r for r in rows(plant) if r.attention_reason]) == 3, 30, what="three in attention")
    parked = {r.item: r for r in rows(plant)}
    assert all(r.acked_at is not None and r.reported_at is None for r in parked.values())  # the scale ran on
    assert parked[5].attention_reason == f"MO {done_mo} is done in Odoo: it takes no more consumption"
    assert parked[6].attention_reason == f"product 9999 is not a raw component of {mo}"
    assert parked[4].attention_reason == (
        'Odoo refused the consumption: Validation failed: Equipment "NO_SUCH_SCALE" not found'
    )
    listed = edgectl(plant, "weighings", "--attention", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(w["item"] for w in json.loads(listed.stdout)) == [4, 5, 6]
    status = json.loads(edgectl(plant, "status", "--json").stdout)
    assert status["weighings"] == {"stored": 3, "unacked": 0, "unreported": 3, "attention": 3}
    assert "3 manual weighing(s) need a person (edgectl weighings --attention)" in status["problems"]

    restart_monitor(plant, WEIGHING_EQUIPMENT_CODE="WEIGH_SCALE_01")  # the setting fixed
    retry = edgectl(plant, "weighing-retry", str(parked[4].id))
    assert retry.returncode == 0, retry.stderr
    wait_until(
        lambda: {r.item: r for r in rows(plant)}[4].reported_at is not None, 30, what="reported after retry"
    )
    assert consumed(plant, mo, CACO3) == before + Decimal("0.75")
    again = edgectl(plant, "weighing-retry", str(parked[4].id))
    assert again.returncode != 0 and "not in attention" in again.stderr


def test_kill9_of_the_worker_before_the_ack_and_during_the_odoo_post_loses_and_doubles_nothing(
    plant: System,
) -> None:
    mo = an_mo_with(plant, CACO3)
    before = consumed(plant, mo, CACO3)

    # 1. Stored, not yet acknowledged: the gateway is away, so the snapshot comes from the test (decoded from
    # the PLC's real memory) and the ack has nobody to run it. Then kill -9.
    plant.procs["plc_gateway"].terminate()
    plant.plc("POST", "/weighing", {"mo_id": mo, "product_id": CACO3, "kg": 1.05, "item": 7})
    base, size = MAP.base_address("manual_weighing"), MAP.layout_of("manual_weighing").words
    wait_until(
        lambda: item_flag(plant, 7) == 0 and plant.plc_state()["weighings"]["posted"] == 1, 10, what="posted"
    )
    words = plant.plc("GET", f"/memory?address={base}&count={size}")["words"]
    plant.watch.publish(f"{ROOT}/plc/weighing", weighing_area(words).wire())
    wait_until(lambda: len(rows(plant)) == 1, 15, what="weighing stored")
    plant.procs["failure_monitor"].kill9()
    assert rows(plant)[0].acked_at is None and item_flag(plant, 7) == 0
    plant.start_service("plc_gateway")
    plant.odoo(
        "POST",
        "/_sim/faults",
        # Long enough that a loaded CI box still kills the worker while Odoo sleeps on the post (it may also
        # time out first: the outcome is unknown either way, which is what this step is about).
        {"kind": "latency", "seconds": 5.0, "route": "/api/scada/material-consumption", "method": "POST"},
    )
    plant.start_service("failure_monitor")

    # 2. kill -9 while the post is in flight (write-ahead committed, Odoo still working on it).
    wait_until(lambda: rows(plant)[0].acked_at is not None, 15, what="acked after the restart")
    post = "POST /api/scada/material-consumption"
    wait_until(lambda: plant.odoo_state()["requests"].get(post, 0) >= 1, 15, what="post in flight")
    plant.procs["failure_monitor"].kill9()  # Odoo is still sleeping on it: the post lands after the crash
    assert bool(plant.sql("SELECT outcome_unknown FROM manual_weighing")[0][0])  # the write-ahead is there
    wait_until(lambda: consumed(plant, mo, CACO3) == before + Decimal("1.05"), 10, what="Odoo applied it")
    plant.start_service("failure_monitor")
    wait_until(lambda: rows(plant)[0].reported_at is not None, 60, what="reported after the lease")
    [row] = rows(plant)
    assert row.applied_kg == Decimal("1.05") and row.attention_reason is None
    assert consumed(plant, mo, CACO3) == before + Decimal("1.05")  # decided from Odoo's state: not posted again
    assert item_flag(plant, 7) == 1
    assert len(rows(plant)) == 1


def gateway_online(s: System) -> bool:
    return s._healthy(s.health_ports["plc_gateway"])


def restart_gateway(s: System, **env: str) -> None:
    s.procs["plc_gateway"].terminate()
    s.env.update(env)
    s.start_service("plc_gateway")
    wait_until(lambda: gateway_online(s), 20, what="gateway up")


def test_a_gateway_restarted_after_its_flag_write_never_acks_the_next_identical_weighing(plant: System) -> None:
    """The one loss of the 1,000-MO soak (seed 20261202): the gateway wrote item 3's flag and was killed before
    its reply left; the scale put an identical weighing into the item; the restarted gateway got the same ack
    again, saw "the verified content with flag 0" and acknowledged the second weighing, which nobody stored.
    The test is the sender here (failure_monitor is stopped), so the reply is lost exactly when it should be."""
    plant.procs["failure_monitor"].terminate()
    mo = an_mo_with(plant, CACO3)
    weighing = {"mo_id": mo, "product_id": CACO3, "kg": 1.5, "item": 3}
    start = plant.watch.mark()
    plant.plc("POST", "/weighing", weighing)
    plant.plc("POST", "/weighing", weighing)  # the same again: the PLC puts it into item 3 once that is free
    _, snap = plant.watch.wait_for(
        lambda t, b: t == f"{ROOT}/plc/weighing" and b["fields"]["items"][2]["pending"], 10, since=start
    )
    ack = {
        "request_id": "failure_monitor-lost-reply",
        "item": 3,
        "event_id": snap["fields"]["items"][2]["event_id"],
        "stored_at": "2026-12-02T08:00:00+00:00",
    }
    first = plant.watch.request(f"{ROOT}/cmd/ack_weighing", {**ack, "weighing_id": 1})
    assert (first["ok"], first["code"]) == (True, "acked"), first["message"]
    plant.procs["plc_gateway"].kill9()  # the sender never read that reply

    wait_until(
        lambda: plant.plc_state()["weighings"]["posted"] == 2 and item_flag(plant, 3) == 0, 15, what="refilled"
    )
    plant.start_service("plc_gateway")
    wait_until(lambda: gateway_online(plant), 20, what="gateway up")
    again = plant.watch.request(f"{ROOT}/cmd/ack_weighing", {**ack, "weighing_id": 1}, timeout=20)
    assert (again["ok"], again["code"]) == (True, "already_acked"), again
    assert plant.plc_state()["weighings"]["acked"] == 1 and item_flag(plant, 3) == 0  # the second one waits

    second = plant.watch.request(
        f"{ROOT}/cmd/ack_weighing", {**ack, "request_id": "failure_monitor-second", "weighing_id": 2}
    )
    assert (second["ok"], second["code"]) == (True, "acked"), second
    assert plant.plc_state()["weighings"]["acked"] == 2 and item_flag(plant, 3) == 1


def test_a_gateway_killed_between_flag_write_and_read_back_leaves_the_decision_to_a_person(plant: System) -> None:
    """Killed after the PLC took the flag and before the read-back, then an identical weighing in the item:
    nobody can tell one weighing from two, so the row is parked unacknowledged (no second flag write, no
    guess); the operator reads the scale's log (two weighings) and says so; both are then booked once."""
    mo = an_mo_with(plant, CACO3)
    before = consumed(plant, mo, CACO3)
    # Writes land on the PLC but their replies never come back, and the gateway waits long for them.
    restart_gateway(plant, FINS_TIMEOUT_MS="8000")
    plant.plc("POST", "/faults", {"drop_write_reply": 1.0})
    weighing = {"mo_id": mo, "product_id": CACO3, "kg": 1.5, "item": 8}
    plant.plc("POST", "/weighing", weighing)
    plant.plc("POST", "/weighing", weighing)
    wait_until(lambda: plant.plc_state()["weighings"]["acked"] == 1, 15, what="the flag taken by the PLC")
    plant.procs["plc_gateway"].kill9()  # still waiting for the write's reply: no read-back happened
    plant.plc("POST", "/faults", {"drop_write_reply": 0.0})
    wait_until(
        lambda: plant.plc_state()["weighings"]["posted"] == 2 and item_flag(plant, 8) == 0, 15, what="refilled"
    )
    plant.env["FINS_TIMEOUT_MS"] = "1000"
    plant.start_service("plc_gateway")

    wait_until(lambda: any(r.attention_reason for r in rows(plant)), 40, what="parked for a person")
    [parked] = rows(plant)
    assert parked.acked_at is None and "acknowledgement unknown" in parked.attention_reason
    time.sleep(3.0)  # resends and snapshots go on meanwhile: none may write the flag again
    assert plant.plc_state()["weighings"]["acked"] == 1 and item_flag(plant, 8) == 0
    give_up = edgectl(plant, "weighing-give-up", str(parked.id))
    assert give_up.returncode != 0 and "still waits on the PLC" in give_up.stderr

    acked = edgectl(plant, "weighing-acked", str(parked.id))  # the scale's log shows two weighings
    assert acked.returncode == 0, acked.stderr
    wait_until(lambda: len([r for r in rows(plant) if r.reported_at]) == 2, 40, what="both reported")
    first, second = rows(plant)
    assert first.id == parked.id and first.applied_kg == second.applied_kg == Decimal("1.50")
    assert first.attention_reason is None and second.attention_reason is None
    assert plant.plc_state()["weighings"]["acked"] == 2 and item_flag(plant, 8) == 1
    assert consumed(plant, mo, CACO3) == before + Decimal("3.00")


def test_a_flag_write_the_plc_refuses_is_written_again_and_never_parked(plant: System) -> None:
    """CI's fault run (seed 792718497): the PLC answered an item's flag write with an error end code; the
    gateway kept it as "written, not read back", so the next ack came back `outcome_unknown` and the weighing
    waited for a person. A refusal from the CPU means the write was not executed: the next ack writes it."""
    mo = an_mo_with(plant, CACO3)
    before = consumed(plant, mo, CACO3)
    plant.plc("POST", "/faults", {"end_code": 0x2502, "end_code_count": 1, "end_code_writes_only": True})
    plant.plc("POST", "/weighing", {"mo_id": mo, "product_id": CACO3, "kg": 0.6, "item": 3})

    wait_until(lambda: any(r.reported_at or r.attention_reason for r in rows(plant)), 30, what="reported")
    [row] = rows(plant)
    assert row.attention_reason is None and row.acked_at is not None, row.attention_reason
    state = plant.plc_state()
    assert state["fins"]["forced_end_codes"] == 1  # the refusal really answered the flag write
    assert state["weighings"]["acked"] == 1 and item_flag(plant, 3) == 1
    assert row.applied_kg == Decimal("0.60") and consumed(plant, mo, CACO3) == before + Decimal("0.60")
