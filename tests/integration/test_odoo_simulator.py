"""The Odoo simulator behaves like grt_scada as docs/odoo-api.md describes it (raw HTTP, no client code)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from simulators.odoo.server import SimServer, start_server
from tests.support import odoo as support
from tests.support.odoo import (
    MO_LIST_REPLY,
    control,
    faults,
    login,
    mo_state,
    result,
    rpc,
    sim_state,
)

odoo_sim = support.odoo_sim  # fixture


@pytest.fixture
def http(odoo_sim: SimServer) -> Iterator[requests.Session]:
    s = requests.Session()
    assert login(s, odoo_sim.url).status_code == 200
    yield s
    s.close()


def _update(http: requests.Session, url: str, payload: dict[str, object]) -> dict[str, object]:
    return result(rpc(http, url, "/api/scada/mo/update-with-consumptions", body=payload))  # plain body, like W:


def test_seed_reproduces_the_recorded_reply() -> None:
    """docs/odoo-api.md O4.4: seeded from the live reply; with caps off it answers the recording verbatim
    (the recording shows consumed 352 > to_consume 300 for WH/MO/00011, which the capping code would hide)."""
    recorded = json.loads(MO_LIST_REPLY.read_text())["result"]
    with start_server(list_caps=False) as sim:
        s = requests.Session()
        login(s, sim.url)
        got = result(
            rpc(s, sim.url, "/api/scada/mo-list-detailed", {"states": ["confirmed", "progress"], "limit": 0})
        )
    by_id = {m["mo_id"]: m for m in got["data"]}
    for mo in recorded["data"]:
        assert by_id[mo["mo_id"]] == mo


def test_list_defaults_order_and_caps(odoo_sim: SimServer, http: requests.Session) -> None:
    """O4.4: default states ['confirmed'], limit 10, order date_planned_start asc; O4.4 step 3 caps consumed."""
    r = result(rpc(http, odoo_sim.url, "/api/scada/mo-list-detailed", {}))
    assert r["count"] == 10 and {m["state"] for m in r["data"]} == {"confirmed"}
    starts = [m["schedule_start"] for m in r["data"]]
    assert starts == sorted(starts) and r["data"][0]["mo_id"] == "WH/MO/00013"
    allmos = result(
        rpc(http, odoo_sim.url, "/api/scada/mo-list-detailed", {"limit": 0, "states": "confirmed,progress"})
    )
    assert allmos["count"] == 30
    mo11 = next(m for m in allmos["data"] if m["mo_id"] == "WH/MO/00011")
    pollar = next(c for c in mo11["components_consumption"] if c["equipment"]["code"] == "silo103")
    assert pollar["consumed"] == 300.0  # 352 capped at the BoM qty
    weird = result(rpc(http, odoo_sim.url, "/api/scada/mo-list-detailed", {"limit": "x", "states": 5}))
    assert weird["count"] == 10


def test_envelope_only_routes_ignore_plain_bodies(odoo_sim: SimServer, http: requests.Session) -> None:
    """O1.1/O7.5: mo-detail with a plain body answers 'mo_id is required'."""
    r = result(rpc(http, odoo_sim.url, "/api/scada/mo-detail", body={"mo_id": "WH/MO/00013"}))
    assert r == {"status": "error", "message": "mo_id is required"}
    ok = result(rpc(http, odoo_sim.url, "/api/scada/mo-detail", {"mo_id": "WH/MO/00013"}))
    assert ok["data"]["mo_id"] == "WH/MO/00013"
    by_id = result(rpc(http, odoo_sim.url, "/api/scada/mo-detail", {"mo_id": "13"}))  # digits = database id (O4.5)
    assert by_id["data"]["mo_id"] == "WH/MO/00013"


def test_transport_errors_match_odoo(odoo_sim: SimServer, http: requests.Session) -> None:
    """O1.1/O1.2: wrong method 405 HTML, bad JSON 400 HTML, unknown path JSON 404, GET needs a JSON body."""
    url = odoo_sim.url
    r = rpc(http, url, "/api/scada/health", {}, method="POST")
    assert r.status_code == 405 and r.headers["Content-Type"].startswith("text/html")
    r = rpc(http, url, "/api/scada/health", body=b"", method="GET")
    assert r.status_code == 400 and "Invalid JSON data" in r.text
    r = rpc(http, url, "/api/scada/nope", {})
    assert r.status_code == 404 and r.json()["error"]["code"] == 404
    assert r.json()["error"]["data"]["name"] == "werkzeug.exceptions.NotFound"
    r = http.post(url + "/api/scada/mo-detail", data="mo_id=1", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and "type 'json'" in r.text
    anon = requests.post(
        url + "/api/scada/mo-detail", data="x", headers={"Content-Type": "text/plain"}, allow_redirects=False
    )
    assert anon.status_code == 302 and anon.headers["Location"].startswith("/web/login?redirect=")
    health = result(rpc(http, url, "/api/scada/health", {}, method="GET"))
    assert health["status"] == "ok" and "+" not in health["timestamp"]


def test_no_session_is_code_100_and_id_is_echoed(odoo_sim: SimServer) -> None:
    """O1.2/O8 B: auth='user' without a session is HTTP 200 + error code 100."""
    r = rpc(requests.Session(), odoo_sim.url, "/api/scada/mo-detail", {"mo_id": "WH/MO/00013"})
    doc = r.json()
    assert r.status_code == 200 and doc["id"] == 7
    assert doc["error"]["code"] == 100 and doc["error"]["message"] == "Odoo Session Expired"
    assert doc["error"]["data"]["name"] == "odoo.http.SessionExpiredException"


def test_scada_authenticate_rotates_and_returns_the_stale_sid(odoo_sim: SimServer) -> None:
    """O1.3/O2.1: the body's session_id is the pre-rotation sid and is dead; only Set-Cookie works."""
    s = requests.Session()
    r = rpc(
        s, odoo_sim.url, "/api/scada/authenticate", body={"db": "plant", "login": "admin", "password": "admin"}
    )
    body_sid = result(r)["session_id"]
    cookie_sid = s.cookies["session_id"]
    assert (
        body_sid != cookie_sid
        and "HttpOnly" in r.headers["Set-Cookie"]
        and "Max-Age=7776000" in r.headers["Set-Cookie"]
    )
    dead = rpc(
        requests.Session(), odoo_sim.url, "/web/session/check", {}, headers={"X-Openerp-Session-Id": body_sid}
    )
    assert dead.json()["error"]["code"] == 100
    live = rpc(
        requests.Session(), odoo_sim.url, "/web/session/check", {}, headers={"X-Openerp-Session-Id": cookie_sid}
    )
    assert live.json() == {"jsonrpc": "2.0", "id": 7}  # no result key (O2.3)
    assert "Set-Cookie" not in live.headers  # explicit sessions get no cookie
    via_query = rpc(requests.Session(), odoo_sim.url, "/web/session/check", {}, query={"session_id": cookie_sid})
    assert "error" not in via_query.json()
    bad = rpc(s, odoo_sim.url, "/api/scada/authenticate", body={"login": "admin", "password": "nope"})
    assert result(bad) == {"status": "error", "message": "Access Denied"}
    missing = rpc(s, odoo_sim.url, "/api/scada/authenticate", body={"login": "admin"})
    assert result(missing)["message"] == "login and password are required"


