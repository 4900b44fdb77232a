"""The fingerprint of a stored PLC result: what `ack_slot` names so the gateway acknowledges only that.

The planner computes it from the READ slot words it stored; the gateway recomputes it from a fresh read of the
slot before writing R = 1 and refuses the ack when they differ (the slot holds another result than the stored one).
The flag word is left out: it is the thing being acknowledged.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

FINGERPRINT_CHARS = 16


def result_fingerprint(words: Sequence[int], flag_offset: int) -> str:
    body = [w for i, w in enumerate(words) if i != flag_offset]
    return hashlib.sha256(struct.pack(f">{len(body)}H", *body)).hexdigest()[:FINGERPRINT_CHARS]
