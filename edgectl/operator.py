"""What every operator action of edgectl shares: who acts (actor `operator`, the OS user in the audit detail)
and the wake-up event sent to a worker once the change is committed."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from edgectl.bus import Bus
from edgectl.errors import Refused, Unreachable, UsageError
from shared.mqtt.client import BrokerAddress
from shared.mqtt.payloads import dumps

ACTOR = "operator"


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


def wake(broker: BrokerAddress, topic: str, event: dict[str, Any], action: str, worker: str) -> None:
    """Tell `worker` about a committed change now. Best effort: without the event the worker finds the row on
    its next sweep, so a broker problem is a warning, never a failed action."""
    try:
        with Bus(broker) as bus:
            bus.publish(topic, dumps("edgectl", event))
    except (Unreachable, UsageError, Refused) as exc:
        print(f"edgectl {action}: wake-up not sent ({exc}); {worker} finds it on its next sweep", file=sys.stderr)
