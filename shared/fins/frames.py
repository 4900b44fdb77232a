"""FINS frame codec: build command frames, parse and strictly validate reply frames. Pure: no sockets, no clock.

Frame = 10-byte header (ICF RSV GCT DNA DA1 DA2 SNA SA1 SA2 SID) + MRC SRC + parameters; a reply adds the end
code (MRES SRES) after MRC SRC. Every multi-byte number is big-endian; words travel high byte first.
The simulator uses the command-side parsers here too; golden frames, tshark and fins-driver keep both honest.
"""

from __future__ import annotations

import datetime
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from shared.fins.endcodes import EndCode
from shared.fins.errors import FinsProtocolError

HEADER_LEN = 10
REPLY_MIN_LEN = HEADER_LEN + 4  # header + MRC SRC + MRES SRES

ICF_COMMAND = 0x80  # gateway bit set, command, response required
ICF_RESPONSE_BIT = 0x40
ICF_NO_RESPONSE_BIT = 0x01
DEFAULT_GCT = 0x02  # "set to 02" per the Omron manual

DM_WORD = 0x82  # DM area, word access (CS/CJ mode)

MEMORY_AREA_READ = 0x0101
MEMORY_AREA_WRITE = 0x0102
MULTIPLE_MEMORY_AREA_READ = 0x0104
CONTROLLER_DATA_READ = 0x0501
CONTROLLER_STATUS_READ = 0x0601
CYCLE_TIME_READ = 0x0620
CLOCK_READ = 0x0701

# Limits over Ethernet (docs/fins.md F4): 2000 bytes of parameters per command, 1998 bytes of reply data.
MAX_READ_WORDS = 999
MAX_WRITE_WORDS = 996
MAX_MULTIPLE_ITEMS = 167

CONTROLLER_DATA_LEN = 80  # model (20) + version (20) + system use (40), for parameter 00
CONTROLLER_STATUS_LEN = 26  # status, mode, fatal(2), non-fatal(2), messages(2), FAL/FALS(2), message(16)
CYCLE_TIME_LEN = 12  # average, max, min: 4 bytes each, binary, units of 0.1 ms
CLOCK_LEN = 7  # year, month, day, hour, minute, second (BCD), day of week (0 = Sunday)
CYCLE_TIME_READ_VALUES = 0x01  # 0620 parameter: 00 initialises the statistics, 01 reads them


@dataclass(frozen=True, slots=True)
class Route:
    """FINS addresses of one exchange: destination (the PLC) and source (us). Node 0 = "local PLC unit"."""

    dna: int = 0
    da1: int = 1
    da2: int = 0
    sna: int = 0
    sa1: int = 10
    sa2: int = 0

    def __post_init__(self) -> None:
        for name in ("dna", "da1", "da2", "sna", "sa1", "sa2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} {value} does not fit a byte")


@dataclass(frozen=True, slots=True)
class Header:
    icf: int
    rsv: int
    gct: int
    dna: int
    da1: int
    da2: int
    sna: int
    sa1: int
    sa2: int
    sid: int

    def pack(self) -> bytes:
        return bytes(
            (self.icf, self.rsv, self.gct, self.dna, self.da1, self.da2, self.sna, self.sa1, self.sa2, self.sid)
        )

    @classmethod
    def unpack(cls, frame: bytes) -> Header:
        if len(frame) < HEADER_LEN:
            raise FinsProtocolError(f"frame of {len(frame)} bytes is shorter than a FINS header")
        return cls(*frame[:HEADER_LEN])

    @property
    def is_response(self) -> bool:
        return bool(self.icf & ICF_RESPONSE_BIT)

    @property
    def wants_response(self) -> bool:
        return not self.icf & ICF_NO_RESPONSE_BIT

    def reply_header(self, own_node: int) -> Header:
        """Header of the reply to this command: response ICF, source and destination swapped."""
        return Header(0xC0, 0, DEFAULT_GCT, self.sna, self.sa1, self.sa2, self.dna, own_node, self.da2, self.sid)


@dataclass(frozen=True, slots=True)
class Request:
    """One command, ready to frame: its code, parameters and the exact reply data length on success."""

    command: int
    params: bytes
    reply_data_len: int