def test_web_authenticate_has_no_session_id_and_bad_password_is_code_200(odoo_sim: SimServer) -> None:
    """O2.2: session_info without session_id; wrong password is JSON-RPC error 200 AccessDenied."""
    s = requests.Session()
    info = result(login(s, odoo_sim.url))
    assert info["server_version"] == "14.0" and "session_id" not in info and info["uid"] == 2
    err = login(requests.Session(), odoo_sim.url, password="wrong").json()["error"]
    assert err["code"] == 200 and err["data"]["name"] == "odoo.exceptions.AccessDenied"
    assert err["data"]["message"] == "Access Denied"
    nodb = rpc(
        requests.Session(), odoo_sim.url, "/web/session/authenticate", {"login": "admin", "password": "admin"}
    )
    assert nodb.json()["error"]["code"] == 200


def test_login_cooldown_after_five_failures(odoo_sim: SimServer) -> None:
    """O1.3: 5 failures per IP -> refused for the cooldown even with the right password; success resets."""
    s = requests.Session()
    for _ in range(5):
        assert login(s, odoo_sim.url, password="bad").json()["error"]["data"]["message"] == "Access Denied"
    refused = login(s, odoo_sim.url).json()["error"]["data"]["message"]
    assert refused.startswith("Too many login failures")
    r = rpc(s, odoo_sim.url, "/api/scada/authenticate", body={"login": "admin", "password": "admin"})
    assert result(r)["message"].startswith("Too many login failures")
    control(odoo_sim.url, "/_sim/config", {"reset_cooldown": True})
    assert "result" in login(s, odoo_sim.url).json()


