"""Gateway commands of one sender: send a typed command, resend it with the same request_id until it is
answered, match the reply (request id, command and echoed arguments), parse it, time out.

Model: pymodbus's transaction manager: the client owns the requests in flight, a reply settles exactly the
request it answers, anything else is dropped. Every sender (mo_planner, failure_monitor incl. manual weighing,
edgectl, the console) uses this one implementation.

Resending is safe because of the request id: the gateway answers a duplicate from its reply cache and never
executes it twice (ambiguous PLC outcomes are run again by design, docs/architecture.md "A write's request
id is its proof"). Not thread-safe: one thread owns a client (a worker's own thread, or an asyncio loop).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from shared.mqtt.payloads import CommandBase, CommandReply, command_args, iso, utc_now
from shared.mqtt.topics import COMMAND_SENDERS, Topics

log = logging.getLogger(__name__)

C = TypeVar("C", bound=CommandBase)
Publish = Callable[[str, dict[str, Any]], bool]
# Reply codes that mean "the gateway could not talk to the PLC", not "the PLC said no".
UNREACHABLE_CODES = frozenset({"plc_unreachable"})


@dataclass
class _InFlight:
    command: CommandBase
    settle: Callable[[CommandReply], None]
    sent_at: float


class CommandClient:
    """The commands `sender` has in flight and their replies.

    `publish(topic, body)` sends one enveloped JSON object (MqttLink.publish_json, or a CLI's own session) and
    says whether it left; replies go to `reply_topic` (from Topics), which the owner subscribes and feeds to
    `on_reply`. `resend_after_s` None: never resend (a CLI waits once, see `call`)."""

    def __init__(
        self,
        topics: Topics,
        sender: str,
        publish: Publish,
        *,
        ttl_s: float,
        resend_after_s: float | None = None,
        session: str | None = None,
    ) -> None:
        self.topics = topics
        self.sender = sender
        self.reply_topic = topics.reply_topic(sender, session)
        self.ttl_s = ttl_s  # expires_at: a gateway that picks the command up later must not act on it then
        self.resend_after_s = resend_after_s
        self._publish = publish
        self._in_flight: dict[str, _InFlight] = {}

    def new_request_id(self) -> str:
        return f"{self.sender}-{uuid.uuid4().hex}"

    def send(self, command: C, on_reply: Callable[[C, CommandReply], None]) -> bool:
        """Send `command` and keep it until a reply answers it; the callback then runs on the thread that hands
        replies to `on_reply(body)`. A request id already in flight is not sent twice. False: not handed to the
        broker now (it is resent when due)."""
        if self.sender not in COMMAND_SENDERS.get(command.command, ()):
            raise ValueError(
                f"{self.sender} may not send {command.command} (shared/mqtt/topics.py COMMAND_SENDERS)"
            )
        if command.request_id in self._in_flight:
            return True
        entry = _InFlight(command, lambda reply: on_reply(command, reply), time.monotonic())
        self._in_flight[command.request_id] = entry
        return self._send(entry)

    def _send(self, entry: _InFlight) -> bool:
        entry.sent_at = time.monotonic()
        cmd = entry.command
        body = {
            "request_id": cmd.request_id,
            "reply_to": self.reply_topic,
            "expires_at": iso(utc_now() + dt.timedelta(seconds=self.ttl_s)),
            **command_args(cmd),
        }
        return self._publish(self.topics.cmd(cmd.command), body)

    def on_reply(self, body: dict[str, Any]) -> bool:
        """Settle the command `body` answers; False when it answers none of ours (a late reply to a command
        already settled, or one that names another command or other arguments: never applied)."""
        request_id = body.get("request_id")
        entry = self._in_flight.get(request_id) if isinstance(request_id, str) else None
        if entry is None:
            return False
        try:
            reply = CommandReply.model_validate(body)
        except ValidationError as exc:
            log.error("malformed command reply ignored", extra={"request_id": request_id, "error": str(exc)})
            return False
        if not reply.answers(entry.command):
            # Same request id, another command or other arguments: forged or misrouted. The real one may follow.
            log.error(
                "reply does not answer the command it names: ignored",
                extra={"request_id": request_id, "command": reply.command, "echoed": reply.args},
            )
            return False
        del self._in_flight[entry.command.request_id]
        entry.settle(reply)
        return True

    def resend_overdue(self) -> float | None:
        """Resend (same request id, fresh expiry) every command without a reply for `resend_after_s`; the
        seconds until the next one is due, None when nothing is in flight."""
        if self.resend_after_s is None:
            return None
        now = time.monotonic()
        next_due: float | None = None
        for entry in list(self._in_flight.values()):
            if now - entry.sent_at >= self.resend_after_s:
                self._send(entry)
            left = entry.sent_at + self.resend_after_s - now
            next_due = left if next_due is None else min(next_due, left)
        return None if next_due is None else max(0.0, next_due)

    def forget(self, request_id: str | None) -> None:
        """Stop waiting for a reply (the PLC showed the outcome, or a caller gave up)."""
        if request_id is not None:
            self._in_flight.pop(request_id, None)

    def in_flight(self, model: type[C]) -> list[C]:
        """The commands of this type still waiting for their reply."""
        return [e.command for e in self._in_flight.values() if isinstance(e.command, model)]

    def __len__(self) -> int:
        return len(self._in_flight)

    def call(
        self, command: CommandBase, receive: Callable[[float], dict[str, Any] | None], timeout_s: float
    ) -> CommandReply | None:
        """Send and wait for the reply, reading what arrives on the reply topic with `receive(seconds_left)`
        (a CLI's blocking session); None when none answered within `timeout_s`."""
        settled: list[CommandReply] = []
        self.send(command, lambda _cmd, reply: settled.append(reply))
        deadline = time.monotonic() + timeout_s
        while not settled and (left := deadline - time.monotonic()) > 0:
            body = receive(left)
            if body is not None:
                self.on_reply(body)
        self.forget(command.request_id)
        return settled[0] if settled else None