@dataclass(frozen=True, slots=True)
class Reply:
    header: Header
    command: int
    end_code: EndCode
    data: bytes


# ----------------------------------------------------------------------------------------- addresses

_DM_RE = re.compile(r"^\s*(?:DM?)?\s*(\d{1,5})\s*$", re.IGNORECASE)


def parse_dm_address(text: str) -> int:
    """'D6000', 'DM6000' or '6000' -> 6000 (DM word address)."""
    m = _DM_RE.match(text)
    if not m or int(m.group(1)) > 0xFFFF:
        raise ValueError(f"{text!r} is not a DM word address (e.g. D6000)")
    return int(m.group(1))


def _address(area: int, address: int) -> bytes:
    if not 0 <= area <= 0xFF:
        raise ValueError(f"area code {area} does not fit a byte")
    if not 0 <= address <= 0xFFFF:
        raise ValueError(f"word address {address} outside 0..65535")
    return struct.pack(">BHB", area, address, 0)  # bit number 00: word access


def _check_words(words: Sequence[int]) -> None:
    for w in words:
        if not 0 <= w <= 0xFFFF:
            raise ValueError(f"word {w} is not an unsigned 16-bit value")


# ------------------------------------------------------------------------------------------ commands


def memory_area_read(address: int, count: int, area: int = DM_WORD) -> Request:
    if not 0 <= count <= MAX_READ_WORDS:
        raise ValueError(f"read of {count} words: one command reads 0..{MAX_READ_WORDS}")
    return Request(MEMORY_AREA_READ, _address(area, address) + struct.pack(">H", count), 2 * count)


def memory_area_write(address: int, words: Sequence[int], area: int = DM_WORD) -> Request:
    if not 1 <= len(words) <= MAX_WRITE_WORDS:
        raise ValueError(f"write of {len(words)} words: one command writes 1..{MAX_WRITE_WORDS}")
    _check_words(words)
    params = _address(area, address) + struct.pack(">H", len(words)) + struct.pack(f">{len(words)}H", *words)
    return Request(MEMORY_AREA_WRITE, params, 0)


def multiple_memory_area_read(addresses: Sequence[int], area: int = DM_WORD) -> Request:
    if not 1 <= len(addresses) <= MAX_MULTIPLE_ITEMS:
        raise ValueError(f"{len(addresses)} items: one multiple read takes 1..{MAX_MULTIPLE_ITEMS}")
    params = b"".join(_address(area, a) for a in addresses)
    return Request(MULTIPLE_MEMORY_AREA_READ, params, 3 * len(addresses))  # area code + word per item


def controller_data_read() -> Request:
    """0501 with parameter 00: controller model and version only (a fixed 80-byte reply)."""
    return Request(CONTROLLER_DATA_READ, b"\x00", CONTROLLER_DATA_LEN)


def controller_status_read() -> Request:
    return Request(CONTROLLER_STATUS_READ, b"", CONTROLLER_STATUS_LEN)


def cycle_time_read() -> Request:
    """0620 with parameter 01: read average, maximum and minimum cycle time (00 would reset them)."""
    return Request(CYCLE_TIME_READ, bytes([CYCLE_TIME_READ_VALUES]), CYCLE_TIME_LEN)


def clock_read() -> Request:
    return Request(CLOCK_READ, b"", CLOCK_LEN)


def encode_command(route: Route, sid: int, request: Request, *, gct: int = DEFAULT_GCT) -> bytes:
    if not 0 <= sid <= 0xFF:
        raise ValueError(f"SID {sid} does not fit a byte")
    header = Header(ICF_COMMAND, 0, gct, route.dna, route.da1, route.da2, route.sna, route.sa1, route.sa2, sid)
    return header.pack() + struct.pack(">H", request.command) + request.params


def parse_command(frame: bytes) -> tuple[Header, int, bytes]:
    """Command side (the simulator): header, command code, parameters."""
    header = Header.unpack(frame)
    if len(frame) < HEADER_LEN + 2:
        raise FinsProtocolError("frame ends before the command code")
    if header.is_response:
        raise FinsProtocolError("frame is a response, not a command")
    (command,) = struct.unpack_from(">H", frame, HEADER_LEN)
    return header, command, frame[HEADER_LEN + 2 :]