def test_session_gc_after_ttl(odoo_sim: SimServer, http: requests.Session) -> None:
    """O1.3: session files older than 7 days are deleted even while in use."""
    control(odoo_sim.url, "/_sim/age-sessions", {"seconds": 6 * 86400})
    assert "error" not in rpc(http, odoo_sim.url, "/web/session/check", {}).json()
    control(odoo_sim.url, "/_sim/age-sessions", {"seconds": 2 * 86400})
    assert rpc(http, odoo_sim.url, "/web/session/check", {}).json()["error"]["code"] == 100


def test_update_set_semantics_and_state(odoo_sim: SimServer, http: requests.Session) -> None:
    """O4.6: SET per equipment, <= 0 skipped, first update leaves 'confirmed', repeat is idempotent."""
    url = odoo_sim.url
    payload = {"mo_id": "WH/MO/00014", "silo101": 41.0, "silo102": 160.0, "silo103": 0}
    r = _update(http, url, payload)
    assert r["status"] == "success" and "errors" not in r and r["mo_state"] == "progress"
    assert [c["equipment_code"] for c in r["consumed_items"]] == ["silo101", "silo102"]
    r2 = _update(http, url, payload)
    assert r2["mo_state"] == "progress"
    cons = mo_state(url, "WH/MO/00014")["consumption"]
    assert cons["silo101"] == 41.0 and cons["silo102"] == 160.0 and cons["silo103"] == 0.0
    r3 = _update(http, url, {"mo_id": "WH/MO/00014", "quantity": 1000.0})
    assert r3["mo_state"] == "to_close" and r3["updated_finished_qty"] == 1000.0
    listed = result(rpc(http, url, "/api/scada/mo-list-detailed", {"limit": 0}))
    assert "WH/MO/00014" not in {m["mo_id"] for m in listed["data"]}  # drops out of the default queue


def test_update_key_classification_and_partial(odoo_sim: SimServer, http: requests.Session) -> None:
    """O4.6: unknown keys are equipment codes; errors listed but status still success; PLC01 has no move
    (O3.2 asymmetry); case-sensitive codes."""
    r = _update(
        http,
        odoo_sim.url,
        {
            "mo_id": "WH/MO/00015",
            "silo101": 52.0,
            "SILO102": 5,
            "PLC01": 3,
            "context": {"tz": "x"},
            "timestamp": 1,
        },
    )
    assert r["status"] == "success" and r["message"] == "MO updated with some errors"
    assert r["errors"] == [
        "SILO102: Equipment not found",
        "PLC01: No raw material move found for this equipment",
        "context: Invalid quantity value \"{'tz': 'x'}\"",
        "timestamp: Equipment not found",
    ]
    assert mo_state(odoo_sim.url, "WH/MO/00015")["consumption"]["silo101"] == 52.0


def test_update_rejections(odoo_sim: SimServer, http: requests.Session) -> None:
    """O4.6: quantity 0 rejects the whole call; done/cancel refused; unknown MO."""
    url = odoo_sim.url
    r = _update(http, url, {"mo_id": "WH/MO/00016", "quantity": 0, "silo101": 70.0})
    assert r == {"status": "error", "message": "Finished quantity must be greater than 0"}
    assert mo_state(url, "WH/MO/00016")["consumption"].get("silo101", 0.0) == 0.0
    assert _update(http, url, {"mo_id": "WH/MO/99999"})["message"] == 'Manufacturing Order "WH/MO/99999" not found'
    control(url, "/_sim/mo-state", {"mo_id": "WH/MO/00016", "state": "cancel"})
    r = _update(http, url, {"mo_id": "WH/MO/00016", "silo101": 1})
    assert r["message"] == 'Cannot update MO "WH/MO/00016" in state "cancel"'


