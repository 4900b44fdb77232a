"""Readiness that says what is wrong (issue 13, defect 6): /healthz bodies and `edgectl status`'s view."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from edgectl.commands.status import health_urls, readiness_view
from shared.health import HealthServer, readiness


def test_readiness_lists_each_failing_check_by_name() -> None:
    ok = readiness({"broker": None, "database": None, "odoo": None}, pending=0)
    assert ok == {"healthy": True, "problems": [], "pending": 0}
    bad = readiness({"broker": None, "database": "unavailable", "odoo": "login refused for 'x' on db 'y'"})
    assert bad["healthy"] is False
    assert bad["problems"] == ["database: unavailable", "odoo: login refused for 'x' on db 'y'"]


def test_health_urls_parse_compose_folded_value() -> None:
    env = {"EDGECTL_HEALTH_URLS": "a=http://a:8080/healthz,b=http://b:8080/healthz, c=http://c:1/healthz,junk"}
    assert health_urls(env) == {
        "a": "http://a:8080/healthz", "b": "http://b:8080/healthz", "c": "http://c:1/healthz"}  # fmt: skip
    assert health_urls({}) == {}


def test_readiness_view_reads_ready_not_ready_and_unreachable_services() -> None:
    good = HealthServer("127.0.0.1", 0, CollectorRegistry(), lambda: readiness({"broker": None})).start()
    bad = HealthServer(
        "127.0.0.1", 0, CollectorRegistry(), lambda: readiness({"odoo": "login refused", "broker": None})
    ).start()
    try:
        view = readiness_view(
            {
                "good": f"http://127.0.0.1:{good.port}/healthz",
                "bad": f"http://127.0.0.1:{bad.port}/healthz",
                "gone": "http://127.0.0.1:1/healthz",
            }
        )
    finally:
        good.stop()
        bad.stop()
    assert view["good"] == {"ready": True, "problems": []}
    assert view["bad"] == {"ready": False, "problems": ["odoo: login refused"]}
    assert view["gone"]["ready"] is False and "unreachable" in view["gone"]["problems"][0]
