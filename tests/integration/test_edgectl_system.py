"""edgectl against the whole running system (tests.support.system: Mosquitto, PostgreSQL, plc-sim, odoo-sim and
the four services as processes). Every call is the real `edgectl` console script as a subprocess that finds the
system only through a connection file named by EDGECTL_CONFIG (no MQTT_/DATABASE_ variables in its env).

One system for the module; tests run in file order and the ones that leave traces (attention) come last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.db.columns import COLUMN_SUFFIX, target_column
from tests.support.procs import wait_until
from tests.support.system import ROOT, System

EDGECTL = str(Path(sys.executable).with_name("edgectl"))
SECRET = "s3cret-never-printed"
CONNECTION_KEYS = ("MQTT_URL", "MQTT_PASSWORD", "MQTT_PASSWORD_FILE", "MQTT_TOPIC_ROOT", "DATABASE_URL")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    s = System(tmp_path_factory.mktemp("edgectl-system"), slots=1, batch_seconds=0.8, extra_mos=80)
    try:
        s.wait_healthy()
        s.plc("POST", "/failure", {"equipment": "silo103", "description": "MOTOR_OVERLOAD"})
        wait_until(lambda: s.completed() >= 2, 40, what="two completed MOs")
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def config(system: System, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The connection file as the demo writes it; the anonymous test broker accepts any password, so one is set
    to prove it is never printed."""
    host_port = system.env["MQTT_URL"].removeprefix("mqtt://")
    path = tmp_path_factory.mktemp("edgectl-config") / "connection.env"
    path.write_text(
        "# written by the test, like the demo does\n"
        f"export MQTT_URL=mqtt://operator@{host_port}\n"
        f'MQTT_PASSWORD="{SECRET}"\n'
        f"MQTT_TOPIC_ROOT={ROOT}\n"
        f"DATABASE_URL={system.env['DATABASE_URL']}\n"
    )
    path.chmod(0o600)
    return path


def ctl(config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30) -> Any:
    base = {k: v for k, v in os.environ.items() if k not in CONNECTION_KEYS and not k.startswith("DATABASE_")}
    done = subprocess.run(
        [EDGECTL, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, "EDGECTL_CONFIG": str(config), **(env or {})},
    )
    assert SECRET not in done.stdout + done.stderr
    return done


def as_json(done: Any) -> Any:
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def newest_queued(system: System) -> str:
    """A queued batch the planner has not sent yet; the newest one, since the planner takes the oldest first."""
    rows: list[Any] = []

    def found() -> bool:
        rows[:] = system.sql(
            "SELECT mo_id FROM mo_batch WHERE state = 'queued' AND write_request_id IS NULL "
            "ORDER BY queued_at DESC, id DESC LIMIT 1"
        )
        return bool(rows)

    wait_until(found, 10, what="a queued batch")
    return str(rows[0][0])


# ------------------------------------------------------------------------------------------------ status


def test_status_json_all_online(system: System, config: Path) -> None:
    done = ctl(config, "status", "--json")
    doc = as_json(done)
    assert done.returncode == 0, doc["problems"]
    assert set(doc["services"]) >= {"plc_gateway", "mo_planner", "odoo_sync", "failure_monitor"}
    assert all(s["online"] and s["version"] for s in doc["services"].values())
    assert doc["plc"]["reachable"] is True and doc["plc"]["rtt_ms"] is not None
    assert doc["completed"] > 0 and doc["attention"] == 0 and doc["attention_items"] == []
    assert doc["queue"] == sum(doc["queue_states"].values()) and doc["queue_states"].get("queued", 0) >= 1
    assert doc["failures"]["stored"] >= 1
    human = ctl(config, "status")
    assert human.returncode == 0 and "status     OK" in human.stdout and "plc_gateway" in human.stdout


def test_status_flags_override_the_file_and_unreachable_is_3(system: System, config: Path) -> None:
    nobody = as_json(ctl(config, "status", "--json", "--timeout", "0.5", "--topic-root", "scada/nobody"))
    assert not any(s["online"] for s in nobody["services"].values())
    assert nobody["ok"] is False and nobody["plc"]["reachable"] is False
    # Environment beats the file, flags beat the environment.
    env = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    assert ctl(config, "queue", env=env).returncode == 3
    assert ctl(config, "queue", "--database-url", system.env["DATABASE_URL"], env=env).returncode == 0
    down = ctl(config, "status", "--json", "--mqtt-url", "mqtt://127.0.0.1:1")
    assert down.returncode == 3 and "unreachable" in " ".join(as_json(down)["problems"])
    assert ctl(config, "queue", env={"EDGECTL_CONFIG": "/nonexistent/connection.env"}).returncode == 2


