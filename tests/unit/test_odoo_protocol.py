"""Reply classification, strict models and settings of the Odoo client (docs/odoo-api.md O1.2, O1.4, O7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.config import ConfigError, load
from shared.odoo.errors import (
    OdooBusinessError,
    OdooProtocolError,
    OdooRouteNotFound,
    OdooServerError,
    OdooSessionExpired,
    OdooTransportError,
)
from shared.odoo.models import Equipment, FailureRecord, Mo, MoListReply, UpdateReply
from shared.odoo.protocol import check_status, decode_reply, envelope, unwrap
from shared.odoo.settings import OdooSettings
from tests.support.odoo import MO_LIST_REPLY

JSON = "application/json"


def _doc(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def test_envelope_is_canonical_and_refuses_context() -> None:
    """O1.1: envelope always; a `context` key would be taken as an equipment code."""
    assert envelope({"mo_id": "X"}, 3) == {"jsonrpc": "2.0", "method": "call", "params": {"mo_id": "X"}, "id": 3}
    with pytest.raises(ValueError):
        envelope({"context": {}}, 1)


def test_session_expiry_is_http_200_code_100() -> None:
    """O1.2 table: code 100 'Odoo Session Expired'."""
    body = {"jsonrpc": "2.0", "id": 1, "error": {"code": 100, "message": "Odoo Session Expired", "data": {}}}
    with pytest.raises(OdooSessionExpired):
        unwrap(decode_reply(200, JSON, _doc(body)))


def test_other_rpc_errors_are_server_errors_with_their_name() -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {
            "code": 200,
            "message": "Odoo Server Error",
            "data": {"name": "odoo.exceptions.AccessDenied", "message": "Access Denied"},
        },
    }
    with pytest.raises(OdooServerError) as info:
        unwrap(decode_reply(200, JSON, _doc(body)))
    assert info.value.name == "odoo.exceptions.AccessDenied" and info.value.message == "Access Denied"
    assert isinstance(info.value, OdooBusinessError)


@pytest.mark.parametrize(
    ("status", "ctype", "body", "exc"),
    [
        (502, "text/html", b"<html><title>502 Bad Gateway</title></html>", OdooTransportError),
        (504, "text/html", b"<html>504</html>", OdooTransportError),
        (500, JSON, b"{}", OdooTransportError),
        (200, "text/html", b"<!DOCTYPE html><html>login</html>", OdooProtocolError),
        (405, "text/html", b"<title>405 Method Not Allowed</title>", OdooProtocolError),
        (400, "text/html", b"Invalid JSON data", OdooProtocolError),
        (200, JSON, b'{"jsonrpc": "2.0", "result": {"sta', OdooProtocolError),
        (200, JSON, b"[1, 2]", OdooProtocolError),
        (200, "", b"", OdooProtocolError),
        (404, JSON, _doc({"error": {"code": 404, "message": "404: Not Found"}}), OdooRouteNotFound),
    ],
)
def test_transport_failures_are_classified(status: int, ctype: str, body: bytes, exc: type[Exception]) -> None:
    with pytest.raises(exc) as info:
        decode_reply(status, ctype, body, endpoint="/api/scada/mo-detail")
    assert "/api/scada/mo-detail" in str(info.value)
    assert isinstance(info.value, OdooTransportError)


def test_html_error_names_the_problem_clearly() -> None:
    with pytest.raises(OdooProtocolError, match="HTML body where JSON was expected"):
        decode_reply(200, "text/html; charset=utf-8", b"<html><body>Odoo</body></html>")


def test_missing_result_is_an_error_unless_allowed() -> None:
    """O1.2: a handler returning None gives no `result` key (only /web/session/check expects that)."""
    doc = decode_reply(200, JSON, _doc({"jsonrpc": "2.0", "id": 1}))
    with pytest.raises(OdooProtocolError):
        unwrap(doc)
    assert unwrap(doc, allow_no_result=True) is None
    with pytest.raises(OdooProtocolError):
        unwrap(decode_reply(200, JSON, _doc({"jsonrpc": "2.0", "result": "ok"})))


def test_result_status_classification() -> None:
    """O7.4: business errors are result.status == 'error' with HTTP 200; health says 'ok'."""
    assert check_status({"status": "success"}) == "success"
    assert check_status({"status": "ok"}) == "ok"
    with pytest.raises(OdooBusinessError, match="MO not found"):
        check_status({"status": "error", "message": "MO not found: X"})
    for odd in ({}, {"status": "done"}, {"status": True}):
        with pytest.raises(OdooProtocolError):
            check_status(odd)


def test_recorded_reply_parses_and_false_becomes_none() -> None:
    """O1.4: bom_code and empty equipment strings are JSON false."""
    reply = MoListReply.model_validate(json.loads(MO_LIST_REPLY.read_text())["result"])
    assert reply.count == 10 and len(reply.data) == 10
    first = reply.data[0]
    assert first.bom_code is None
    assert first.equipment is not None and first.equipment.serial_number is None
    silo = first.components_consumption[0].equipment
    assert silo is not None and silo.manufacturer is None and silo.port == 0
    assert first.schedule_start is not None and first.schedule_start.tzinfo is None


def _mo_doc(**changes: Any) -> dict[str, Any]:
    doc = json.loads(MO_LIST_REPLY.read_text())["result"]["data"][2]
    doc.update(changes)
    return dict(doc)


@pytest.mark.parametrize(
    "changes",
    [
        {"quantity": "1000"},  # numbers as strings are not repaired
        {"quantity": True},
        {"mo_id": 13},
        {"state": "finished"},
        {"product_name": False},  # only Char fields that may be empty tolerate false
        {"schedule_start": "2026-02-24T11:52:06+07:00"},  # Odoo never sends an offset
        {"schedule_start": 1708775526},
        {"bom_code": True},
        {"components_consumption": None},
    ],
)
def test_wrong_types_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Mo.model_validate(_mo_doc(**changes))


def test_missing_keys_are_rejected() -> None:
    doc = _mo_doc()
    del doc["quantity"]
    with pytest.raises(ValidationError, match="quantity"):
        Mo.model_validate(doc)
    with pytest.raises(ValidationError):
        Equipment.model_validate({"id": 1, "name": "SILO A"})


def test_update_reply_without_errors_key_is_full_success() -> None:
    """O4.6/O9: the `errors` key is absent on full success."""
    reply = UpdateReply.model_validate(
        {
            "status": "success",
            "message": "MO updated successfully",
            "mo_id": "X",
            "mo_state": "progress",
            "consumed_items": [],
        }
    )
    assert reply.errors == []


def test_failure_record_dates_are_naive() -> None:
    rec = FailureRecord.model_validate(
        {
            "id": 1,
            "equipment_code": "silo101",
            "description": "d",
            "date": "2026-02-23T13:22:35",
            "duration": False,
        }
    )
    assert rec.date.tzinfo is None and rec.duration is None
    with pytest.raises(ValidationError):
        FailureRecord.model_validate({"id": 1, "equipment_code": "silo101", "description": "d", "date": False})


def test_settings_password_from_file_and_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret-value\n")
    monkeypatch.setenv("ODOO_URL", "https://odoo.example.com/")
    monkeypatch.setenv("ODOO_DB", "plant")
    monkeypatch.setenv("ODOO_LOGIN", "api")
    monkeypatch.setenv("ODOO_PASSWORD_FILE", str(secret))
    monkeypatch.delenv("ODOO_PASSWORD", raising=False)
    settings = load(OdooSettings)
    assert settings.odoo_password.get_secret_value() == "s3cret-value"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    assert settings.odoo_url == "https://odoo.example.com"
    assert settings.tls_verify is True


def test_settings_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ODOO_URL", "ODOO_DB", "ODOO_LOGIN", "ODOO_PASSWORD", "ODOO_PASSWORD_FILE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="ODOO_URL"):
        load(OdooSettings, odoo_url="ftp://x", odoo_db="d", odoo_login="l", odoo_password="p")
    with pytest.raises(ConfigError, match="ODOO_PASSWORD"):
        load(OdooSettings, odoo_url="http://x", odoo_db="d", odoo_login="l")


def test_settings_tls_options(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    base = {"odoo_url": "https://x", "odoo_db": "d", "odoo_login": "l", "odoo_password": "p"}
    assert load(OdooSettings, **base, odoo_ca_bundle=str(ca)).tls_verify == str(ca)
    assert load(OdooSettings, **base, odoo_verify_tls=False).tls_verify is False
    with pytest.raises(ConfigError, match="ODOO_CA_BUNDLE"):
        load(OdooSettings, **base, odoo_ca_bundle=str(tmp_path / "missing.pem"))
