"""The weighing-flag journal: for each manual-weighing item, which stored weighing its flag was last written
for, kept on disk, written before the flag and again after the read-back (docs/architecture.md, "A weighing's
flag write is journalled").

Why it exists: the live PLC program gives a weighing no number (docs/plc-program.md, manual weighing), so two
identical weighings in a row differ only by the flag write between them. If the gateway stops after writing an
item's flag and before its reply reaches failure_monitor, failure_monitor asks again; by then the scale may
have put an identical weighing into the item, and the PLC's memory cannot tell "the write never landed" from
"it landed and this is the next weighing". Acking again would acknowledge a weighing nobody stored. The journal
remembers what the gateway itself did, across restarts:

- `taken`: the PLC's reply to the write or the read-back proved the PLC has the flag for that weighing: asked
  again, the answer is `already_acked`, whatever the item shows now.
- `intent`: written without proof either way (the gateway stopped, or neither the write's reply nor a
  read-back came). If the item still shows that content with flag 0, nobody can know; the answer is
  `outcome_unknown` and a person decides (never a guess). A write the CPU refused drops the intent.

One entry per item, replaced by the next write on that item (the owner acknowledges the next weighing of an item
only after it settled the previous one). The file is tiny (ten entries) and is replaced atomically with an
fsync, so a power cut leaves the old or the new version, never a torn one. A row is named by its id and insert
time, so a database restored from a dump or recreated (ids handed out again) never matches an older entry.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

FILE_NAME = "weighing_flags.json"
VERSION = 1
WriteState = Literal["intent", "taken"]


class JournalError(Exception):
    """The journal cannot be read or written: the gateway must not acknowledge weighings blind."""


@dataclass(frozen=True)
class ItemWrite:
    weighing: str  # the stored row: failure_monitor's row id and insert time (weighing_key)
    content: tuple[int, ...]  # the header and item words without the flag, as verified before the write
    state: WriteState
    request_id: str  # the ack that wrote it: an operator's "that write was lost" never covers its own write


def weighing_key(weighing_id: int, stored_at: dt.datetime) -> str:
    """A stored weighing's identity for the journal. The insert time is part of it because a database restored
    from a dump hands out the same row ids again: an id alone could match a journalled row it is not."""
    return f"{weighing_id}@{stored_at.astimezone(dt.UTC).isoformat()}"


class WeighingJournal:
    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot create GATEWAY_STATE_DIR {directory}: {exc}") from exc
        self._items = self._load()

    def last_write(self, item: int) -> ItemWrite | None:
        return self._items.get(item)

    def record(self, item: int, write: ItemWrite | None) -> None:
        """Replace item's entry (None: drop it) and make it durable before returning."""
        items = dict(self._items)
        if write is None:
            items.pop(item, None)
        else:
            items[item] = write
        self._save(items)
        self._items = items

    def _load(self) -> dict[int, ItemWrite]:
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_text())
            if doc.get("version") != VERSION:
                raise ValueError(f"version {doc.get('version')!r}, expected {VERSION}")
            return {
                int(item): ItemWrite(
                    _text(e["weighing"]),
                    tuple(int(w) for w in e["content"]),
                    _state(e["state"]),
                    _text(e["request_id"]),
                )
                for item, e in doc["items"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # Reject, never repair: without it a restarted gateway could acknowledge a weighing nobody stored.
            raise JournalError(
                f"{self.path} is unreadable ({exc}); check every manual-weighing item against the stored "
                "weighings before removing it"
            ) from exc

    def _save(self, items: dict[int, ItemWrite]) -> None:
        doc = {
            "version": VERSION,
            "items": {
                str(item): {
                    "weighing": w.weighing,
                    "content": list(w.content),
                    "state": w.state,
                    "request_id": w.request_id,
                }
                for item, w in sorted(items.items())
            },
        }
        tmp = self.path.with_suffix(".tmp")
        try:
            with open(tmp, "w") as f:
                f.write(json.dumps(doc))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself survives a power cut
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise JournalError(f"cannot write {self.path}: {exc}") from exc


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a non-empty string")
    return value


def _state(value: object) -> WriteState:
    if value == "intent":
        return "intent"
    if value == "taken":
        return "taken"
    raise ValueError(f"unknown state {value!r}")