# ------------------------------------------------------------------------------------------------ listings


def test_queue_history_failures_match_the_database(system: System, config: Path) -> None:
    queue = as_json(ctl(config, "queue", "--json"))
    in_db = {r[0] for r in system.sql("SELECT mo_id FROM mo_batch")}
    listed = {r["mo_id"] for r in queue}
    assert listed and len(listed & in_db) >= len(listed) - 2  # a batch or two may be archived in between
    assert all(set(r) >= {"mo_id", "state", "slot", "queued_at", "last_error"} for r in queue)
    assert "MO_ID" in ctl(config, "queue").stdout

    history = as_json(ctl(config, "history", "--json", "--limit", "3", "--status", "completed"))
    assert 1 <= len(history) <= 3 and all(r["status"] == "completed" for r in history)
    newest = system.sql("SELECT mo_id FROM mo_histories WHERE status = 'completed' ORDER BY archived_at DESC")
    assert history[-1]["mo_id"] in {r[0] for r in newest[:6]}
    assert ctl(config, "history", "--status", "bogus").returncode == 2

    wait_until(lambda: bool(system.sql("SELECT 1 FROM equipment_failure")), 20, what="failure stored")
    failures = as_json(ctl(config, "failures", "--json"))
    assert {f["event_id"] for f in failures} == {
        r[0] for r in system.sql("SELECT event_id FROM equipment_failure")
    }
    assert failures[0]["equipment_code"] == "silo103"
    wait_until(lambda: not system.sql("SELECT 1 FROM equipment_failure WHERE reported_at IS NULL"), 20)
    assert as_json(ctl(config, "failures", "--unreported", "--json")) == []
    assert "no unreported failures" in ctl(config, "failures", "--unreported").stdout


# ------------------------------------------------------------------------------------------------ arm


def test_arm_an_armed_slot_and_no_gateway(system: System, config: Path) -> None:
    # W = 0 for a moment after each write (until the PLC takes the batch): then the gateway refuses with
    # slot_not_empty (exit 4); a moment later the slot is armed again.
    codes: list[tuple[int, str]] = []
    for _ in range(10):
        done = ctl(config, "arm", "1", "--json")
        reply = as_json(done)
        codes.append((done.returncode, reply["code"]))
        if reply["code"] == "already_armed":
            assert done.returncode == 0 and reply["ok"] is True and reply["request_id"].startswith("edgectl-")
            break
        assert (done.returncode, reply["code"]) == (4, "slot_not_empty")
        time.sleep(0.2)
    assert codes[-1] == (0, "already_armed"), codes
    inactive = ctl(config, "arm", "2")
    assert inactive.returncode == 4 and "REFUSED" in inactive.stdout
    assert ctl(config, "arm", "0").returncode == 2
    silent = ctl(config, "arm", "1", "--timeout", "1", "--topic-root", "scada/nobody")
    assert silent.returncode == 3 and "no reply" in silent.stderr


# ------------------------------------------------------------------------------------------------ cancel


def test_cancel_a_queued_batch_once(system: System, config: Path) -> None:
    # On a loaded machine the planner may write (and finish) the chosen MO before edgectl has started: that
    # refusal is correct; take the next queued one (a few tries), but one cancel must succeed.
    for _ in range(5):
        mo_id = newest_queued(system)
        done = ctl(config, "cancel", mo_id)
        if done.returncode == 0 or ("not queued" not in done.stderr and "already archived" not in done.stderr):
            break
    assert done.returncode == 0, done.stderr
    assert "Odoo" in done.stdout
    assert system.sql("SELECT status FROM mo_histories WHERE mo_id = :m", m=mo_id) == [("cancelled",)]
    assert system.sql("SELECT 1 FROM mo_batch WHERE mo_id = :m", m=mo_id) == []
    audit = system.sql("SELECT action, actor, to_state FROM audit_event WHERE mo_id = :m ORDER BY id", m=mo_id)
    assert ("transition", "operator", "cancelled") in audit and ("archived", "operator", "cancelled") in audit
    again = ctl(config, "cancel", mo_id)
    assert again.returncode == 4 and "already archived as cancelled" in again.stderr
    unknown = ctl(config, "cancel", "WH/MO/99999")
    assert unknown.returncode == 4 and "unknown" in unknown.stderr
    # The planner never queues a cancelled MO again.
    time.sleep(1.5)
    assert system.sql("SELECT 1 FROM mo_batch WHERE mo_id = :m", m=mo_id) == []


