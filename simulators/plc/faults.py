"""Fault injection for the simulated PLC's FINS port (tests only; a real PLC has none of these knobs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Faults:
    drop: float = 0.0  # probability a request is lost before the PLC sees it
    drop_reply: float = 0.0  # probability the reply is lost after the PLC executed the request
    drop_write_reply: float = 0.0  # the same, for memory-area writes (0102) only: reads still answer
    duplicate: float = 0.0  # probability the reply is sent twice
    delay_ms: float = 0.0  # every reply is sent this late
    wrong_sid: float = 0.0  # probability the reply carries another SID (and corrupted data) instead
    end_code: int = 0  # forced end code for the next `end_code_count` requests (0 = off)
    end_code_count: int = 0
    end_code_writes_only: bool = False  # the forced end code answers memory-area writes (0102) only
    program_mode: bool = False  # PROGRAM mode: 0601 reports it, writes get 2203, the program stops

    def update(self, doc: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        unknown = set(doc) - set(known)
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        for name, value in doc.items():
            current = getattr(self, name)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true/false")
            elif isinstance(current, int):
                if isinstance(value, str):
                    value = int(value, 0)
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError(f"{name} must be an integer")
            else:
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise ValueError(f"{name} must be a number")
                value = float(value)
                if name != "delay_ms" and not 0.0 <= value <= 1.0:
                    raise ValueError(f"{name} is a probability (0..1)")
            setattr(self, name, value)
        if not 0 <= self.end_code <= 0xFFFF:
            raise ValueError("end_code must fit 16 bits")

    def take_end_code(self, *, write: bool) -> int | None:
        """The forced end code for this request, if any (a refused command is not executed)."""
        if self.end_code_writes_only and not write:
            return None
        if self.end_code and self.end_code_count > 0:
            self.end_code_count -= 1
            return self.end_code
        return None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
