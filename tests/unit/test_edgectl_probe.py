"""`edgectl plc probe`'s reasoning (edgectl/probe.py): the combinations it tries and the verdict per cause."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edgectl.probe import SETTING, Combo, Outcome, combinations, ip_last_octet, verdict
from services.plc_gateway.settings import GatewaySettings

BASE = Combo(da1=1, sa1=251, da2=0, local_port=0)


def outcomes(answer: Callable[[Combo], Outcome | None], combos: list[Combo]) -> list[Outcome]:
    """Outcome per combo: `answer` decides, else a timeout."""
    return [answer(c) or Outcome(c, "timeout") for c in combos]


def all_combos() -> list[Combo]:
    return combinations(baseline=BASE, plc_ip="192.168.250.7", local_ip="192.168.250.20", fixed_port=9600)


def test_the_verdict_names_real_gateway_settings() -> None:
    assert {name.lower() for name in SETTING.values()} <= set(GatewaySettings.model_fields)


def test_ip_last_octet() -> None:
    assert ip_last_octet("192.168.250.7") == 7
    assert ip_last_octet("10.0.0.0") is None and ip_last_octet("10.0.0.255") is None
    assert ip_last_octet("plc.local") is None and ip_last_octet("") is None


def test_combinations_cover_every_field_baseline_first_no_duplicates() -> None:
    combos = all_combos()
    assert combos[0] == BASE
    assert (
        len(combos) == len(set(combos)) == 3 * 2 * 1 * 2
    )  # DA1 {1, 0, 7}, SA1 {251, 20}, DA2 {0}, port {0, 9600}
    assert {c.da1 for c in combos} == {1, 0, 7}
    assert {c.sa1 for c in combos} == {251, 20}
    assert {c.local_port for c in combos} == {0, 9600}
    more = combinations(
        baseline=BASE, plc_ip=None, local_ip=None, fixed_port=9600, extra_da2=[0x10], extra_sa1=[251]
    )
    assert {c.da2 for c in more} == {0, 0x10} and {c.sa1 for c in more} == {251}


def test_combinations_refuse_values_outside_a_byte() -> None:
    with pytest.raises(ValueError, match="DA1 256"):
        combinations(baseline=BASE, plc_ip=None, local_ip=None, fixed_port=9600, extra_da1=[256])
    with pytest.raises(ValueError, match="UDP port"):
        combinations(baseline=BASE, plc_ip=None, local_ip=None, fixed_port=70000)


def test_configured_addressing_works() -> None:
    result = outcomes(lambda c: Outcome(c, "ok", 0, plc_node=1) if c.da1 in (0, 1) else None, all_combos())
    (line,) = verdict(result, BASE)
    assert line.startswith("FINS works as configured") and "node 1" in line


def test_wrong_da1_names_the_plc_node_it_replied_as() -> None:
    # The PLC is node 7 (not the configured 1): DA1=7 and DA1=0 answer, it names itself 7.
    result = outcomes(lambda c: Outcome(c, "ok", 0, plc_node=7) if c.da1 in (0, 7) else None, all_combos())
    lines = verdict(result, BASE)
    assert "not with the configured DA1=1" in lines[0]
    assert "Set PLC_NODE=7." in lines[1] and len(lines) == 2


def test_wrong_da1_found_only_through_da1_0() -> None:
    combos = combinations(baseline=BASE, plc_ip="10.0.0.1", local_ip=None, fixed_port=9600)
    result = outcomes(lambda c: Outcome(c, "ok", 0, plc_node=33) if c.da1 == 0 else None, combos)
    assert "Set PLC_NODE=33." in verdict(result, BASE)[1]


def test_sa1_mapped_to_the_ip_address() -> None:
    result = outcomes(
        lambda c: Outcome(c, "ok", 0, plc_node=1) if c.sa1 == 20 and c.da1 == 1 else None, all_combos()
    )
    lines = verdict(result, BASE)
    assert len(lines) == 2 and "Set GATEWAY_NODE=20" in lines[1] and "PLC_NODE" not in " ".join(lines)


def test_replies_only_to_the_fins_port() -> None:
    result = outcomes(
        lambda c: Outcome(c, "ok", 0, plc_node=1) if c.local_port == 9600 and c.da1 == 1 else None, all_combos()
    )
    lines = verdict(result, BASE)
    assert len(lines) == 2 and "Set FINS_LOCAL_PORT=9600" in lines[1] and "UDP port 9600" in lines[1]


def test_nothing_answers() -> None:
    lines = verdict(outcomes(lambda c: None, all_combos()), BASE)
    assert lines[0].startswith("No combination got a FINS reply") and "ping" in lines[0]


def test_answers_with_an_end_code_only() -> None:
    result = outcomes(
        lambda c: Outcome(c, "end_code", 0x1103, "address range") if c.da1 == 1 else None, all_combos()
    )
    (line,) = verdict(result, BASE)
    assert "refuses the read" in line and "1103" in line and "not FINS routing" in line


def test_unit_missing_and_busy_port_are_noted() -> None:
    combos = combinations(baseline=BASE, plc_ip=None, local_ip=None, fixed_port=9600, extra_da2=[3])

    def answer(c: Combo) -> Outcome | None:
        if c.local_port == 9600:
            return Outcome(c, "local_error", detail="local UDP port 9600: Address already in use")
        if c.da2 == 3:
            return Outcome(c, "end_code", 0x0202, "unit missing", plc_node=1)
        return Outcome(c, "ok", 0, plc_node=1) if c.da1 == 1 else None

    lines = verdict(outcomes(answer, combos), BASE)
    assert lines[0].startswith("FINS works as configured")
    assert any("Address already in use" in line for line in lines)
    assert any("DA2=3" in line and "unit missing" in line for line in lines)


def test_outcome_text() -> None:
    assert Outcome(BASE, "end_code", 0x0202).result().startswith("end code 0x0202")
    assert Outcome(BASE, "timeout").result() == "timeout"
    assert BASE.describe() == "DA1=1 SA1=251 DA2=0 local port ephemeral"
