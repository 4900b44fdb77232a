"""OdooClient against the simulator over real HTTP (docs/odoo-api.md O7 traps, docs/architecture.md A6)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

import pytest
import requests

from shared.odoo.client import OdooClient
from shared.odoo.errors import (
    OdooAuthError,
    OdooBusinessError,
    OdooLoginCooldown,
    OdooProtocolError,
    OdooRouteNotFound,
    OdooSessionExpired,
    OdooTransportError,
)
from shared.odoo.mapping import mo_to_batch
from shared.plc.memory_map import load_memory_map
from simulators.odoo.server import SimServer
from tests.support import odoo as support
from tests.support.odoo import control, faults, make_client, mo_state, rpc, sim_state

odoo_sim = support.odoo_sim  # fixture
odoo_client = support.odoo_client  # fixture

LOGIN = "POST /web/session/authenticate"


def _count(url: str, key: str) -> int:
    return int(sim_state(url)["requests"].get(key, 0))


def test_login_list_and_map(odoo_sim: SimServer, odoo_client: OdooClient) -> None:
    """O7.5: envelope; default queue is 10 confirmed MOs; limit 0 = all (8 seeded + 20 generated)."""
    page = odoo_client.list_mos()
    assert len(page) == 10 and {m.state for m in page} == {"confirmed"}
    queue = odoo_client.fetch_queue()
    assert len(queue) == 28 and len({m.mo_id for m in queue}) == 28
    both = odoo_client.list_mos(limit=0, states=["confirmed", "progress"])
    assert {"WH/MO/00011", "WH/MO/00012"} <= {m.mo_id for m in both}
    batch = mo_to_batch(odoo_client.mo_detail("WH/MO/00014"), load_memory_map().equipment_codes)
    assert batch.targets["silo101"] == 41.6 and "silo105" not in batch.targets
    assert odoo_client.session_info is not None and odoo_client.session_info.db == "plant"
    assert _count(odoo_sim.url, LOGIN) == 1


def test_cookie_rotation_on_each_login(odoo_sim: SimServer, odoo_client: OdooClient) -> None:
    """O1.3: each login rotates the sid; the old one is dead, the jar holds the new one."""
    odoo_client.login()
    first = odoo_client._http.cookies["session_id"]
    odoo_client.login()
    second = odoo_client._http.cookies["session_id"]
    assert first != second
    dead = rpc(requests.Session(), odoo_sim.url, "/web/session/check", {}, headers={"X-Openerp-Session-Id": first})
    assert dead.json()["error"]["code"] == 100
    assert odoo_client.check_session() is True


def test_expiry_mid_sequence_relogs_once_and_replays(odoo_sim: SimServer, odoo_client: OdooClient) -> None:
    """O7.2: HTTP 200 + code 100 -> one re-login, then the idempotent call is replayed."""
    odoo_client.list_mos()
    control(odoo_sim.url, "/_sim/expire-sessions")
    assert odoo_client.check_session() is False
    mo = odoo_client.mo_detail("WH/MO/00013")
    assert mo.mo_id == "WH/MO/00013"
    faults(odoo_sim.url, {"kind": "expire_session", "route": "/api/scada/mo/update-with-consumptions"})
    out = odoo_client.report_consumption("WH/MO/00013", None, {"silo101": 190.0})
    assert out.status == "success"
    assert mo_state(odoo_sim.url, "WH/MO/00013")["consumption"]["silo101"] == 190.0
    assert _count(odoo_sim.url, LOGIN) == 3


def test_parallel_expiry_gives_one_serialized_relogin(odoo_sim: SimServer, odoo_client: OdooClient) -> None:
    """O1.3/O7.2: re-logins rotate the sid, so parallel callers must share one re-login."""
    odoo_client.list_mos()
    control(odoo_sim.url, "/_sim/expire-sessions")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            odoo_client.mo_detail("WH/MO/00015")
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert _count(odoo_sim.url, LOGIN) == 2


def test_login_backoff_never_hammers(odoo_sim: SimServer, caplog: pytest.LogCaptureFixture) -> None:
    """O7.3: failures are spaced out; after 5 the client pauses for the cooldown; password never logged."""
    caplog.set_level(logging.DEBUG)
    bad = make_client(odoo_sim, odoo_password="wrong-secret-xyz")
    assert bad.login_error is None
    with pytest.raises(OdooAuthError, match="Access Denied"):
        bad.list_mos()
    # what /healthz reports (issue 13, defect 6): the refusal and Odoo's reason, never the password
    assert (
        bad.login_error is not None and "login refused" in bad.login_error and "Access Denied" in bad.login_error
    )
    with pytest.raises(OdooLoginCooldown) as info:
        bad.list_mos()  # immediately again: refused locally
    assert 0 < info.value.retry_after <= 0.05
    attempts = 1
    deadline = time.monotonic() + 5
    while attempts < 5 and time.monotonic() < deadline:
        try:
            bad.login()
        except OdooLoginCooldown as exc:
            time.sleep(exc.retry_after)
        except OdooAuthError:
            attempts += 1
    assert _count(odoo_sim.url, LOGIN) == 5
    with pytest.raises(OdooLoginCooldown) as info:
        bad.login()
    assert info.value.retry_after > 0.5  # the full cooldown now
    assert _count(odoo_sim.url, LOGIN) == 5  # no request while paused
    # The server has locked this IP: even the right password is refused, and the client backs off too.
    good = make_client(odoo_sim)
    with pytest.raises(OdooLoginCooldown):
        good.login()
    with pytest.raises(OdooLoginCooldown):
        good.login()
    assert _count(odoo_sim.url, LOGIN) == 6
    time.sleep(1.05)
    assert good.login().uid == 2
    assert good.login_error is None  # a successful login clears it
    assert "wrong-secret-xyz" not in caplog.text  # neither our logs nor urllib3/sim debug lines show it


def test_partial_result_is_reported_as_partial(odoo_sim: SimServer, odoo_client: OdooClient) -> None:
    """O4.6/O7.7: status success with errors -> partial, with the MO re-read."""
    out = odoo_client.report_consumption("WH/MO/00014", 1000.0, {"silo101": 41.0, "silo105": 3.0, "PLC01": 120.0})
    assert out.status == "partial" and out.partial
    assert out.errors == [
        "silo105: No raw material move found for this equipment",
        "PLC01: No raw material move found for this equipment",
    ]
    assert out.mo is not None and out.mo.state == "to_close" and out.mo.produced_qty == 1000.0
    assert [c.equipment_code for c in out.consumed_items] == ["silo101"]


def test_business_errors_carry_the_reread_mo(odoo_sim: SimServer, odoo_client: OdooClient) -> None:
    """O5.3/O7.9: after a failed write the client re-reads mo-detail: silo101 stayed written."""
    url = odoo_sim.url
    control(
        url, "/_sim/move-error", {"mo_id": "WH/MO/00016", "equipment_code": "silo102", "message": "Lot required"}
    )
    with pytest.raises(OdooBusinessError, match="Lot required") as info:
        odoo_client.report_consumption("WH/MO/00016", None, {"silo101": 70.0, "silo102": 110.0})
    mo = info.value.mo
    assert mo is not None and mo.state == "progress"
    consumed = {c.equipment.code: c.consumed for c in mo.components_consumption if c.equipment}
    assert consumed["silo101"] == 70.0 and consumed["silo102"] == 0.0
    with pytest.raises(OdooBusinessError, match="not found") as info:
        odoo_client.report_consumption("WH/MO/99999", None, {"silo101": 1.0})
    assert info.value.mo is None


def test_state_change_between_list_and_update(odoo_sim: SimServer, odoo_client: OdooClient) -> None:
    """O8 E: an operator cancels the MO after we listed it."""
    assert "WH/MO/00017" in {m.mo_id for m in odoo_client.fetch_queue()}
    faults(odoo_sim.url, {"kind": "state_change", "mo_id": "WH/MO/00017", "state": "cancel"})
    with pytest.raises(OdooBusinessError, match="in state") as info:
        odoo_client.report_consumption("WH/MO/00017", 1000.0, {"silo101": 70.0})
    assert info.value.mo is not None and info.value.mo.state == "cancel"


@pytest.mark.parametrize(
    ("fault", "exc"),
    [
        ({"kind": "http_error", "status": 502}, OdooTransportError),
        ({"kind": "http_error", "status": 504}, OdooTransportError),
        ({"kind": "drop"}, OdooTransportError),
        ({"kind": "html"}, OdooProtocolError),
        ({"kind": "bad_json"}, OdooProtocolError),
        ({"kind": "not_found"}, OdooRouteNotFound),
        ({"kind": "latency", "seconds": 1.0}, OdooTransportError),
    ],
)
def test_transport_faults_are_classified(
    odoo_sim: SimServer, fault: dict[str, object], exc: type[Exception]
) -> None:
    client = make_client(odoo_sim, odoo_read_timeout=0.5)
    client.login()
    faults(odoo_sim.url, {**fault, "route": "/api/scada/mo-detail"})
    with pytest.raises(exc) as info:
        client.mo_detail("WH/MO/00013")
    assert isinstance(info.value, OdooTransportError) and info.value.outcome_unknown
    assert client.mo_detail("WH/MO/00013").mo_id == "WH/MO/00013"  # one-shot fault: next call works


def test_connection_refused_is_a_transport_error_with_known_outcome(odoo_sim: SimServer) -> None:
    client = make_client(odoo_sim, odoo_url="http://127.0.0.1:9")
    with pytest.raises(OdooTransportError) as info:
        client.mo_detail("WH/MO/00013")
    assert info.value.outcome_unknown is False


def test_mark_done_is_verified(odoo_sim: SimServer, odoo_client: OdooClient) -> None:
    """O4.7/O7.8: success != done; once done, calling again reports done without a 2nd mark-done."""
    url = odoo_sim.url
    odoo_client.report_consumption("WH/MO/00018", 1000.0, {"silo101": 96.0, "silo102": 150.0})
    out = odoo_client.mark_done("WH/MO/00018", 1000.0)
    assert out.done is False and out.state == "to_close"  # warning BoM, consumption off plan
    control(url, "/_sim/config", {"consumption": "flexible"})
    out = odoo_client.mark_done("WH/MO/00018", 1000.0, date_end_actual=datetime(2026, 3, 4, 10, 0, 0))
    assert out.done and out.state == "done" and not out.already_done
    again = odoo_client.mark_done("WH/MO/00018", 1000.0)
    assert again.done and again.already_done
    assert _count(url, "POST /api/scada/mo/mark-done") == 2
    with pytest.raises(ValueError):
        odoo_client.mark_done("WH/MO/00019", 0)
    with pytest.raises(OdooBusinessError, match="quantity to produce must be positive") as info:
        odoo_client.mark_done("WH/MO/00019", 1000.0)
    assert info.value.mo is not None and info.value.mo.state == "confirmed"


def test_mark_done_reply_lost_then_retry(odoo_sim: SimServer, odoo_client: OdooClient) -> None:
    """O5.2: mark-done is not idempotent. The reply is lost after Odoo closed the MO; the retry sees done."""
    url = odoo_sim.url
    control(url, "/_sim/config", {"consumption": "flexible"})
    odoo_client.report_consumption("WH/MO/00019", 1000.0, {"silo101": 70.0})
    faults(url, {"kind": "http_error", "status": 502, "when": "after", "route": "/api/scada/mo/mark-done"})
    with pytest.raises(OdooTransportError):
        odoo_client.mark_done("WH/MO/00019", 1000.0)
    assert mo_state(url, "WH/MO/00019")["state"] == "done"
    out = odoo_client.mark_done("WH/MO/00019", 1000.0)
    assert out.done and out.already_done
    assert _count(url, "POST /api/scada/mo/mark-done") == 1


def test_mark_done_after_session_expiry_is_checked_not_blindly_replayed(
    odoo_sim: SimServer, odoo_client: OdooClient
) -> None:
    url = odoo_sim.url
    control(url, "/_sim/config", {"consumption": "flexible"})
    odoo_client.report_consumption("WH/MO/00020", 1000.0, {"silo101": 90.0})
    faults(url, {"kind": "expire_session", "route": "/api/scada/mo/mark-done"})
    out = odoo_client.mark_done("WH/MO/00020", 1000.0)
    assert out.done
    assert _count(url, "POST /api/scada/mo/mark-done") == 2  # the first never ran (code 100 before the handler)


def test_cancel_idempotent(odoo_sim: SimServer, odoo_client: OdooClient) -> None:
    """O4.8."""
    first = odoo_client.cancel("WH/MO/00013")
    assert first.state == "cancel" and not first.already_cancelled
    again = odoo_client.cancel("WH/MO/00013")
    assert again.state == "cancel" and again.already_cancelled
    control(odoo_sim.url, "/_sim/mo-state", {"mo_id": "WH/MO/00014", "state": "done"})
    with pytest.raises(OdooBusinessError, match="Cannot cancel") as info:
        odoo_client.cancel("WH/MO/00014")
    assert info.value.mo is not None and info.value.mo.state == "done"


def test_failure_report_and_lookup(odoo_sim: SimServer, odoo_client: OdooClient) -> None:
    """O4.10: naive UTC date, T output; lookup finds it; ensure does not post twice."""
    when = datetime(2026, 2, 23, 13, 22, 35, 123456)
    rec = odoo_client.report_failure("silo101", "START_FAILURE", when, duration="00:05")
    assert rec.date == datetime(2026, 2, 23, 13, 22, 35) and rec.duration_minutes == 5
    found = odoo_client.find_failure("silo101", "START_FAILURE", when)
    assert found is not None and found.id == rec.id
    assert odoo_client.find_failure("silo101", "OTHER", when) is None
    assert odoo_client.ensure_failure_reported("silo101", "START_FAILURE", when).id == rec.id
    assert len(sim_state(odoo_sim.url)["failures"]) == 1
    from datetime import UTC

    with pytest.raises(ValueError):
        odoo_client.report_failure("silo101", "x", datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(OdooBusinessError, match="not found"):
        odoo_client.report_failure("SILO101", "x", when)


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "drop", "when": "after"},
        {"kind": "http_error", "status": 502, "when": "after"},
        {"kind": "latency", "seconds": 0.8},
    ],
)
def test_failure_retries_never_duplicate(odoo_sim: SimServer, fault: dict[str, object]) -> None:
    """O5.2: the POST is not idempotent. Odoo stored the record but the reply was lost; the retry looks first."""
    client = make_client(odoo_sim, odoo_read_timeout=0.4)
    when = datetime(2026, 3, 1, 8, 0, 0)
    faults(odoo_sim.url, {**fault, "route": "/api/scada/equipment-failure", "method": "POST"})
    with pytest.raises(OdooTransportError) as info:
        client.report_failure("silo105", "MOTOR_OVERLOAD", when)
    assert info.value.outcome_unknown
    time.sleep(0.6)  # let a slow server finish its commit
    rec = client.ensure_failure_reported("silo105", "MOTOR_OVERLOAD", when)
    again = client.ensure_failure_reported("silo105", "MOTOR_OVERLOAD", when)
    assert rec.id == again.id
    assert [f["description"] for f in sim_state(odoo_sim.url)["failures"]] == ["MOTOR_OVERLOAD"]


def test_failure_post_after_session_expiry_posts_once(odoo_sim: SimServer, odoo_client: OdooClient) -> None:
    odoo_client.list_mos()
    faults(odoo_sim.url, {"kind": "expire_session", "route": "/api/scada/equipment-failure", "method": "POST"})
    rec = odoo_client.report_failure("lq114", "PUMP_FAILURE", datetime(2026, 3, 2, 9, 30))
    assert rec.equipment_code == "lq114"
    assert len(sim_state(odoo_sim.url)["failures"]) == 1


def test_session_expiry_on_non_idempotent_raw_call_is_not_replayed(
    odoo_sim: SimServer, odoo_client: OdooClient
) -> None:
    """The generic layer replays only idempotent calls; a non-idempotent one surfaces OdooSessionExpired."""
    odoo_client.list_mos()
    control(odoo_sim.url, "/_sim/expire-sessions")
    with pytest.raises(OdooSessionExpired):
        odoo_client._call(
            "POST",
            "/api/scada/equipment-failure",
            {"equipment_code": "silo101", "description": "x"},
            idempotent=False,
        )
    assert sim_state(odoo_sim.url)["failures"] == []
    assert odoo_client.check_session() is True  # re-logged in