def encode_reply(header: Header, command: int, end_code: int, data: bytes = b"") -> bytes:
    return header.pack() + struct.pack(">HH", command, end_code) + data


# --------------------------------------------------------------------------------------------- replies


def parse_reply(frame: bytes) -> Reply:
    """Structure only: long enough, a response. Matching it to a request is `validate_reply`'s job."""
    if len(frame) < REPLY_MIN_LEN:
        raise FinsProtocolError(f"reply of {len(frame)} bytes is shorter than {REPLY_MIN_LEN}")
    header = Header.unpack(frame)
    if not header.is_response:
        raise FinsProtocolError(f"ICF 0x{header.icf:02X} is not a response")
    command, raw_end = struct.unpack_from(">HH", frame, HEADER_LEN)
    return Reply(header, command, EndCode(raw_end), frame[REPLY_MIN_LEN:])


def validate_reply(frame: bytes | Reply, route: Route, sid: int, request: Request) -> Reply:
    """Check a reply against the request it must answer; raise FinsProtocolError naming the first mismatch.

    Source node: the reply's SA1 is the PLC's node (our DA1; any when DA1 = 0, "the local PLC") and its DA1 is
    ours (SA1). A reply with a success end code must carry exactly the data the command asks for.
    """
    reply = frame if isinstance(frame, Reply) else parse_reply(frame)
    h = reply.header
    if h.sid != sid:
        raise FinsProtocolError(f"SID {h.sid} does not match request SID {sid}")
    if reply.command != request.command:
        raise FinsProtocolError(f"reply to command {reply.command:04X}, expected {request.command:04X}")
    if h.da1 != route.sa1 or h.dna != route.sna:
        raise FinsProtocolError(f"reply addressed to node {h.dna}.{h.da1}, we are {route.sna}.{route.sa1}")
    if route.da1 != 0 and (h.sa1 != route.da1 or h.sna != route.dna):
        raise FinsProtocolError(f"reply from node {h.sna}.{h.sa1}, the PLC is {route.dna}.{route.da1}")
    if reply.end_code.ok and len(reply.data) != request.reply_data_len:
        raise FinsProtocolError(
            f"reply to {request.command:04X} carries {len(reply.data)} data bytes, expected {request.reply_data_len}"
        )
    return reply


# ------------------------------------------------------------------------------------- reply decoders


def decode_words(data: bytes) -> list[int]:
    if len(data) % 2:
        raise FinsProtocolError(f"odd data length {len(data)} for word data")
    return list(struct.unpack(f">{len(data) // 2}H", data))


def decode_multiple_read(data: bytes, count: int, area: int = DM_WORD) -> list[int]:
    """0104 reply data: (area code, word) per item; every area code must echo the one we asked for."""
    if len(data) != 3 * count:
        raise FinsProtocolError(f"multiple read reply has {len(data)} bytes for {count} items")
    words: list[int] = []
    for i in range(count):
        code, word = struct.unpack_from(">BH", data, 3 * i)
        if code != area:
            raise FinsProtocolError(f"item {i}: area code 0x{code:02X}, expected 0x{area:02X}")
        words.append(word)
    return words


@dataclass(frozen=True, slots=True)
class ControllerData:
    model: str
    version: str


@dataclass(frozen=True, slots=True)
class ControllerStatus:
    status: int  # 0x00 stop, 0x01 run, 0x80 CPU on standby
    mode: int  # 0x00 PROGRAM, 0x01 DEBUG, 0x02 MONITOR, 0x04 RUN
    fatal_error: int
    non_fatal_error: int
    message_flags: int
    fal_fals: int
    error_message: str

    @property
    def running(self) -> bool:
        return self.status == 0x01

    @property
    def mode_name(self) -> str:
        return MODE_NAMES.get(self.mode, f"0x{self.mode:02X}")