def test_non_atomic_write_on_move_error(odoo_sim: SimServer, http: requests.Session) -> None:
    """O5.3 + O4.6 trap: silo A applied, then a UserError on silo B; status error but A stays committed."""
    url = odoo_sim.url
    control(url, "/_sim/move-error", {"mo_id": "WH/MO/00017", "equipment_code": "silo102", "move_lines": 2})
    r = _update(http, url, {"mo_id": "WH/MO/00017", "silo101": 70.0, "silo102": 110.0})
    assert r["status"] == "error" and "work directly with the move lines" in r["message"]
    cons = mo_state(url, "WH/MO/00017")["consumption"]
    assert cons["silo101"] == 70.0 and cons["silo102"] == 0.0


def test_mark_done_false_success_and_guards(odoo_sim: SimServer, http: requests.Session) -> None:
    """O4.7: qty_producing 0 -> error; consumption off the BoM -> success but still open; T format fails
    after the finished-qty write; flexible + full qty -> done; a 2nd call errors."""
    url = odoo_sim.url
    md = "/api/scada/mo/mark-done"
    r = result(rpc(http, url, md, body={"mo_id": "WH/MO/00018", "finished_qty": 1000}))
    assert r == {"status": "error", "message": "The quantity to produce must be positive!"}
    _update(http, url, {"mo_id": "WH/MO/00018", "quantity": 1000.0, "silo101": 96.0})
    r = result(rpc(http, url, md, body={"mo_id": "WH/MO/00018", "finished_qty": 1000}))
    assert r["status"] == "success" and r["message"] == "Manufacturing order marked as done"
    assert mo_state(url, "WH/MO/00018")["state"] == "to_close"  # success != done
    r = result(
        rpc(
            http,
            url,
            md,
            body={"mo_id": "WH/MO/00018", "finished_qty": 990, "date_end_actual": "2026-03-04T10:00:00"},
        )
    )
    assert r["status"] == "error" and "does not match format" in r["message"]
    assert mo_state(url, "WH/MO/00018")["produced_qty"] == 990  # written before the failure (O5.3)
    control(url, "/_sim/config", {"consumption": "flexible"})
    r = result(
        rpc(
            http,
            url,
            md,
            body={"mo_id": "WH/MO/00018", "finished_qty": 1000, "date_end_actual": "2026-03-04 10:00:00"},
        )
    )
    assert r["status"] == "success"
    done = mo_state(url, "WH/MO/00018")
    assert (
        done["state"] == "done" and done["product_qty"] == 1000 and done["date_finished"] != "2026-03-04T10:00:00"
    )
    again = result(rpc(http, url, md, body={"mo_id": "WH/MO/00018", "finished_qty": 1000}))
    assert again == {"status": "error", "message": "No finished product move found for this MO"}
    for body, msg in [
        ({}, "mo_id is required"),
        ({"mo_id": "WH/MO/00019"}, "finished_qty is required"),
        ({"mo_id": "WH/MO/00019", "finished_qty": "x"}, "finished_qty must be a number"),
        ({"mo_id": "WH/MO/00019", "finished_qty": 0}, "finished_qty must be > 0"),
    ]:
        assert result(rpc(http, url, md, body=body))["message"] == msg
    assert (
        result(rpc(http, url, "/api/scada/mo/19/mark-done", body={"mo_id": "WH/MO/00020", "finished_qty": 1}))[
            "message"
        ]
        == "mo_id mismatch: WH/MO/00020"
    )


