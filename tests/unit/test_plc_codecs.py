"""Codecs: reference round-trip facts, strict decoding, and properties over the whole value space."""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.plc import codecs
from shared.plc.codecs import CodecError
from shared.plc.memory_map import FieldSpec, load_memory_map
from shared.plc.snapshot import encode_field


@pytest.mark.parametrize(
    ("kg", "words"),
    [  # docs/plc-program.md P1 examples + P6 vector F
        (1017.33, [1, 36197]),
        (1471.99, [2, 16127]),
        (380.69, [0, 38069]),
        (1000.00, [1, 34464]),
        (33.30, [0, 3330]),
        (1571.39, [2, 26067]),
        (32.83, [0, 3283]),
        (850.05, [1, 19469]),
        (1630.88, [2, 32016]),
        (41.6, [0, 0x1040]),
    ],
)
def test_kg_x100_reference_round_trips(kg: float, words: list[int]) -> None:
    assert codecs.encode_kg_x100(kg) == words
    assert codecs.decode_kg_x100(words) == pytest.approx(kg, abs=0.001)


def test_kg_uses_round_not_int() -> None:
    assert int(33.3 * 100) == 3329  # the earlier system's truncation
    assert codecs.encode_kg_x100(33.3) == [0, 3330]
    assert codecs.encode_kg_x100(0.29) == [0, 29]
    assert codecs.encode_kg_x100(4.35) == [0, 435]


def test_real_is_low_word_first() -> None:
    assert codecs.decode_real([0x8000, 0x440E]) == 570.0  # live sample, D6074-D6075
    assert codecs.encode_real(-123.456) == [0xE979, 0xC2F6]  # Omron W474 FLT example
    with pytest.raises(CodecError):
        codecs.decode_real([0x0000, 0x7FC0])  # NaN


def test_ascii_is_high_byte_first_and_strict() -> None:
    assert codecs.decode_ascii([0x5748, 0x2F4D, 0x4F2F, 0x3030, 0x3031, 0x3400, 0, 0]) == "WH/MO/00014"
    assert codecs.encode_ascii("WH", 2) == [0x5748, 0]
    with pytest.raises(CodecError, match="after NUL"):
        codecs.decode_ascii([0x5700, 0x4800])
    with pytest.raises(CodecError, match="non-printable"):
        codecs.decode_ascii([0x5707])
    with pytest.raises(CodecError, match="longer"):
        codecs.encode_ascii("ABCDE", 2)
    assert codecs.encode_ascii("ABCDE", 2, truncate=True) == [0x4142, 0x4344]


def test_bcd_and_flag_are_strict() -> None:
    assert codecs.decode_bcd([0x2026]) == 2026
    assert codecs.encode_bcd(35) == [0x35]
    with pytest.raises(CodecError):
        codecs.decode_bcd([0x20A6])
    assert codecs.decode_flag([1]) == 1
    for bad in (2, 0x824A, 0xFFFF):
        with pytest.raises(CodecError):
            codecs.decode_flag([bad])


def test_signed_and_dint() -> None:
    assert codecs.decode_int16([38125]) == -27411  # why consumption must be unsigned (lesson #1)
    assert codecs.decode_uint16([38125]) == 38125
    assert codecs.encode_dint(-2) == [0xFFFE, 0xFFFF]
    assert codecs.decode_dint([0x0001, 0x0002]) == 0x20001


def test_bad_words_are_refused() -> None:
    with pytest.raises(CodecError):
        codecs.decode_uint16([70000])
    with pytest.raises(CodecError):
        codecs.decode_kg_x100([1])


@given(st.integers(0, 0xFFFFFFFF))
def test_kg_round_trip_property(raw: int) -> None:
    words = [raw >> 16, raw & 0xFFFF]
    assert codecs.encode_kg_x100(codecs.decode_kg_x100(words)) == words


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_real_round_trip_property(value: float) -> None:
    assert codecs.decode_real(codecs.encode_real(value)) == value


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=16))
def test_ascii_round_trip_property(text: str) -> None:
    assert codecs.decode_ascii(codecs.encode_ascii(text, 8)) == text.rstrip(" ")


@given(st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8))
def test_ascii_decoder_never_returns_non_printables(words: list[int]) -> None:
    try:
        text = codecs.decode_ascii(words)
    except CodecError:
        return
    assert all(0x20 <= ord(c) <= 0x7E for c in text)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_real_decoder_returns_finite_or_raises(lo: int, hi: int) -> None:
    with contextlib.suppress(CodecError):
        assert math.isfinite(codecs.decode_real([lo, hi]))


# --- the registry: one entry per codec name, and every field of the plant map round-trips through it ----


def test_every_codec_name_has_one_registry_entry() -> None:
    assert set(codecs.CODECS) == set(codecs.CodecName)


def _all_fields() -> list[FieldSpec]:
    m = load_memory_map()
    specs: list[FieldSpec] = []
    for layout in m.layouts.values():
        specs.extend(layout.fields)
        if layout.items is not None:
            specs.extend(layout.items.fields)
    return specs


def _sample(spec: FieldSpec) -> codecs.Value:
    """A value the field can hold: inside its limits, with a fraction where the codec keeps one."""
    if spec.codec is codecs.CodecName.ASCII:
        return "WH/MO/00014"[: 2 * spec.size]
    if spec.codec is codecs.CodecName.FLAG:
        return 1
    low = spec.min if spec.min is not None else 0
    high = spec.max if spec.max is not None else 9999
    if spec.codec in (codecs.CodecName.KG_X100, codecs.CodecName.REAL):
        return round((low + high) / 3, 2) if spec.codec is codecs.CodecName.KG_X100 else 570.5
    return int(low + high) // 2


@pytest.mark.parametrize("spec", _all_fields(), ids=lambda s: f"{s.name}:{s.codec}")
def test_every_map_field_round_trips_through_the_registry(spec: FieldSpec) -> None:
    value = _sample(spec)
    words = spec.coder.encode(value, spec.size, False)
    assert len(words) == spec.size
    assert spec.coder.decode(words) == value
    assert encode_field(spec, value) == words  # the snapshot encoder goes through the same entry
