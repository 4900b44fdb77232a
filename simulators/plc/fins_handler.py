"""The simulated CPU's FINS command execution: parameters in, end code and reply data out. No sockets.

End codes follow W342 for a CJ2M's DM area: unknown area 1101, bit number or first address outside the area
1103, end of area exceeded 1104, too many elements 110B, frame too long/short 1001/1002, element count vs data
1003, unknown command 0401. PROGRAM mode refuses writes with 2203: a fault for tests (a real CJ2M accepts 0102
in any mode), so the gateway's mode-error path can be exercised.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.fins import frames
from simulators.plc.memory import DataMemory

WriteHook = Callable[[int, list[int]], None]

OK = 0x0000
TOO_LONG, TOO_SHORT, ELEMENTS_MISMATCH = 0x1001, 0x1002, 0x1003
AREA_MISSING, ADDRESS_RANGE, RANGE_EXCEEDED, RESPONSE_TOO_LONG, PARAMETER_ERROR = (
    0x1101,
    0x1103,
    0x1104,
    0x110B,
    0x110C,
)
UNDEFINED_COMMAND = 0x0401
UNIT_MISSING = 0x0202  # DA2 names a unit the PLC does not have
CPU_UNIT = 0x00  # DA2 of the CPU unit
MODE_PROGRAM = 0x2203


class Diagnostics(Protocol):
    """What 0601 (besides PROGRAM mode), 0620 and 0701 report: the scan model owns it (simulators/plc/scan.py)."""

    def status_words(self) -> tuple[int, int, int]:
        """(mode code, fatal error flags, non-fatal error flags) while not in PROGRAM mode."""
        ...

    def cycle_times_ms(self) -> tuple[float, float, float]: ...

    def reset_cycle_times(self) -> None: ...

    def clock_now(self) -> dt.datetime: ...


@dataclass(frozen=True)
class Result:
    end_code: int
    data: bytes = b""


class CommandHandler:
    def __init__(
        self,
        memory: DataMemory,
        model: str = "CJ2M-CPU33",
        version: str = "02.01",
        diagnostics: Diagnostics | None = None,
    ) -> None:
        self.memory = memory
        self.diagnostics = diagnostics
        self.model = model
        self.version = version

    def execute(
        self, command: int, params: bytes, *, program_mode: bool = False, on_write: WriteHook | None = None
    ) -> Result:
        match command:
            case frames.MEMORY_AREA_READ:
                return self._read(params)
            case frames.MEMORY_AREA_WRITE:
                return self._write(params, program_mode, on_write)
            case frames.MULTIPLE_MEMORY_AREA_READ:
                return self._multiple_read(params)
            case frames.CONTROLLER_DATA_READ:
                return self._controller_data(params)
            case frames.CONTROLLER_STATUS_READ:
                if params:
                    return Result(TOO_LONG)
                return self._status(program_mode)
            case frames.CYCLE_TIME_READ:
                return self._cycle_time(params)
            case frames.CLOCK_READ:
                if params:
                    return Result(TOO_LONG)
                now = (
                    self.diagnostics.clock_now() if self.diagnostics else dt.datetime.now().replace(microsecond=0)
                )
                return Result(OK, frames.encode_clock(now))
        return Result(UNDEFINED_COMMAND)

    def _status(self, program_mode: bool) -> Result:
        mode, fatal, non_fatal = self.diagnostics.status_words() if self.diagnostics else (frames.MODE_RUN, 0, 0)
        if program_mode:
            mode = frames.MODE_PROGRAM
        status = 0x00 if mode == frames.MODE_PROGRAM else 0x01
        return Result(
            OK, frames.encode_controller_status(status, mode, fatal_error=fatal, non_fatal_error=non_fatal)
        )

    def _cycle_time(self, params: bytes) -> Result:
        if len(params) != 1:
            return Result(TOO_SHORT if not params else TOO_LONG)
        if params[0] not in (0x00, frames.CYCLE_TIME_READ_VALUES):
            return Result(PARAMETER_ERROR)
        if params[0] == 0x00:  # initialise the statistics: no reply data
            if self.diagnostics:
                self.diagnostics.reset_cycle_times()
            return Result(OK)
        times = self.diagnostics.cycle_times_ms() if self.diagnostics else (0.0, 0.0, 0.0)
        return Result(OK, frames.encode_cycle_time(*times))

    def _item(self, raw: bytes, offset: int) -> tuple[int, int] | int:
        """(address, bit) of a 4-byte item or an end code."""
        area, address, bit = struct.unpack_from(">BHB", raw, offset)
        if area != frames.DM_WORD:
            return AREA_MISSING
        if bit != 0 or address >= self.memory.size:
            return ADDRESS_RANGE
        return address, bit

    def _read(self, params: bytes) -> Result:
        if len(params) != 6:
            return Result(TOO_SHORT if len(params) < 6 else TOO_LONG)
        item = self._item(params, 0)
        if isinstance(item, int):
            return Result(item)
        (count,) = struct.unpack_from(">H", params, 4)
        if count > frames.MAX_READ_WORDS:
            return Result(RESPONSE_TOO_LONG)
        address = item[0]
        if address + count > self.memory.size:
            return Result(RANGE_EXCEEDED)
        words = self.memory.read(address, count)
        return Result(OK, struct.pack(f">{count}H", *words))

    def _write(self, params: bytes, program_mode: bool, on_write: WriteHook | None) -> Result:
        if len(params) < 6:
            return Result(TOO_SHORT)
        item = self._item(params, 0)
        if isinstance(item, int):
            return Result(item)
        (count,) = struct.unpack_from(">H", params, 4)
        data = params[6:]
        if count > frames.MAX_WRITE_WORDS:
            return Result(TOO_LONG)
        if len(data) != 2 * count:
            return Result(ELEMENTS_MISMATCH)
        address = item[0]
        if address + count > self.memory.size:
            return Result(RANGE_EXCEEDED)
        if program_mode:
            return Result(MODE_PROGRAM)
        words = list(struct.unpack(f">{count}H", data))
        if on_write is not None:
            on_write(address, words)
        self.memory.write(address, words)
        return Result(OK)

    def _multiple_read(self, params: bytes) -> Result:
        if not params:
            return Result(TOO_SHORT)
        if len(params) % 4:
            return Result(ELEMENTS_MISMATCH)
        if len(params) // 4 > frames.MAX_MULTIPLE_ITEMS:
            return Result(TOO_LONG)
        out = bytearray()
        for offset in range(0, len(params), 4):
            item = self._item(params, offset)
            if isinstance(item, int):
                return Result(item)
            out += struct.pack(">BH", frames.DM_WORD, self.memory.get(item[0]))
        return Result(OK, bytes(out))

    def _controller_data(self, params: bytes) -> Result:
        if len(params) > 1:
            return Result(TOO_LONG)
        model_version = frames.encode_controller_data(self.model, self.version)
        # Area data (12 bytes): program size (KSteps), IOM size, DM words, timer/counters, EM banks, ...
        area = struct.pack(">HBHBBHBH", 20, 23, self.memory.size, 8, 0, 0, 0, 0)
        if not params:
            return Result(OK, model_version + area)
        if params[0] == 0x00:
            return Result(OK, model_version)
        if params[0] == 0x01:
            return Result(OK, area)
        return Result(PARAMETER_ERROR)