def test_mark_done_closes_a_warning_bom_when_consumption_matches(
    odoo_sim: SimServer, http: requests.Session
) -> None:
    """O4.7 + O3.2: silos via update-with-consumptions; PLC01 components cannot be set by code, only per
    product via material-consumption (replace, O4.9). With every component at plan and the full quantity the
    MO of a 'warning' BoM really closes; product_qty becomes the produced qty."""
    url = odoo_sim.url
    mo = result(rpc(http, url, "/api/scada/mo-detail", {"mo_id": "WH/MO/00021"}))["data"]
    silos = {
        c["equipment"]["code"]: c["to_consume"]
        for c in mo["components_consumption"]
        if c["equipment"]["code"] != "PLC01"
    }
    manual = [c for c in mo["components_consumption"] if c["equipment"]["code"] == "PLC01"]
    assert manual, "the recorded recipes carry PLC01 components"
    _update(http, url, {"mo_id": "WH/MO/00021", "quantity": 1000.0, "PLC01": 1.0, **silos})
    md = {"mo_id": "WH/MO/00021", "finished_qty": 1000}
    assert result(rpc(http, url, "/api/scada/mo/mark-done", body=md))["status"] == "success"
    assert mo_state(url, "WH/MO/00021")["state"] == "to_close"  # PLC01 components still at 0: stays open
    for comp in manual:
        r = result(
            rpc(
                http,
                url,
                "/api/scada/material-consumption",
                body={
                    "equipment_id": "PLC01",
                    "product_id": comp["product_id"],
                    "quantity": comp["to_consume"],
                    "timestamp": "2026-01-01T00:00:00",
                    "mo_id": "WH/MO/00021",
                    "update_mode": "replace",
                },
            )
        )
        assert r["status"] == "success", r
    assert result(rpc(http, url, "/api/scada/mo/mark-done", body=md))["status"] == "success"
    assert mo_state(url, "WH/MO/00021")["state"] == "done"


def test_cancel_is_idempotent_and_done_is_refused(odoo_sim: SimServer, http: requests.Session) -> None:
    """O4.8."""
    url = odoo_sim.url
    c = "/api/scada/mo/cancel"
    r = result(rpc(http, url, c, body={"mo_id": "WH/MO/00019"}))
    assert r["message"] == "Manufacturing order cancelled successfully" and r["mo_state"] == "cancel"
    r = result(rpc(http, url, c, body={"mo_id": "WH/MO/00019"}))
    assert r["message"] == "Manufacturing order already cancelled" and r["status"] == "success"
    control(url, "/_sim/mo-state", {"mo_id": "WH/MO/00020", "state": "done"})
    r = result(rpc(http, url, c, body={"mo_id": "WH/MO/00020"}))
    assert r == {"status": "error", "message": 'Cannot cancel MO "WH/MO/00020" in state "done"'}


def test_equipment_failure_is_not_idempotent_and_dates(odoo_sim: SimServer, http: requests.Session) -> None:
    """O4.10: each POST creates a record; T output; offsets and Z rejected; bad duration still committed."""
    url = odoo_sim.url
    ep = "/api/scada/equipment-failure"
    body = {"equipment_code": "silo101", "description": "START_FAILURE", "date": "2026-02-23T13:22"}
    a = result(rpc(http, url, ep, body=body))
    b = result(rpc(http, url, ep, body=body))
    assert a["data"]["id"] != b["data"]["id"] and a["data"]["date"] == "2026-02-23T13:22:00"
    assert a["data"]["duration"] is False
    assert result(rpc(http, url, ep, body={**body, "date": "2026-02-23T13:22:35Z"}))["message"].startswith(
        "Invalid date format"
    )
    assert (
        "naive datetime"
        in result(rpc(http, url, ep, body={**body, "date": "2026-02-23 13:22:35+07:00"}))["message"]
    )
    bad = result(rpc(http, url, ep, body={**body, "duration": "24:00"}))
    assert bad["status"] == "error" and "tidak valid" in bad["message"]
    assert (
        result(rpc(http, url, ep, body={**body, "equipment_code": "SILO101"}))["message"]
        == 'Equipment "SILO101" not found'
    )
    listed = result(rpc(http, url, ep, {}, method="GET", query={"equipment_code": "silo101"}))
    assert listed["count"] == 3  # two good posts + the committed bad-duration record
    assert listed["data"][0]["id"] > listed["data"][1]["id"]  # date desc, id desc
    report = result(
        rpc(
            http,
            url,
            "/api/scada/equipment-failure-report",
            body={"date_from": "2026-02-01", "date_to": "2026-02-28"},
        )
    )
    assert report["summary"]["total_failures"] == 3
    assert report["summary"]["by_equipment"][0]["failure_count"] == 0  # the read_group naming bug
    ext = result(rpc(http, url, "/api/scada/failure-report", body=body))
    assert ext["data"]["date"] == "2026-02-23 13:22:00"  # space, unlike O4.10