MODE_PROGRAM, MODE_DEBUG, MODE_MONITOR, MODE_RUN = 0x00, 0x01, 0x02, 0x04
MODE_NAMES = {MODE_PROGRAM: "PROGRAM", MODE_DEBUG: "DEBUG", MODE_MONITOR: "MONITOR", MODE_RUN: "RUN"}


def _ascii(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("ascii", "replace").strip()


def decode_controller_data(data: bytes) -> ControllerData:
    if len(data) != CONTROLLER_DATA_LEN:
        raise FinsProtocolError(f"controller data has {len(data)} bytes, expected {CONTROLLER_DATA_LEN}")
    return ControllerData(model=_ascii(data[:20]), version=_ascii(data[20:40]))


def encode_controller_data(model: str, version: str) -> bytes:
    return model.encode("ascii")[:20].ljust(20, b" ") + version.encode("ascii")[:20].ljust(20, b" ") + bytes(40)


def decode_controller_status(data: bytes) -> ControllerStatus:
    if len(data) != CONTROLLER_STATUS_LEN:
        raise FinsProtocolError(f"controller status has {len(data)} bytes, expected {CONTROLLER_STATUS_LEN}")
    status, mode, fatal, non_fatal, messages, fal = struct.unpack_from(">BBHHHH", data)
    return ControllerStatus(status, mode, fatal, non_fatal, messages, fal, _ascii(data[10:26]))


def encode_controller_status(
    status: int, mode: int, message: str = "", *, fatal_error: int = 0, non_fatal_error: int = 0
) -> bytes:
    head = struct.pack(">BBHHHH", status, mode, fatal_error, non_fatal_error, 0, 0)
    return head + message.encode("ascii")[:16].ljust(16, b"\x00")


@dataclass(frozen=True, slots=True)
class CycleTime:
    """0620 reply: cycle times in milliseconds (the PLC counts in 0.1 ms)."""

    average_ms: float
    max_ms: float
    min_ms: float


def decode_cycle_time(data: bytes) -> CycleTime:
    if len(data) != CYCLE_TIME_LEN:
        raise FinsProtocolError(f"cycle time reply has {len(data)} bytes, expected {CYCLE_TIME_LEN}")
    average, maximum, minimum = struct.unpack(">III", data)
    return CycleTime(average / 10, maximum / 10, minimum / 10)


def encode_cycle_time(average_ms: float, max_ms: float, min_ms: float) -> bytes:
    return struct.pack(">III", *(max(0, round(v * 10)) for v in (average_ms, max_ms, min_ms)))


def _from_bcd(byte: int, what: str) -> int:
    hi, lo = byte >> 4, byte & 0x0F
    if hi > 9 or lo > 9:
        raise FinsProtocolError(f"clock {what} 0x{byte:02X} is not BCD")
    return 10 * hi + lo


def _to_bcd(value: int) -> int:
    if not 0 <= value <= 99:
        raise ValueError(f"{value} does not fit two BCD digits")
    return (value // 10) << 4 | value % 10


def decode_clock(data: bytes) -> datetime.datetime:
    """0701 reply -> the PLC's wall time, naive (the PLC keeps no timezone). Years 98/99 are 1998/1999."""
    if len(data) != CLOCK_LEN:
        raise FinsProtocolError(f"clock reply has {len(data)} bytes, expected {CLOCK_LEN}")
    names = ("year", "month", "day", "hour", "minute", "second")
    year, month, day, hour, minute, second = (_from_bcd(b, n) for b, n in zip(data[:6], names, strict=True))
    if data[6] > 6:
        raise FinsProtocolError(f"clock day of week {data[6]} outside 0..6")
    try:
        return datetime.datetime(1900 + year if year >= 98 else 2000 + year, month, day, hour, minute, second)
    except ValueError as exc:
        raise FinsProtocolError(f"clock reads an impossible date: {exc}") from None


def encode_clock(when: datetime.datetime) -> bytes:
    if not 1998 <= when.year <= 2097:
        raise ValueError(f"year {when.year} outside the PLC clock's 1998..2097")
    fields = (when.year % 100, when.month, when.day, when.hour, when.minute, when.second)
    return bytes(_to_bcd(v) for v in fields) + bytes([(when.weekday() + 1) % 7])
