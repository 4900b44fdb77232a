"""Every MQTT topic of the system, built from one configurable root (default `scada/plc01`)."""

from __future__ import annotations

from dataclasses import dataclass

# Who may send each gateway command (the gateway's command table, services/plc_gateway/app.py command_table, names
# exactly these): the broker's ACL lets only these users publish it, and the gateway
# answers only on the sender's own reply prefix (`{root}/reply/{sender}`), which only that user may read. A
# reply can therefore never be steered onto another sender's topic (e.g. a read_area reply onto the planner's).
COMMAND_SENDERS: dict[str, tuple[str, ...]] = {
    "write_batch": ("mo_planner",),
    "ack_slot": ("mo_planner",),
    "ack_failure": ("failure_monitor",),
    # Manual weighing lives in failure_monitor (docs/architecture.md): it owns the rows it acknowledges.
    "ack_weighing": ("failure_monitor",),
    "arm": ("edgectl", "console"),
    "read_area": ("edgectl",),
}
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Topics:
    root: str = "scada/plc01"

    def __post_init__(self) -> None:
        if (
            not self.root
            or any(c in self.root for c in "#+")
            or self.root.startswith("/")
            or self.root.endswith("/")
        ):
            raise ValueError(
                f"MQTT topic root {self.root!r} must be a plain topic without wildcards or edge slashes"
            )

    @property
    def gateway_status(self) -> str:
        return f"{self.root}/gateway/status"

    def plc_read(self, slot: int | str) -> str:
        return f"{self.root}/plc/read/{slot}"

    def plc_write(self, slot: int | str) -> str:
        return f"{self.root}/plc/write/{slot}"

    @property
    def plc_failure(self) -> str:
        return f"{self.root}/plc/failure"

    @property
    def plc_weighing(self) -> str:
        """The manual-weighing area (D9000-D9048): header, ten items, each pending one with its event_id."""
        return f"{self.root}/plc/weighing"

    def cmd(self, name: str) -> str:
        return f"{self.root}/cmd/{name}"

    def cmd_reply(self, name: str) -> str:
        return f"{self.root}/cmd/{name}/reply"

    def reply_prefix(self, sender: str) -> str:
        """Where the gateway answers `sender`'s commands: only `sender`'s broker user may read below it."""
        return f"{self.root}/reply/{sender}"

    def reply_topic(self, sender: str, session: str | None = None) -> str:
        """The reply_to of `sender`'s commands: the prefix itself (a service), or a topic of its own below it
        (`session`: one CLI run or console process among others logged in as the same broker user)."""
        prefix = self.reply_prefix(sender)
        return f"{prefix}/{session}" if session else prefix

    def reply_to_allowed(self, command: str, topic: str) -> bool:
        """A reply_to is honoured only under the reply prefix of a sender allowed to send `command`."""
        return any(
            topic == prefix or topic.startswith(prefix + "/")
            for prefix in (self.reply_prefix(s) for s in COMMAND_SENDERS.get(command, ()))
        )

    def svc_status(self, service: str) -> str:
        return f"{self.root}/svc/{service}/status"

    @property
    def batch_events(self) -> str:
        return f"{self.root}/events/batch"

    @property
    def failure_events(self) -> str:
        return f"{self.root}/events/failure"

    @property
    def gateway_events(self) -> str:
        """PLC alarms the gateway raises and clears (mode, clock): services/plc_gateway/diagnostics.py."""
        return f"{self.root}/events/gateway"

    @property
    def weighing_events(self) -> str:
        return f"{self.root}/events/weighing"

    def slot_of(self, topic: str) -> int | None:
        """Slot number of a plc/read/N or plc/write/N topic, else None."""
        head, _, tail = topic.rpartition("/")
        if head in (f"{self.root}/plc/read", f"{self.root}/plc/write") and tail.isdigit():
            return int(tail)
        return None
