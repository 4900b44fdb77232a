"""Word codecs of the plant's PLC program: pure functions from 16-bit words to values and back, and the one
registry (`CODECS`) that names them for the memory map.

Decoders never repair: a word that does not fit the encoding raises CodecError with the reason.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class CodecError(ValueError):
    """A word sequence is not a valid encoding, or a value cannot be encoded."""


def _check_words(words: Sequence[int], count: int) -> None:
    if len(words) != count:
        raise CodecError(f"expected {count} words, got {len(words)}")
    for w in words:
        if not 0 <= w <= 0xFFFF:
            raise CodecError(f"word {w} is not an unsigned 16-bit value")


# --- 16-bit integers -------------------------------------------------------------------------------


def decode_uint16(words: Sequence[int]) -> int:
    _check_words(words, 1)
    return words[0]


def encode_uint16(value: int) -> list[int]:
    if not 0 <= value <= 0xFFFF:
        raise CodecError(f"{value} does not fit an unsigned 16-bit word")
    return [value]


def decode_int16(words: Sequence[int]) -> int:
    _check_words(words, 1)
    return words[0] - 0x10000 if words[0] & 0x8000 else words[0]


def encode_int16(value: int) -> list[int]:
    if not -0x8000 <= value <= 0x7FFF:
        raise CodecError(f"{value} does not fit a signed 16-bit word")
    return [value & 0xFFFF]


# --- ASCII: 2 chars per word, first char in the high byte, NUL padded --------------------------------


def decode_ascii(words: Sequence[int]) -> str:
    _check_words(words, len(words))
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    text, _, padding = raw.partition(b"\x00")
    if padding.strip(b"\x00"):
        raise CodecError("bytes after NUL terminator")
    bad = [b for b in text if not 0x20 <= b <= 0x7E]
    if bad:
        raise CodecError(f"non-printable byte 0x{bad[0]:02X}")
    # Trailing blanks carry no meaning on the PLC (a 16-char cut often ends in one): the vectors drop them.
    return text.decode("ascii").rstrip(" ")


def encode_ascii(text: str, word_count: int, *, truncate: bool = False) -> list[int]:
    capacity = 2 * word_count
    if any(not 0x20 <= ord(c) <= 0x7E for c in text):
        raise CodecError(f"{text!r} holds characters outside printable ASCII")
    if len(text) > capacity:
        if not truncate:
            raise CodecError(f"{text!r} is longer than {capacity} characters")
        text = text[:capacity]
    raw = text.encode("ascii").ljust(capacity, b"\x00")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, capacity, 2)]


# --- kg x 100 as unsigned 32-bit, HIGH word first (the plant's own convention) -----------------------


def decode_kg_x100(words: Sequence[int]) -> float:
    _check_words(words, 2)
    return ((words[0] << 16) | words[1]) / 100


def encode_kg_x100(kg: float) -> list[int]:
    if not math.isfinite(kg) or kg < 0:
        raise CodecError(f"{kg} kg is not a finite non-negative weight")
    # round(), never int(): int(33.3 * 100) == 3329.
    raw = round(kg * 100)
    if raw > 0xFFFFFFFF:
        raise CodecError(f"{kg} kg does not fit 32 bits at 0.01 kg")
    return [raw >> 16, raw & 0xFFFF]


# --- native Omron 32-bit values: LOW word at the lower address ---------------------------------------


def decode_real(words: Sequence[int]) -> float:
    _check_words(words, 2)
    (value,) = struct.unpack(">f", struct.pack(">HH", words[1], words[0]))
    if not math.isfinite(value):
        raise CodecError(f"REAL is {value}")
    return float(value)


def encode_real(value: float) -> list[int]:
    if not math.isfinite(value):
        raise CodecError(f"{value} is not finite")
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [low, high]


def decode_dint(words: Sequence[int]) -> int:
    _check_words(words, 2)
    raw = (words[1] << 16) | words[0]
    return raw - 0x1_0000_0000 if raw & 0x8000_0000 else raw


def encode_dint(value: int) -> list[int]:
    if not -0x8000_0000 <= value <= 0x7FFF_FFFF:
        raise CodecError(f"{value} does not fit a signed 32-bit value")
    raw = value & 0xFFFF_FFFF
    return [raw & 0xFFFF, raw >> 16]


# --- BCD: one word, four decimal digits ---------------------------------------------------------------


def decode_bcd(words: Sequence[int]) -> int:
    _check_words(words, 1)
    value = 0
    for shift in (12, 8, 4, 0):
        digit = (words[0] >> shift) & 0xF
        if digit > 9:
            raise CodecError(f"0x{words[0]:04X} is not BCD")
        value = value * 10 + digit
    return value


def encode_bcd(value: int) -> list[int]:
    if not 0 <= value <= 9999:
        raise CodecError(f"{value} does not fit 4 BCD digits")
    return [int(str(value), 16)]


# --- handshake flag: exactly 0 or 1 -------------------------------------------------------------------


def decode_flag(words: Sequence[int]) -> int:
    _check_words(words, 1)
    if words[0] not in (0, 1):
        raise CodecError(f"word {words[0]} is not 0/1")
    return words[0]


def encode_flag(value: int) -> list[int]:
    if value not in (0, 1):
        raise CodecError(f"flag value {value} is not 0/1")
    return [value]


# --- the registry: the memory map's `codec` names -> words + decode + encode ----------------------------

Value = int | float | str


class CodecName(StrEnum):
    UINT16 = "uint16"
    INT16 = "int16"
    ASCII = "ascii"
    KG_X100 = "kg_x100"
    REAL = "real"
    DINT = "dint"
    BCD = "bcd"
    FLAG = "flag"


@dataclass(frozen=True)
class Codec:
    """How one value type sits in PLC words (the role of pymodbus's DATATYPE: a name -> size and format)."""

    # Words the value occupies; None: the field declares it (ascii, 2 characters per word).
    words: int | None
    decode: Callable[[Sequence[int]], Value]
    # (value, the field's word count, cut an over-long text instead of refusing it) -> words
    encode: Callable[[Value, int, bool], list[int]]


CODECS: Mapping[CodecName, Codec] = MappingProxyType(
    {
        CodecName.UINT16: Codec(1, decode_uint16, lambda v, _n, _t: encode_uint16(int(v))),
        CodecName.INT16: Codec(1, decode_int16, lambda v, _n, _t: encode_int16(int(v))),
        CodecName.ASCII: Codec(None, decode_ascii, lambda v, n, t: encode_ascii(str(v), n, truncate=t)),
        CodecName.KG_X100: Codec(2, decode_kg_x100, lambda v, _n, _t: encode_kg_x100(float(v))),
        CodecName.REAL: Codec(2, decode_real, lambda v, _n, _t: encode_real(float(v))),
        CodecName.DINT: Codec(2, decode_dint, lambda v, _n, _t: encode_dint(int(v))),
        CodecName.BCD: Codec(1, decode_bcd, lambda v, _n, _t: encode_bcd(int(v))),
        CodecName.FLAG: Codec(1, decode_flag, lambda v, _n, _t: encode_flag(int(v))),
    }
)
