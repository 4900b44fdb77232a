"""The operator console in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright), against
the console running as its own process next to the whole system (tests/support/system.py: Mosquitto,
PostgreSQL, plc-sim, odoo-sim and the four services). Pages read through a real read-only PostgreSQL role;
actions go through the writing role, as deployed.

One system for the module; tests run in file order (the attention batch is made once and used twice).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shared.db.columns import COLUMN_SUFFIX, target_column
from tests.support.procs import Proc, console, wait_until
from tests.support.servers import free_port
from tests.support.system import ROOT, System

pw = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (./scripts/test installs it as root)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
# The screenshots in docs/ are taken here; every run takes them, and UPDATE_DOCS_SCREENSHOTS=1 writes them
# into docs/ (otherwise into the test's tmp dir, so a plain test run leaves the work tree clean).
DOCS = (
    REPO / "docs" if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1" else Path(tempfile.mkdtemp(prefix="shots-"))
)
pytestmark = pytest.mark.slow


class ConsoleProc:
    """The console as a real process; `restart()` keeps its port, key and users (a restart the kiosk survives)."""

    def __init__(self, system: System, tmp: Path) -> None:
        self.system = system
        self.tmp = tmp
        self.port = free_port()
        self.passwords = {"alice": secrets.token_urlsafe(12), "victor": secrets.token_urlsafe(12)}
        for name, password in self.passwords.items():
            (tmp / f"pw_{name}").write_text(password + "\n")
        self.key = secrets.token_urlsafe(40)
        (tmp / "key").write_text(self.key)
        made = subprocess.run(
            [
                console("console-users"),
                "--out",
                str(tmp / "users"),
                f"alice:operator:{tmp / 'pw_alice'}",
                f"victor:viewer:{tmp / 'pw_victor'}",
            ],
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr
        self.users_text = (tmp / "users").read_text()
        # A read-only role for the pages, the system's (writing) role for actions.
        self.ro_role = f"console_ro_{uuid.uuid4().hex[:8]}"
        self.ro_password = secrets.token_urlsafe(16)
        with system.engine.begin() as conn:
            conn.execute(sa.text(f"CREATE ROLE {self.ro_role} LOGIN PASSWORD '{self.ro_password}'"))
            conn.execute(sa.text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {self.ro_role}"))
        (tmp / "ro_password").write_text(self.ro_password)
        db = system.env["DATABASE_URL"]
        self.env = {
            "MQTT_URL": system.broker.url,
            "MQTT_TOPIC_ROOT": ROOT,
            "MQTT_CLIENT_ID": "console-e2e",
            "DATABASE_URL": re.sub(r"://[^@/]*@", f"://{self.ro_role}@", db),
            "DATABASE_PASSWORD_FILE": str(tmp / "ro_password"),
            "CONSOLE_ACTION_DATABASE_URL": db,
            "CONSOLE_PORT": str(self.port),
            "CONSOLE_USERS_FILE": str(tmp / "users"),
            "CONSOLE_SECRET_KEY_FILE": str(tmp / "key"),
            "CONSOLE_LOGIN_LIMIT": "4",
            "LOG_LEVEL": "INFO",
        }
        self.proc: Proc | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = Proc("console", [console("console")], self.env, self.tmp / "console.log").start()
        wait_until(self._healthy, 20, what="console healthy")

    def _healthy(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def restart(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
        # Roles are cluster-wide: remove its grants in this database, then the role itself.
        with self.system.engine.begin() as conn:
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
                {"r": self.ro_role},
            )
            conn.execute(sa.text(f"DROP OWNED BY {self.ro_role}"))
            conn.execute(sa.text(f"DROP ROLE {self.ro_role}"))

    def log(self) -> str:
        return (self.tmp / "console.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    # PLC diagnostics every second (30 s in production): the overview shows a mode change within the test.
    s = System(
        tmp_path_factory.mktemp("console-system"),
        slots=1,
        batch_seconds=4.0,
        extra_mos=40,
        env={"PLC_DIAG_INTERVAL_S": "1"},
    )
    try:
        s.wait_healthy(60)
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def app(system: System, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProc]:
    c = ConsoleProc(system, tmp_path_factory.mktemp("console"))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with pw.sync_playwright() as p:
        # --no-sandbox: the test may run as root in a container, where Chromium's sandbox cannot start.
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any, app: ConsoleProc) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    p = context.new_page()
    p.set_default_timeout(15_000)
    yield p
    context.close()


def login(page: Any, app: ConsoleProc, name: str, password: str | None = None) -> None:
    page.goto(f"{app.url}/")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password if password is not None else app.passwords[name])
    page.click("button[type=submit]")


def csrf_of(page: Any) -> str:
    return str(page.locator("input[name=csrf]").first.get_attribute("value"))


# ------------------------------------------------------------------------------------------------ login


def test_login_wrong_password_and_logout_for_good(browser: Any, page: Any, app: ConsoleProc) -> None:
    page.goto(f"{app.url}/history")
    assert "/login" in page.url  # login required, the target kept
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "Wrong login or password."
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", app.passwords["alice"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{app.url}/history")
    cookie = next(c for c in page.context.cookies() if c["name"] == "console_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    def copied_cookie_lets_in() -> bool:
        """The session cookie copied into another browser (a stolen cookie, a second tab elsewhere)."""
        other = browser.new_context()
        try:
            other.add_cookies([cookie])
            return bool(other.request.get(f"{app.url}/history", max_redirects=0).status == 200)
        finally:
            other.close()

    assert copied_cookie_lets_in()
    page.click("#logout")
    page.wait_for_url(re.compile(r"/login"))
    page.goto(f"{app.url}/")
    assert "/login" in page.url
    # The server refuses the logged-out session, also after a console restart: the logout is stored (as an
    # audit_event row with a keyed tag of the session, never the cookie), not only kept in the process.
    assert not copied_cookie_lets_in()
    app.restart()
    assert not copied_cookie_lets_in()
    [(actor, detail)] = app.system.sql("SELECT actor, detail FROM audit_event WHERE action = 'console_logout'")
    assert actor == "console:alice" and len(detail["revocation"]) == 32 and cookie["value"] not in str(detail)


def test_every_page_needs_a_login_and_forms_need_their_token(browser: Any, app: ConsoleProc) -> None:
    context = browser.new_context()  # no cookie at all
    try:
        api = context.request
        for path in (
            "/",
            "/attention",
            "/queue",
            "/history",
            "/history.csv",
            "/failures",
            "/weighings",
            "/audit",
            "/batch?mo=X",
        ):
            resp = api.get(f"{app.url}{path}", max_redirects=0)
            assert resp.status == 303 and resp.headers["location"].startswith("/login"), path
        assert api.get(f"{app.url}/events").status == 401
        assert (
            api.post(f"{app.url}/action", form={"action": "retry", "target": "X", "confirm": "yes"}).status == 401
        )
        # A login POST without the form's token (e.g. from another site) is refused even with the right password.
        login = api.post(f"{app.url}/login", form={"username": "alice", "password": app.passwords["alice"]})
        assert login.status == 403
        health = api.get(f"{app.url}/healthz")
        assert health.status == 200 and health.json()["mqtt_connected"] is True
        metrics = api.get(f"{app.url}/metrics").text()
        assert 'console_logins_total{result="csrf"}' in metrics and "console_live_streams" in metrics
    finally:
        context.close()


# ------------------------------------------------------------------------------------------------ live


def test_progress_moves_live_without_reload(page: Any, app: ConsoleProc, system: System) -> None:
    login(page, app, "alice")
    page.wait_for_url(f"{app.url}/")
    page.evaluate("window.__noReload = 'still here'")
    kg = page.locator("#slot-1 .silo .kg").first
    wait_until(lambda: kg.count() > 0 and " / " in kg.inner_text(), 30, what="a dosing slot on the overview")
    first = kg.inner_text()
    wait_until(lambda: kg.inner_text() != first, 20, what="the progress to change without a reload")
    assert page.evaluate("window.__noReload") == "still here"
    assert page.locator("#link-state").inner_text().startswith("LIVE")


# ------------------------------------------------------------------------------------------------ attention


def newest_queued(system: System) -> str:
    rows: list[Any] = []

    def found() -> bool:
        rows[:] = system.sql(
            "SELECT mo_id FROM mo_batch WHERE state = 'queued' AND write_request_id IS NULL "
            "ORDER BY queued_at DESC, id DESC LIMIT 1"
        )
        return bool(rows)

    wait_until(found, 20, what="a queued batch")
    return str(rows[0][0])


@pytest.fixture(scope="module")
def attention_mo(system: System) -> str:
    """A batch Odoo refuses (two move lines make a changed quantity a UserError): odoo_sync parks it."""
    mo_id = newest_queued(system)
    row = system.sql("SELECT * FROM mo_batch WHERE mo_id = :m", m=mo_id)[0]._mapping
    code = next(c for c in COLUMN_SUFFIX if row[target_column(c)])
    system.odoo("POST", "/_sim/move-error", {"mo_id": mo_id, "equipment_code": code, "move_lines": 2})
    wait_until(
        lambda: system.sql("SELECT state FROM mo_batch WHERE mo_id = :m", m=mo_id) == [("attention",)],
        90,
        what=f"{mo_id} in attention",
    )
    # Fixed in Odoo: a retry will now go through.
    system.odoo("POST", "/_sim/move-error", {"mo_id": mo_id, "equipment_code": code, "move_lines": 1})
    return mo_id


def state_of(system: System, mo_id: str) -> list[Any]:
    return system.sql("SELECT state FROM mo_batch WHERE mo_id = :m", m=mo_id)


def test_viewer_sees_no_action_and_forged_posts_are_refused(
    page: Any, app: ConsoleProc, system: System, attention_mo: str
) -> None:
    login(page, app, "victor")
    page.wait_for_url(f"{app.url}/")
    page.goto(f"{app.url}/attention")
    item = page.locator(f".attention-item[data-mo='{attention_mo}']")
    assert item.count() == 1
    assert item.locator("a.button").count() == 0  # no action offered to a viewer
    page.goto(f"{app.url}/confirm?action=retry&target={attention_mo}")
    assert page.locator("#confirm").count() == 0
    form = {"csrf": csrf_of(page), "action": "retry", "target": attention_mo, "confirm": "yes"}
    forged = page.request.post(f"{app.url}/action", form=form)
    assert forged.status == 403 and "Viewers cannot act" in forged.text()
    assert state_of(system, attention_mo) == [("attention",)]

    page.click("#logout")
    login(page, app, "alice")
    page.wait_for_url(f"{app.url}/")
    for token in ("", "forged-token", form["csrf"]):  # none, made up, the viewer's (another session's)
        refused = page.request.post(f"{app.url}/action", form={**form, "csrf": token})
        assert refused.status == 403, token
    assert state_of(system, attention_mo) == [("attention",)]
    assert system.sql("SELECT count(*) FROM audit_event WHERE actor LIKE 'operator:%'") == [(0,)]


def test_attention_shows_on_overview_and_retry_works_from_the_browser(
    page: Any, app: ConsoleProc, system: System, attention_mo: str
) -> None:
    login(page, app, "alice")
    page.wait_for_url(f"{app.url}/")
    banner = page.locator(".banner", has_text=attention_mo)
    banner.wait_for()
    assert "ATTENTION" in banner.inner_text()
    page.screenshot(path=str(DOCS / "console-overview.png"), full_page=True)
    banner.click()
    page.wait_for_url(re.compile(r"/attention"))
    item = page.locator(f".attention-item[data-mo='{attention_mo}']")
    assert "Reason:" in item.inner_text()
    page.screenshot(path=str(DOCS / "console-attention.png"), full_page=True)
    item.locator("a.button", has_text="Retry").click()
    page.click("#confirm")
    page.wait_for_url(re.compile(r"/batch\?"))
    assert "Retried" in page.locator("#done").inner_text()
    wait_until(
        lambda: system.sql("SELECT status FROM mo_histories WHERE mo_id = :m", m=attention_mo) == [("completed",)],
        20,
        what=f"{attention_mo} completed after the retry",
    )
    [(frm, to, detail)] = system.sql(
        "SELECT from_state, to_state, detail FROM audit_event WHERE mo_id = :m AND actor = 'operator:alice'",
        m=attention_mo,
    )
    assert (frm, to) == ("attention", "finished")
    assert detail["via"] == "console" and detail["reason"].startswith("operator retry")
    # The audit trail page shows it with the user.
    page.goto(f"{app.url}/audit?q={attention_mo}")
    assert "operator:alice" in page.locator("#audit").inner_text()
    page.goto(f"{app.url}/batch?mo={attention_mo}")
    transitions = page.locator("#transitions").inner_text()
    assert "operator:alice" in transitions and "odoo_sync" in transitions
    report = page.locator("#report").inner_text()
    assert "update-with-consumptions" in report and f'"mo_id": "{attention_mo}"' in report


def test_operator_arms_a_slot_through_the_gateway(page: Any, app: ConsoleProc, system: System) -> None:
    login(page, app, "alice")
    page.wait_for_url(f"{app.url}/")
    page.goto(f"{app.url}/attention")
    page.click("#arm-1")
    page.click("#confirm")
    # The gateway answered (armed, already armed or slot not empty: each is a real reply, not a timeout).
    text = page.locator("[role=alert]").inner_text()
    assert re.search(r"slot 1: (ok (armed|already_armed)|REFUSED slot_not_empty)", text), text
    [(ok, code)] = system.sql(
        "SELECT detail->>'ok', detail->>'code' FROM audit_event WHERE action = 'arm' AND actor = 'operator:alice'"
    )
    assert code in ("armed", "already_armed", "slot_not_empty") and ok in ("true", "false")


def test_failure_report_odoo_refuses_is_handed_back_from_the_browser(
    page: Any, app: ConsoleProc, system: System
) -> None:
    system.odoo("POST", "/_sim/equipment-remove", {"equipment_code": "silo109"})
    system.plc("POST", "/failure", {"equipment": "silo109", "description": "MOTOR_OVERLOAD"})
    parked = "SELECT event_id FROM equipment_failure WHERE attention_reason IS NOT NULL"
    wait_until(lambda: len(system.sql(parked)) == 1, 30, what="a parked failure report")
    [(event_id,)] = system.sql(parked)
    login(page, app, "alice")
    page.wait_for_url(f"{app.url}/")
    page.locator(".banner", has_text="failure report").wait_for()
    page.goto(f"{app.url}/failures")
    assert "silo109" in page.content() and "ATTENTION" in page.content()
    page.goto(f"{app.url}/attention")
    page.locator("a.button", has_text="Retry the failure report").click()
    page.click("#confirm")
    page.wait_for_url(f"{app.url}/attention")
    rows = system.sql(
        "SELECT actor, detail->>'via' FROM audit_event WHERE action = 'failure_retry' AND event_id = :e",
        e=event_id,
    )
    assert rows == [("operator:alice", "console")]
    # failure_monitor took it back (and, Odoo still refusing, parked it again: a second attention row).
    wait_until(
        lambda: (
            system.sql("SELECT report_attempts FROM equipment_failure WHERE event_id = :e", e=event_id)[0][0] >= 2
        ),
        20,
        what="reported again",
    )


# ------------------------------------------------------------------------------------------------ weighings


def test_manual_weighing_in_attention_is_retried_and_given_up_from_the_browser(
    page: Any, app: ConsoleProc, system: System
) -> None:
    """A weighing Odoo can never take (a product that is not in the MO): on the overview, on the weighings page
    with its reason; a viewer sees no action; the operator retries it (failure_monitor parks it again, the cause
    being still there) and then gives up on it, each confirmed and audited; afterwards no action fits it."""
    mo_id = newest_queued(system)  # confirmed in Odoo: the only thing Odoo cannot take is the product
    system.plc("POST", "/weighing", {"mo_id": mo_id, "product_id": 9999, "kg": 1.25, "item": 2})
    parked = "SELECT id, report_attempts FROM manual_weighing WHERE attention_reason IS NOT NULL"
    wait_until(lambda: len(system.sql(parked)) == 1, 30, what="a manual weighing in attention")
    [(weighing_id, attempts)] = system.sql(parked)

    login(page, app, "victor")
    page.wait_for_url(f"{app.url}/")
    page.locator(".banner", has_text="manual weighing").wait_for()
    page.click("#nav-weighings")
    page.wait_for_url(f"{app.url}/weighings")
    row = page.locator(f"tr.weighing[data-id='{weighing_id}']")
    assert f"product 9999 is not a raw component of {mo_id}" in row.locator(".reason").inner_text()
    assert "ATTENTION" in row.inner_text() and row.locator("a.button").count() == 0  # a viewer: no action
    page.click("#logout")

    login(page, app, "alice")
    page.wait_for_url(f"{app.url}/")
    page.goto(f"{app.url}/weighings?attention=1")
    row.locator("a.button", has_text="Retry").click()
    assert page.locator("p.big").inner_text() == f"weighing {weighing_id}"
    page.click("#confirm")
    page.wait_for_url(re.compile(r"/weighings\?done=weighing_retry"))
    assert "failure_monitor reports the weighing again" in page.locator("#done").inner_text()
    # failure_monitor took it back at once (the wake-up) and, the product still not in the MO, parked it again.
    wait_until(lambda: system.sql(parked) == [(weighing_id, attempts + 1)], 20, what="parked again")

    page.goto(f"{app.url}/weighings")
    row.locator("a.button", has_text="Give up").click()
    page.click("#confirm")
    page.wait_for_url(re.compile(r"/weighings\?done=weighing_give_up"))
    assert "closed: 0.00 of 1.25 kg booked by the gateway" in row.inner_text()
    assert row.locator("a.button").count() == 0  # nothing fits a closed weighing
    rows = system.sql(
        "SELECT action, detail->>'via' FROM audit_event WHERE actor = 'operator:alice' AND event_id = "
        "(SELECT event_id FROM manual_weighing WHERE id = :w) ORDER BY id",
        w=weighing_id,
    )
    assert rows == [("weighing_retry", "console"), ("weighing_give_up", "console")]
    # A forged retry of the closed weighing is refused with the shared rule's reason, and changes nothing.
    refused = page.request.post(
        f"{app.url}/action",
        form={"csrf": csrf_of(page), "action": "weighing_retry", "target": str(weighing_id), "confirm": "yes"},
    )
    assert refused.status == 409 and "not in attention" in refused.text()
    assert system.sql(parked) == []


# ------------------------------------------------------------------------------------------------ history


def test_history_search_and_csv_export(page: Any, app: ConsoleProc, system: System) -> None:
    wait_until(lambda: system.completed() >= 2, 60, what="two completed batches")
    [(mo_id,)] = system.sql("SELECT mo_id FROM mo_histories WHERE status = 'completed' ORDER BY id LIMIT 1")
    login(page, app, "victor")
    page.wait_for_url(f"{app.url}/")
    page.goto(f"{app.url}/history")
    page.fill("input[name=mo]", mo_id)
    page.select_option("select[name=status]", "completed")
    page.click("#search")
    page.wait_for_url(re.compile(r"/history\?"))
    rows = page.locator("#history tr")
    assert rows.count() == 2 and mo_id in rows.nth(1).inner_text()  # header + the one match
    page.fill("input[name=mo]", "WH/MO/NO-SUCH")
    page.click("#search")
    assert "No archived batch matches" in page.locator("#history").inner_text()
    page.fill("input[name=mo]", mo_id)
    page.click("#search")
    with page.expect_download() as info:
        page.click("#csv")
    text = Path(info.value.path()).read_text()
    lines = text.splitlines()
    assert (
        lines[0].startswith("mo_id,status,slot") and len(lines) == 2 and lines[1].startswith(f"{mo_id},completed")
    )


# ------------------------------------------------------------------------------------------------ restarts


def test_kiosk_survives_broker_and_console_restarts(page: Any, app: ConsoleProc, system: System) -> None:
    login(page, app, "victor")
    page.wait_for_url(f"{app.url}/")
    page.goto(f"{app.url}/?kiosk=1")
    page.evaluate("window.__noReload = 'kiosk'")
    live = page.locator("#live")

    def moves(timeout: float) -> None:
        before = live.inner_html()
        wait_until(lambda: live.inner_html() != before, timeout, what="the kiosk to update")

    moves(20)
    system.broker.restart()
    wait_until(lambda: "CONSOLE NOT CONNECTED" not in live.inner_text(), 40, what="the console back on the broker")
    moves(30)  # and the slot keeps moving: the subscriptions are back
    app.restart()
    moves(40)
    assert page.evaluate("window.__noReload") == "kiosk"  # EventSource reconnected by itself
    wait_until(lambda: page.locator("#link-state").inner_text().startswith("LIVE"), 20, what="LIVE again")


# ------------------------------------------------------------------------------------------------ PLC diagnostics


def test_plc_mode_and_clock_alarms_show_in_red_with_words(page: Any, app: ConsoleProc, system: System) -> None:
    """The gateway's diagnostics (mode, scan time, clock offset) on the overview, each with a word; the PLC put
    in PROGRAM mode with its clock two minutes off raises both alarms: red badges and red banners, live."""
    login(page, app, "victor")
    page.wait_for_url(f"{app.url}/")
    mode, clock, scan = page.locator("#plc-mode"), page.locator("#plc-clock"), page.locator("#plc-scan")
    wait_until(lambda: mode.count() == 1 and mode.inner_text() in ("RUN", "MONITOR"), 20, what="PLC mode shown")
    assert "ok" in (mode.get_attribute("class") or "") and "ok" in (clock.get_attribute("class") or "")
    assert re.fullmatch(r"[+-]\d+\.\d s vs gateway", clock.inner_text()), clock.inner_text()
    assert re.fullmatch(r"\d+(\.\d+)? ms avg, \d+(\.\d+)? ms max", scan.inner_text()), scan.inner_text()
    assert page.locator(".banner", has_text="PLC ALARM").count() == 0
    try:
        system.plc("POST", "/plc", {"mode": "PROGRAM", "clock_offset_s": 120})
        # PROGRAM mode stops the program: 0601 reports the CPU stopped as well.
        wait_until(
            lambda: mode.inner_text() == "PROGRAM (stopped): ALARM", 20, what="the mode alarm on the overview"
        )
        wait_until(lambda: clock.inner_text().endswith(": ALARM"), 20, what="the clock alarm on the overview")
        assert "bad" in (mode.get_attribute("class") or "") and "bad" in (clock.get_attribute("class") or "")
        # About +120 s (the PLC clock has whole seconds, and the reads take their time).
        assert re.fullmatch(r"\+1(19|20|21)\.\d s vs gateway: ALARM", clock.inner_text()), clock.inner_text()
        banners = page.locator(".banner", has_text="PLC ALARM")
        wait_until(lambda: banners.count() == 2, 10, what="two PLC alarm banners")
        text = " ".join(banners.all_inner_texts())
        assert "PROGRAM mode" in text and re.search(r"PLC clock is \+1(19|20|21)\.\d s off", text), text
    finally:
        system.plc("POST", "/plc", {"mode": "RUN", "clock_offset_s": 0})
    wait_until(lambda: mode.inner_text() == "RUN" and page.locator(".banner", has_text="PLC ALARM").count() == 0,
               20, what="the alarms cleared")  # fmt: skip
    assert "ok" in (mode.get_attribute("class") or "")


# ------------------------------------------------------------------------------------------------ secrets


def test_no_secret_in_pages_urls_or_log(page: Any, app: ConsoleProc, attention_mo: str) -> None:
    secrets_ = [*app.passwords.values(), app.key, app.ro_password]
    secrets_ += [
        line.split(":", 2)[2] for line in app.users_text.splitlines() if line and not line.startswith("#")
    ]
    login(page, app, "alice")
    page.wait_for_url(f"{app.url}/")
    seen_urls = []
    for path in (
        "/",
        "/attention",
        "/queue",
        "/history",
        "/failures",
        "/weighings",
        "/audit",
        f"/batch?mo={attention_mo}",
    ):
        page.goto(f"{app.url}{path}")
        seen_urls.append(page.url)
        html = page.content()
        assert not [s for s in secrets_ if s in html], path
    csv_text = page.request.get(f"{app.url}/history.csv").text()
    assert not [s for s in secrets_ if s in csv_text or any(s in u for u in seen_urls)]
    time.sleep(0.5)
    assert not [s for s in secrets_ if s in app.log()]


def test_login_rate_limit(page: Any, app: ConsoleProc) -> None:
    """Last: it leaves a login locked. Four failures for one login (CONSOLE_LOGIN_LIMIT=4), then even the right
    password is turned away for that login, while another login from the same address still gets in."""
    for _ in range(4):
        login(page, app, "victor", "wrong")
        assert page.locator("[role=alert]").inner_text() == "Wrong login or password."
    login(page, app, "victor")
    assert "Too many failed logins" in page.locator("[role=alert]").inner_text()
    assert "/login" in page.url
    login(page, app, "alice")
    page.wait_for_url(f"{app.url}/")