def test_cancel_refuses_a_batch_on_the_plc(system: System, config: Path) -> None:
    rows: list[Any] = []
    wait_until(
        lambda: bool(
            rows.extend(system.sql("SELECT mo_id FROM mo_batch WHERE state IN ('written','accepted','running')"))
            or rows
        ),
        10,
        what="a batch on the PLC",
    )
    done = ctl(config, "cancel", rows[0][0])
    # By the time edgectl runs it may have finished: either way it is not queued and must be refused.
    assert done.returncode == 4 and (
        "on the PLC" in done.stderr or "not queued" in done.stderr or "archived" in done.stderr
    )
    assert system.sql("SELECT 1 FROM mo_histories WHERE mo_id = :m AND status = 'cancelled'", m=rows[0][0]) == []


# ------------------------------------------------------------------------------------------------ watch


def test_watch_prints_lifecycle_lines(system: System, config: Path) -> None:
    started = time.monotonic()
    done = ctl(config, "watch", "--duration", "4")
    assert done.returncode == 0 and 3.5 < time.monotonic() - started < 15
    lines = done.stdout.splitlines()
    assert any(" written slot 1" in line for line in lines), done.stdout
    assert any(" archived" in line for line in lines), done.stdout
    assert any("plc/read/1 WH/MO/" in line and "kg" in line for line in lines), done.stdout
    assert all(line[2] == ":" and line[5] == ":" for line in lines)  # HH:MM:SS first
    as_lines = ctl(config, "watch", "--duration", "1.5", "--json").stdout.splitlines()
    assert as_lines and all("topic" in json.loads(line) for line in as_lines)


# ------------------------------------------------------------------------------------------------ retry


def test_retry_a_batch_odoo_refused(system: System, config: Path) -> None:
    mo_id = newest_queued(system)
    row = system.sql("SELECT * FROM mo_batch WHERE mo_id = :m", m=mo_id)[0]._mapping
    code = next(c for c in COLUMN_SUFFIX if row[target_column(c)])
    # Two move lines on that move make Odoo refuse a changed quantity (a UserError): odoo_sync -> attention.
    system.odoo("POST", "/_sim/move-error", {"mo_id": mo_id, "equipment_code": code, "move_lines": 2})
    early = ctl(config, "retry", mo_id)
    assert early.returncode == 4 and "not attention" in early.stderr
    wait_until(
        lambda: system.sql("SELECT state FROM mo_batch WHERE mo_id = :m", m=mo_id) == [("attention",)],
        30,
        what=f"{mo_id} in attention",
    )
    status = ctl(config, "status", "--json")
    doc = as_json(status)
    assert status.returncode == 1 and doc["attention"] >= 1
    assert mo_id in {i["mo_id"] for i in doc["attention_items"]}
    assert all(i["reason"] for i in doc["attention_items"])
    assert ctl(config, "cancel", mo_id).returncode == 4  # cancel is only for queued batches

    system.odoo("POST", "/_sim/move-error", {"mo_id": mo_id, "equipment_code": code, "move_lines": 1})
    done = ctl(config, "retry", mo_id)
    assert done.returncode == 0, done.stderr
    wait_until(
        lambda: system.sql("SELECT status FROM mo_histories WHERE mo_id = :m", m=mo_id) == [("completed",)],
        10,
        what=f"{mo_id} archived completed after the retry",
    )
    audit = system.sql(
        "SELECT from_state, to_state FROM audit_event WHERE mo_id = :m AND actor = 'operator'", m=mo_id
    )
    assert audit == [("attention", "finished")]
    # The retry event wakes odoo_sync at once instead of at its next sweep (SYNC_SWEEP_S=5 here).
    [(gap,)] = system.sql(
        "SELECT extract(epoch FROM a.at - r.at) FROM audit_event a, audit_event r WHERE a.mo_id = :m "
        "AND r.mo_id = :m AND a.action = 'archived' AND r.actor = 'operator'",
        m=mo_id,
    )
    assert float(gap) < 2.5
    again = ctl(config, "retry", mo_id)
    assert again.returncode == 4 and "archived as completed" in again.stderr