def test_fault_injection(odoo_sim: SimServer, http: requests.Session) -> None:
    """O8 E: 502 HTML, dropped connection, JSON 404 for a route, HTML body, forced expiry, state change."""
    url = odoo_sim.url
    detail = "/api/scada/mo-detail"
    faults(url, {"kind": "http_error", "status": 502, "route": detail})
    r = rpc(http, url, detail, {"mo_id": "WH/MO/00013"})
    assert r.status_code == 502 and "Bad Gateway" in r.text
    faults(url, {"kind": "drop", "route": detail})
    with pytest.raises(requests.ConnectionError):
        rpc(http, url, detail, {"mo_id": "WH/MO/00013"})
    faults(url, {"kind": "not_found", "route": detail})
    assert rpc(http, url, detail, {"mo_id": "WH/MO/00013"}).status_code == 404
    faults(url, {"kind": "html", "route": detail})
    assert rpc(http, url, detail, {"mo_id": "WH/MO/00013"}).headers["Content-Type"].startswith("text/html")
    faults(url, {"kind": "expire_session", "route": detail})
    assert rpc(http, url, detail, {"mo_id": "WH/MO/00013"}).json()["error"]["code"] == 100
    login(http, url)
    faults(
        url,
        {
            "kind": "state_change",
            "mo_id": "WH/MO/00013",
            "state": "done",
            "route": "/api/scada/mo/update-with-consumptions",
        },
    )
    r = _update(http, url, {"mo_id": "WH/MO/00013", "silo101": 190.0})
    assert r["message"] == 'Cannot update MO "WH/MO/00013" in state "done"'
    assert result(rpc(http, url, detail, {"mo_id": "WH/MO/00013"}))["status"] == "success"  # faults were one-shot
    assert sim_state(url)["faults"] == []


def test_generated_mos_are_confirmed_and_realistic(odoo_sim: SimServer) -> None:
    """O8 C: 20+ confirmed MOs on silo101..lq115 and PLC01."""
    mos = [m for m in sim_state(odoo_sim.url)["mos"] if m["id"] > 20]
    assert len(mos) == 20 and {m["state"] for m in mos} == {"confirmed"}
    codes = {mv["equipment"] for m in mos for mv in m["moves"]}
    assert {"silo101", "lq114"} <= codes and None in codes  # PLC01 components fall back to the MO equipment


def test_started_mos_are_in_progress_never_listed_as_confirmed_and_take_consumption(
    http: requests.Session,
) -> None:
    """--started-mos: MOs a person already started (progress): the planner's list (confirmed) never shows them,
    yet material-consumption books on them (the soak's hand weighings)."""
    with start_server(seed=None, extra_mos=2, started_mos=2) as sim:
        s = requests.Session()
        assert login(s, sim.url).status_code == 200
        states = {m["mo_id"]: m["state"] for m in sim_state(sim.url)["mos"]}
        assert sorted(states.values()) == ["confirmed", "confirmed", "progress", "progress"]
        listed = result(rpc(s, sim.url, "/api/scada/mo-list-detailed", {"state": ["confirmed"], "limit": 0}))
        started = sorted(m for m, st in states.items() if st == "progress")
        assert not {m["mo_id"] for m in listed["data"]} & set(started), listed
        booked = result(
            rpc(
                s,
                sim.url,
                "/api/scada/material-consumption",
                {
                    "equipment_id": "PLC01",
                    "product_id": 600,
                    "quantity": 0.7,
                    "mo_id": started[0],
                    "timestamp": "2026-01-01 00:00:00",
                },
            )
        )
        assert booked["applied_qty"] == pytest.approx(0.7), booked


def test_cli_serves_over_http() -> None:
    """`odoo-sim --port P --extra-mos N` as a subprocess: login and the queue work, SIGTERM stops it."""
    import subprocess
    import sys
    import time

    from deploy.servers import free_port, wait_for_tcp

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulators.odoo",
            "--port",
            str(port),
            "--extra-mos",
            "25",
            "--log-level",
            "WARNING",
        ],
    )
    try:
        wait_for_tcp(port)
        s = requests.Session()
        url = f"http://127.0.0.1:{port}"
        assert "result" in login(s, url).json()
        queue = result(rpc(s, url, "/api/scada/mo-list-detailed", {"limit": 0}))
        assert queue["count"] == 33  # 8 recorded confirmed MOs + 25 generated
    finally:
        proc.terminate()
        started = time.monotonic()
        assert proc.wait(10) == 0 and time.monotonic() - started < 5
