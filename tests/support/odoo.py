"""Odoo simulator fixtures and raw JSON-RPC helpers for tests (real HTTP on a free port, no mocks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.odoo.client import OdooClient
from shared.odoo.settings import OdooSettings
from simulators.odoo.server import SimServer, start_server

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
MO_LIST_REPLY = REFERENCE / "odoo" / "mo-list-detailed-2026-03-04.json"


@pytest.fixture
def odoo_sim() -> Iterator[SimServer]:
    """Seeded from the recorded reply plus 20 generated confirmed MOs; a short login cooldown for tests."""
    handle = start_server(extra_mos=20, cooldown_after=5, cooldown_seconds=1.0)
    yield handle
    handle.stop()


def make_client(sim: SimServer, **overrides: Any) -> OdooClient:
    values: dict[str, Any] = {
        "odoo_url": sim.url,
        "odoo_db": "plant",
        "odoo_login": "admin",
        "odoo_password": "admin",
        "odoo_read_timeout": 5.0,
        "odoo_login_backoff_base": 0.05,
        "odoo_login_cooldown": 1.0,
    }
    values.update(overrides)
    return OdooClient(OdooSettings(**values))


@pytest.fixture
def odoo_client(odoo_sim: SimServer) -> Iterator[OdooClient]:
    client = make_client(odoo_sim)
    yield client
    client.close()


def rpc(
    http: requests.Session,
    url: str,
    path: str,
    params: Any = None,
    *,
    method: str = "POST",
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> requests.Response:
    """One raw request: an envelope around ``params`` unless ``body`` is given (a dict, or raw bytes)."""
    if body is None:
        body = {"jsonrpc": "2.0", "method": "call", "params": params if params is not None else {}, "id": 7}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    return http.request(
        method, url + path, data=data, headers=hdrs, params=query, timeout=5, allow_redirects=False
    )


def result(resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text[:300]
    doc = resp.json()
    assert "error" not in doc, doc
    out = doc["result"]
    assert isinstance(out, dict)
    return out


def login(http: requests.Session, url: str, password: str = "admin") -> requests.Response:
    return rpc(http, url, "/web/session/authenticate", {"db": "plant", "login": "admin", "password": password})


def control(url: str, path: str, body: Any = None, method: str = "POST") -> Any:
    resp = requests.request(method, url + path, json=body if body is not None else {}, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()


def sim_state(url: str) -> dict[str, Any]:
    out: dict[str, Any] = control(url, "/_sim/state", method="GET")
    return out


def mo_state(url: str, mo_id: str) -> dict[str, Any]:
    return next(m for m in sim_state(url)["mos"] if m["mo_id"] == mo_id)


def faults(url: str, *items: dict[str, Any]) -> None:
    control(url, "/_sim/faults", {"faults": list(items)})
